/**
 * Availability of a backend's storage, shared by both backends: whether it is down (and since when, and why), told
 * to the node once per change, and the loop that opens it, retrying while it is unavailable.
 */
import { StorageUnavailableError } from './types';

export type HealthEvent = { available: false; code: string } | { available: true; downMs: number };

/** The waits between attempts to open storage that is unavailable (then every last one). */
export const REOPEN_DELAYS_MS = [250, 500, 1000, 2000, 5000];

export class Availability {
  private down: { since: number; code: string } | undefined;

  constructor(private readonly onHealth?: (health: HealthEvent) => void) {}

  /** After an operation: its error (StorageUnavailableError: down), or none (success: up again). Other errors change nothing. */
  report(err?: unknown): void {
    if (err instanceof StorageUnavailableError) {
      if (this.down) return;
      this.down = { since: Date.now(), code: err.code };
      this.onHealth?.({ available: false, code: err.code });
    } else if (err === undefined && this.down) {
      const downMs = Date.now() - this.down.since;
      this.down = undefined;
      this.onHealth?.({ available: true, downMs });
    }
  }

  get isDown(): boolean {
    return this.down !== undefined;
  }

  /** The error to answer with while down: the cause's code, else `fallback`. */
  unavailable(fallback: string): StorageUnavailableError {
    return new StorageUnavailableError(this.down?.code ?? fallback);
  }
}

/**
 * Opens storage: runs `attempt` until it succeeds; while it fails as unavailable (after `classify`), tries again
 * with growing waits until `closed()`. Any other error ends it. `afterFailure` cleans up a failed attempt;
 * `firstDone` is called once the first attempt has ended, whatever its outcome.
 */
export async function openWithRetry(options: {
  attempt: () => Promise<void>;
  classify: (err: unknown) => unknown;
  availability: Availability;
  closed: () => boolean;
  firstDone: () => void;
  afterFailure?: () => Promise<void>;
}): Promise<void> {
  for (let n = 0; ; n++) {
    try {
      await options.attempt();
      options.availability.report();
      options.firstDone();
      return;
    } catch (raw) {
      const err = options.classify(raw);
      await options.afterFailure?.();
      options.availability.report(err);
      options.firstDone();
      if (!(err instanceof StorageUnavailableError) || options.closed()) throw err;
      const wait = REOPEN_DELAYS_MS[Math.min(n, REOPEN_DELAYS_MS.length - 1)];
      for (const end = Date.now() + wait; Date.now() < end && !options.closed(); ) await new Promise((r) => setTimeout(r, 50));
      if (options.closed()) throw err;
    }
  }
}
