/**
 * What both stores remember in the process to spare the database work, with the same rules: the acknowledgements
 * already applied, and the devices that logged readings since the last prune by count, and the prune loop itself
 * (small steps, each its own short write, so ingest goes on between them).
 */
import type { Retention } from '../registry';

/** The highest downlink SEQN each device acknowledged through this process (to skip repeating the UPDATE). */
export class AckedUpTo {
  private readonly acked = new Map<string, number>();

  /** Whether `upTo` is higher than what this process applied for the device (most uplinks repeat the last one). */
  isNew(deviceid: string, upTo: number): boolean {
    return upTo > (this.acked.get(deviceid) ?? 0);
  }

  record(deviceid: string, upTo: number): void {
    if (this.isNew(deviceid, upTo)) this.acked.set(deviceid, upTo);
  }

  /** A removed device starts afresh. */
  forget(deviceid: string): void {
    this.acked.delete(deviceid);
  }
}

/** The dialect's half of a prune: each call deletes at most `batch` readings and resolves with how many. */
export interface PruneSteps {
  batch: number;
  /** Devices pruned by count at once. */
  concurrency: number;
  /** Of the `batch` oldest readings (lowest ids), those received before `cutoff` (ISO 8601). */
  deleteAged(cutoff: string): Promise<number>;
  /** Of the device's readings past its newest `keep`, the next `batch`. */
  deleteBeyond(deviceid: string, keep: number): Promise<number>;
  /** Every device (for the first prune by count). */
  allDevices(): Promise<string[]>;
}

export class ReadingsPruner {
  /** Devices that logged readings since the last prune by count; undefined: all (none pruned yet). */
  private logged: Set<string> | undefined;

  noteReading(deviceid: string): void {
    this.logged?.add(deviceid);
  }

  /** Removes the readings beyond the retention; resolves with the number removed. */
  async prune(retention: Retention, now: number, steps: PruneSteps): Promise<number> {
    let removed = 0;
    const repeat = async (step: () => Promise<number>) => {
      for (;;) {
        const n = await step();
        removed += n;
        if (n < steps.batch) return;
      }
    };
    // Ids grow with the time received, so the oldest readings are the lowest ids: each step looks at the next batch
    // of them only (no scan of the table) and removes those past the age.
    if (retention.maxAgeMs !== undefined) await repeat(() => steps.deleteAged(new Date(now - retention.maxAgeMs!).toISOString()));
    const keep = retention.maxPerDevice;
    if (keep !== undefined) {
      const devices = this.logged ? [...this.logged] : await steps.allDevices();
      this.logged = new Set();
      for (let i = 0; i < devices.length; i += steps.concurrency) {
        await Promise.all(devices.slice(i, i + steps.concurrency).map((deviceid) => repeat(() => steps.deleteBeyond(deviceid, keep))));
      }
    }
    return removed;
  }
}
