/**
 * A store's life, the same for every backend: opening in the background (retrying while the storage is
 * unavailable), whether it is open or closed, its availability, and running work once it is open — or failing at
 * once with StorageUnavailableError (503) while it is down, rather than holding the request.
 */
import { Availability, HealthEvent, openWithRetry } from './availability';

export class StoreLifecycle {
  readonly availability: Availability;
  isOpen = false;
  closed = false;
  private opening: Promise<void> = Promise.resolve();
  private readonly firstAttempt: Promise<void>;
  private firstAttemptDone!: () => void;

  /** `downCode`: the error code to answer with while down when the cause has none of its own. */
  constructor(onHealth: ((health: HealthEvent) => void) | undefined, private readonly downCode: string) {
    this.availability = new Availability(onHealth);
    this.firstAttempt = new Promise((resolve) => { this.firstAttemptDone = resolve; });
  }

  /**
   * Opens in the background: `attempt` runs until it succeeds (and must set isOpen); while it fails as unavailable
   * (after `classify`) it is tried again with growing waits until the store is closed. `prepare` runs once before.
   */
  start(options: { attempt: () => Promise<void>; classify: (err: unknown) => unknown; afterFailure?: () => Promise<void>; prepare?: () => void }): void {
    this.opening = (async () => {
      try {
        options.prepare?.();
      } catch (err) {
        this.firstAttemptDone();
        throw err;
      }
      await openWithRetry({ ...options, availability: this.availability, closed: () => this.closed, firstDone: () => this.firstAttemptDone() });
    })();
    // Callers see the failure through ready(); this keeps it from being unhandled meanwhile.
    this.opening.catch(() => undefined);
  }

  /** Resolves once the store is open; rejects when it cannot be opened. */
  ready(): Promise<void> {
    return this.opening;
  }

  /** After an operation: its error, or none (success). Tells onHealth when availability changes. */
  report(err?: unknown): void {
    this.availability.report(err);
  }

  /** The error to answer with while the storage is down. */
  unavailable(): Error {
    return this.availability.unavailable(this.downCode);
  }

  /**
   * Runs fn once the store is open. When it already is, fn starts in this very tick, so writes reach the commit
   * queue in call order and before a close() issued after them.
   */
  afterOpen<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new Error('device store is closed'));
    if (this.isOpen) return fn();
    // Not open because it is unavailable: answer now (503) rather than hold the request until it opens.
    const unavailable = () => Promise.reject(this.unavailable());
    if (this.availability.isDown) return unavailable();
    return this.firstAttempt.then(() => (this.isOpen ? fn() : this.availability.isDown ? unavailable() : this.opening.then(fn)));
  }

  /** Marks the store closed and waits for its opening to settle; false when it was closed already. */
  async close(): Promise<boolean> {
    if (this.closed) return false;
    this.closed = true;
    await this.opening.catch(() => undefined);
    return true;
  }
}
