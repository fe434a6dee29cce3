/**
 * The replay windows a store keeps in memory, and the states it has decided but not yet committed: a bounded cache
 * (least recently used first out, never a window whose state is on its way to disk), the loads under way, the
 * states accepted with persist `with-next-write` that wait for the device's next reading, and the count of writes
 * in flight per device. The store decides on these and writes them in its own dialect; this class keeps the books.
 */
import { INITIAL_STATE } from '../uplink';
import type { ReplayState } from '../uplink';

/** Windows kept in memory at most by default (each about 100 bytes). */
export const REPLAY_CACHE_MAX = 100_000;

/** A deferred state that no reading claimed joins a batch once this many batches started after it was decided. */
export const DEFERRED_BATCHES = 8;

export class ReplayStates {
  private readonly cache = new Map<string, ReplayState>();
  private readonly loads = new Map<string, Promise<void>>();
  /** Accepted states not yet submitted (persist with-next-write), with the batch count when they were decided. */
  private readonly deferred = new Map<string, { state: ReplayState; batch: number }>();
  /** Devices whose replay state is submitted but not committed: never evicted from the cache. */
  private readonly inflight = new Map<string, number>();
  /** On close: every deferred state is written, whatever its age. */
  flushAll = false;

  /** `load` reads a device's committed state (undefined: none yet). */
  constructor(private readonly max: number, private readonly load: (deviceid: string) => Promise<ReplayState | undefined>) {}

  /** Windows in memory. */
  get size(): number {
    return this.cache.size;
  }

  /** The device's window, loaded when it is not in memory. */
  async current(deviceid: string): Promise<ReplayState> {
    // (A loop: in the microtasks between the load and here, the window could be evicted again.)
    while (!this.cache.has(deviceid)) await this.loadOnce(deviceid);
    return this.cache.get(deviceid) ?? INITIAL_STATE;
  }

  /** The window in memory, if it is (no await: for a decision that must be atomic). */
  cached(deviceid: string): ReplayState | undefined {
    return this.cache.get(deviceid);
  }

  private loadOnce(deviceid: string): Promise<void> {
    let loading = this.loads.get(deviceid);
    if (!loading) {
      loading = this.load(deviceid)
        .then((state) => {
          if (!this.cache.has(deviceid)) this.remember(deviceid, state ?? INITIAL_STATE);
        })
        .finally(() => this.loads.delete(deviceid));
      this.loads.set(deviceid, loading);
    }
    return loading;
  }

  /** Puts a window in the cache as most recently used, and evicts the oldest committed ones beyond the limit. */
  remember(deviceid: string, state: ReplayState): void {
    this.cache.delete(deviceid);
    this.cache.set(deviceid, state);
    if (this.cache.size <= this.max) return;
    for (const id of this.cache.keys()) {
      if (this.cache.size <= this.max) break;
      if (id !== deviceid && !this.inflight.has(id) && !this.deferred.has(id) && !this.loads.has(id)) this.cache.delete(id);
    }
  }

  /** Holds an accepted state back for the device's next reading (decided while `batch` batches had started). */
  defer(deviceid: string, state: ReplayState, batch: number): void {
    this.deferred.set(deviceid, { state, batch });
  }

  /** The state held back for the device, taken out (its reading writes it now), if any. */
  takeDeferred(deviceid: string): ReplayState | undefined {
    const entry = this.deferred.get(deviceid);
    this.deferred.delete(deviceid);
    return entry?.state;
  }

  /**
   * The deferred states that no reading claimed and are due at batch `batchIndex` (all of them when flushAll),
   * taken out. `keep` says which devices may have a row (no reading can follow for an id that never registered:
   * its state stays in the cache only).
   */
  due(batchIndex: number, keep: (deviceid: string) => boolean): { deviceid: string; state: ReplayState }[] {
    const due: { deviceid: string; state: ReplayState }[] = [];
    for (const [deviceid, entry] of this.deferred) {
      if (!this.flushAll && entry.batch >= batchIndex - DEFERRED_BATCHES) continue;
      this.deferred.delete(deviceid);
      if (keep(deviceid)) due.push({ deviceid, state: entry.state });
    }
    return due;
  }

  /**
   * Counts a device's uncommitted state write while `write` is pending (so its window is not evicted). When the
   * write fails, the state is held back again, to ride with a later batch — unless a newer one exists or `retry`
   * says no (the store is closing: then the failure stands, rather than retrying for ever).
   */
  track<T>(deviceid: string, state: ReplayState, write: Promise<T>, batch: () => number, retry: () => boolean): Promise<T> {
    this.inflight.set(deviceid, (this.inflight.get(deviceid) ?? 0) + 1);
    const settle = () => {
      const n = (this.inflight.get(deviceid) ?? 1) - 1;
      if (n > 0) this.inflight.set(deviceid, n);
      else this.inflight.delete(deviceid);
    };
    return write.then(
      (value) => {
        settle();
        return value;
      },
      (err: unknown) => {
        settle();
        if (retry() && this.cache.get(deviceid) === state && !this.deferred.has(deviceid)) this.deferred.set(deviceid, { state, batch: batch() });
        throw err;
      },
    );
  }
}
