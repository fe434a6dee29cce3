/**
 * Durable group commit. Writes queue up while a transaction commits; the
 * next transaction takes all of them. There is no timer: at low load a write
 * commits at once, under load batches grow by themselves. Each write's
 * promise settles only after its transaction has committed (or failed).
 * A deferred write (defer) is the exception: it starts no transaction of its
 * own until its delay has passed, and rides along with any batch before that.
 */
export interface Statement {
  sql: string;
  params: unknown[];
}

/** A row for a multi-row INSERT: all rows for one target in a batch go into as few statements as possible. */
export interface RowInsert {
  /** Table and column list, e.g. `readings (deviceid, seqn)`; a constant, never user input. */
  into: string;
  values: unknown[];
  /** Optional constant suffix, e.g. an `ON CONFLICT ... DO UPDATE` clause. */
  conflict?: string;
}

export interface Write {
  statements: Statement[];
  /** Rows inserted before the batch's statements run. */
  row?: RowInsert;
  /** Marks a device as seen at this time; one UPDATE per batch covers every device touched in it. */
  touch?: { deviceid: string; time: string };
  /**
   * Writes with the same key in one batch overwrite each other (the state of
   * a device's replay window, its lastseen): only the last one is executed,
   * and all of them settle when the batch commits.
   */
  key?: string;
}

/** A queued write with its promise's settlers; W is the backend's description of a write. */
export type PendingWrite<W extends object = Write, R = unknown[]> = W & {
  resolve(result: R): void;
  reject(err: unknown): void;
};

/** Commits one batch in one transaction and settles each write; must not throw. */
export type BatchCommitter<W extends object = Write, R = unknown[]> = (batch: PendingWrite<W, R>[]) => Promise<void>;

export class GroupCommit<W extends object = Write, R = unknown[]> {
  private queue: PendingWrite<W, R>[] = [];
  private flushing: Promise<void> | null = null;
  /** Starts a batch for deferred writes nobody else has taken (see defer). */
  private deferTimer: ReturnType<typeof setTimeout> | undefined;
  /** Sizes of the batches committed so far (for benchmarks and tests). */
  readonly stats = { batches: 0, writes: 0, largestBatch: 0 };

  /**
   * @param commitBatch commits one batch.
   * @param extraWrites called as each batch is formed; what it returns joins the batch, first (so the
   *   batch's own writes supersede it).
   */
  constructor(private readonly commitBatch: BatchCommitter<W, R>, private readonly extraWrites?: (batchIndex: number) => PendingWrite<W, R>[]) {}

  /** Queues a write; resolves with its result (for SQLite, the rows its last statement returned) once committed. */
  submit(write: W): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ ...write, resolve, reject } as PendingWrite<W, R>);
      this.kick();
    });
  }

  /**
   * Queues a write that need not commit at once (a device's lastseen): the next batch takes it, whatever starts
   * that batch, and when none has started within `delayMs` one starts for it. Its promise settles as submit's.
   */
  defer(write: W, delayMs: number): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ ...write, resolve, reject } as PendingWrite<W, R>);
      // A running loop takes it with its next batch; otherwise the timer starts one.
      if (this.flushing || this.deferTimer) return;
      this.deferTimer = setTimeout(() => {
        this.deferTimer = undefined;
        this.kick();
      }, delayMs);
      this.deferTimer.unref?.();
    });
  }

  /** Starts a batch even with an empty queue (for extraWrites), unless one is running. */
  kick(): void {
    if (this.deferTimer) {
      clearTimeout(this.deferTimer);
      this.deferTimer = undefined;
    }
    // Started from a microtask, not a timer: writes submitted in the same
    // tick (one message's reading and lastseen) share the first batch.
    if (!this.flushing) this.flushing = Promise.resolve().then(() => this.loop());
  }

  get pending(): number {
    return this.queue.length;
  }

  /** Resolves when the queue is empty and no transaction is running (deferred writes are committed now). */
  async drain(): Promise<void> {
    if (this.queue.length > 0) this.kick();
    while (this.flushing) await this.flushing;
  }

  private async loop(): Promise<void> {
    try {
      for (;;) {
        const extra = this.extraWrites?.(this.stats.batches + 1) ?? [];
        if (this.queue.length === 0 && extra.length === 0) break;
        const batch = extra.length > 0 ? [...extra, ...this.queue] : this.queue;
        this.queue = [];
        this.stats.batches++;
        this.stats.writes += batch.length;
        this.stats.largestBatch = Math.max(this.stats.largestBatch, batch.length);
        await this.commitBatch(batch);
      }
    } finally {
      this.flushing = null;
    }
  }
}

/** For each key, the index of its last write in the batch: earlier ones are skipped. */
export function supersededWrites(batch: Write[]): Set<number> {
  const last = new Map<string, number>();
  batch.forEach((w, i) => {
    if (w.key !== undefined) last.set(w.key, i);
  });
  const skip = new Set<number>();
  batch.forEach((w, i) => {
    if (w.key !== undefined && last.get(w.key) !== i) skip.add(i);
  });
  return skip;
}
