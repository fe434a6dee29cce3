/**
 * Rejections logged without flooding the log: the first rejection from a source in an interval is logged at once
 * (so a newcomer sees why a device is refused), the rest are counted and logged as one summary per source at the
 * end of the interval. At most `maxSources` sources are tracked per interval; the others share one summary.
 */
import type { Translate } from '../common';
import type { UplinkKind } from './routes';

interface SourceCount {
  count: number;
  reasons: Map<string, number>;
  devices: Set<string>;
}

const OTHER = '*';

/** Control characters (a newline in a parse error's snippet, an escape sequence) as \\uXXXX: one rejection, one line. */
function escapeControl(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
const MAX_DEVICES_NAMED = 5;

export class RejectionLog {
  private counts = new Map<string, SourceCount>();
  private timer: ReturnType<typeof setInterval> | undefined;

  /**
   * @param emit writes one log line (e.g. RED.log.warn)
   * @param t the catalog (keys e2ee.log.rejected-first and e2ee.log.rejected-summary)
   */
  constructor(
    private readonly emit: (line: string) => void,
    private readonly t: Translate,
    readonly intervalMs = 60_000,
    private readonly maxSources = 1000,
  ) {}

  /** Counts one rejection; logs it at once when it is the first from its source in this interval. */
  record(source: string, deviceid: string, rawReason: string, kind: UplinkKind = 'request'): void {
    const reason = escapeControl(rawReason);
    let key = escapeControl(source) || 'unknown';
    let entry = this.counts.get(key);
    if (!entry && this.counts.size >= this.maxSources) {
      key = OTHER;
      entry = this.counts.get(key);
    }
    const device = JSON.stringify(deviceid.slice(0, 64));
    if (!entry) {
      entry = { count: 0, reasons: new Map(), devices: new Set() };
      this.counts.set(key, entry);
      if (key !== OTHER) this.emit(this.t('e2ee.log.rejected-first', { what: this.t(`e2ee.log.kind-${kind}`), source: key, device, reason }));
      this.startTimer();
      // The first is logged already; the summary counts the others.
      if (key !== OTHER) return;
    }
    entry.count++;
    entry.reasons.set(reason, (entry.reasons.get(reason) ?? 0) + 1);
    if (entry.devices.size < MAX_DEVICES_NAMED) entry.devices.add(device);
  }

  /** Logs the interval's summaries and starts a new interval. */
  flush(): void {
    const counts = this.counts;
    this.counts = new Map();
    for (const [source, entry] of counts) {
      if (entry.count === 0) continue;
      const reasons = [...entry.reasons].sort((a, b) => b[1] - a[1]).map(([r, n]) => `${r} ${n}`).join(', ');
      this.emit(this.t('e2ee.log.rejected-summary', {
        source: source === OTHER ? this.t('e2ee.log.other-sources') : source,
        count: entry.count,
        seconds: Math.round(this.intervalMs / 1000),
        reasons,
        devices: [...entry.devices].join(', '),
      }));
    }
    if (this.counts.size === 0) this.stop();
  }

  private startTimer(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.flush(), this.intervalMs);
    // A pending summary never keeps the process alive.
    this.timer.unref?.();
  }

  /** Stops the timer (the counts of the current interval are kept for a later flush). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
