/**
 * Retention of readings: a maximum age, a maximum count per device, or both (whichever removes more). Written as
 * `E2EE_RETENTION` / the device-store's `retention` property: `30d`, `12h`, `90m`, `1000` (readings per device),
 * or both separated by a comma, `30d,1000`. Empty means keep everything.
 */

export interface Retention {
  /** Readings received longer ago than this are removed. */
  maxAgeMs?: number;
  /** Only the newest this many readings of each device are kept. */
  maxPerDevice?: number;
}

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses a retention text; throws (with the text) on anything else. */
export function parseRetention(text: unknown): Retention {
  const value = typeof text === 'string' ? text.trim() : text === undefined || text === null ? '' : String(text);
  const retention: Retention = {};
  // Empty, or a `${VAR}` that Node-RED left as it is because the variable is not set: keep everything.
  if (value === '' || /^\$\{\w+\}$/.test(value)) return retention;
  for (const part of value.split(',').map((p) => p.trim().toLowerCase())) {
    const age = /^(\d+)([mhd])$/.exec(part);
    if (age && retention.maxAgeMs === undefined && Number(age[1]) > 0) {
      retention.maxAgeMs = Number(age[1]) * UNIT_MS[age[2]];
    } else if (/^\d+$/.test(part) && retention.maxPerDevice === undefined && Number(part) > 0 && Number.isSafeInteger(Number(part))) {
      retention.maxPerDevice = Number(part);
    } else {
      throw new RetentionError(value);
    }
  }
  return retention;
}

export class RetentionError extends Error {
  constructor(readonly value: string) {
    super(`bad retention: ${value}`);
    this.name = 'RetentionError';
  }
}

/** The retention in words, for logs and the sidebar (catalog keys e2ee.store.retention-*). */
export function describeRetention(r: Retention, t: (key: string, params?: Record<string, unknown>) => string): string {
  const parts: string[] = [];
  if (r.maxAgeMs !== undefined) {
    parts.push(t('e2ee.store.retention-age', { age: formatDuration(r.maxAgeMs) }));
  }
  if (r.maxPerDevice !== undefined) parts.push(t('e2ee.store.retention-count', { count: r.maxPerDevice }));
  return parts.length ? parts.join(', ') : t('e2ee.store.retention-none');
}

export function hasRetention(r: Retention): boolean {
  return r.maxAgeMs !== undefined || r.maxPerDevice !== undefined;
}

/** Commands nobody acknowledged expire after this long unless configured (E2EE_COMMAND_TTL). */
export const DEFAULT_COMMAND_TTL_MS = 7 * UNIT_MS.d;

/**
 * The time after which an undelivered command expires: `7d`, `12h`, `90m`, `30s`; empty (or an unset `${VAR}`) is
 * the default. Throws RetentionError on anything else.
 */
export function parseCommandTtl(text: unknown): number {
  const value = typeof text === 'string' ? text.trim().toLowerCase() : text === undefined || text === null ? '' : String(text);
  if (value === '' || /^\$\{\w+\}$/.test(value)) return DEFAULT_COMMAND_TTL_MS;
  const m = /^(\d+)([smhd])$/.exec(value);
  if (!m || Number(m[1]) <= 0) throw new RetentionError(value);
  return Number(m[1]) * UNIT_MS[m[2]];
}

/** A duration in the units parseCommandTtl reads (the largest that divides it). */
export function formatDuration(ms: number): string {
  const unit = (['d', 'h', 'm'] as const).find((u) => ms % UNIT_MS[u] === 0) ?? 's';
  return `${Math.round(ms / UNIT_MS[unit])}${unit}`;
}
