/**
 * The embedded default backend: one SQLite file (sqlite3 package), WAL mode,
 * schema migrations through a schema_version table, every statement
 * parameterised, and every write through durable group commit
 * (synchronous=FULL: a committed batch is on disk; with durability `process`, synchronous=NORMAL: a committed batch
 * survives a crash of the process, and the last ones may be lost with the machine's power, see Durability).
 *
 * One process owns the file. The replay windows are therefore decided in
 * memory, which makes check-and-advance atomic without a round trip; the new
 * state is persisted through group commit before an accepted message goes on
 * (persist `before-send`), or in the same transaction as the device's next
 * reading (`with-next-write`, see ReplayPersist).
 *
 * What is kept in memory is bounded: the replay windows are a cache of at
 * most REPLAY_CACHE_MAX devices (least recently used ones are read back from
 * the database), and `known` holds the registered ids, as many as the table.
 */
import * as path from 'node:path';
import * as fs from 'node:fs';
import type * as Sqlite3 from 'sqlite3';
import type { DeviceRow, HistoryBucket, ReadingRow, RegisterInput, Retention, Transport, UpdateInput } from '../registry';
import { INITIAL_STATE, ReplayState, decide } from '../uplink';
import type { KeyCheck, ReplayPersist, ReplayResult } from '../uplink';
import { DEVICE_COLUMNS, RawCommandStatus, RawDevice, RawHistory, historyColumns, keyCheck, sortExpired, toCommandStatus, toDevice, toHistory } from './rows';
import type { HealthEvent } from './availability';
import { AckedUpTo, ReadingsPruner } from './bookkeeping';
import { StoreLifecycle } from './lifecycle';
import { REPLAY_CACHE_MAX, ReplayStates } from './replay-states';
import { GroupCommit, PendingWrite, Statement, Write, supersededWrites } from './group-commit';
import { SORT_COLUMNS, StorageUnavailableError } from './types';
import type { CommandRow, CommandStatusRow, DeviceStore, ExpiredCommand, HistoryOptions, KeyRecord, ListOptions, ProvisionedRow, ReadingsOptions, SortColumn } from './types';

/** Most readings one prune step removes (one write in the commit queue). */
export const PRUNE_BATCH = 500;

/** Devices pruned by count at the same time (their steps share commit batches with ingest). */
const PRUNE_DEVICES_AT_ONCE = 20;

/** The longest a poll's lastseen waits for a batch to ride with before it is committed on its own (ms). */
const TOUCH_DELAY_MS = 250;

/** Each entry migrates the schema from version i to i + 1. Never edit a shipped entry: append. */
export const MIGRATIONS: string[][] = [
  [
    `CREATE TABLE devices (
       deviceid TEXT PRIMARY KEY NOT NULL,
       name     TEXT NOT NULL DEFAULT '',
       lastseen TEXT,
       ssid     TEXT NOT NULL DEFAULT '',
       ipaddr   TEXT NOT NULL DEFAULT '',
       cfgsn    INTEGER NOT NULL DEFAULT 1,
       flags    INTEGER NOT NULL DEFAULT 0,
       data     TEXT NOT NULL DEFAULT '{}',
       datec    TEXT NOT NULL
     )`,
    `CREATE TABLE replay_state (
       deviceid TEXT PRIMARY KEY NOT NULL,
       top      INTEGER NOT NULL,
       seen     TEXT NOT NULL,
       width    INTEGER NOT NULL,
       updated  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
     )`,
    `CREATE TABLE readings (
       id       INTEGER PRIMARY KEY,
       deviceid TEXT NOT NULL,
       seqn     INTEGER,
       received TEXT NOT NULL,
       payload  TEXT NOT NULL
     )`,
    `CREATE INDEX readings_by_device ON readings (deviceid, id)`,
  ],
  [
    // Commands to devices (downlink), each with its own per-device SEQN.
    `ALTER TABLE devices ADD COLUMN cmdport INTEGER NOT NULL DEFAULT 80`,
    `CREATE TABLE downlink_counters (
       deviceid TEXT PRIMARY KEY NOT NULL,
       seqn     INTEGER NOT NULL
     )`,
    `CREATE TABLE commands (
       id        INTEGER PRIMARY KEY,
       deviceid  TEXT NOT NULL,
       seqn      INTEGER NOT NULL,
       command   TEXT NOT NULL,
       created   TEXT NOT NULL,
       delivered TEXT,
       via       TEXT
     )`,
    `CREATE UNIQUE INDEX commands_by_device ON commands (deviceid, seqn)`,
  ],
  [
    // Per-device keys: the version of the device's key under the master key.
    `ALTER TABLE devices ADD COLUMN keyver INTEGER NOT NULL DEFAULT 0`,
  ],
  [
    // Rekey (the version being moved to, until the device's first message under it), the receive buffer a device
    // declared (0: unknown), acknowledged and expired commands, and the key versions of removed devices.
    `ALTER TABLE devices ADD COLUMN pendingkeyver INTEGER`,
    `ALTER TABLE devices ADD COLUMN rxbuf INTEGER NOT NULL DEFAULT 0`,
    `ALTER TABLE commands ADD COLUMN expired TEXT`,
    `CREATE TABLE revoked (
       deviceid TEXT PRIMARY KEY NOT NULL,
       floor    INTEGER NOT NULL,
       at       TEXT NOT NULL
     )`,
  ],
  [
    // Where the device's latest authenticated uplink came from: the only address commands are pushed to.
    `ALTER TABLE devices ADD COLUMN seenaddr TEXT`,
  ],
  [
    // The X25519 rekey: the current key wrapped under the master when a rekey made it, and the server's wrapped
    // secret of the rekey pending (both opaque here; only the keyring can unwrap them).
    `ALTER TABLE devices ADD COLUMN keywrap TEXT`,
    `ALTER TABLE devices ADD COLUMN rekeysecret TEXT`,
  ],
  [
    // The transport of the device's latest authenticated uplink (NULL: http): commands for an MQTT device are published.
    `ALTER TABLE devices ADD COLUMN transport TEXT`,
  ],
  [
    // Connected to the broker, as the device's MQTT status topic says (1/0; NULL: never said). Shown, never acted on.
    `ALTER TABLE devices ADD COLUMN connected INTEGER`,
  ],
  [
    // Seconds a battery device deep-sleeps between wakes, as its registration declared (0: always on).
    `ALTER TABLE devices ADD COLUMN sleep INTEGER NOT NULL DEFAULT 0`,
  ],
  [
    // Devices an operator provisioned (a secrets.h was made): listed as "provisioned, not seen" until they register.
    `CREATE TABLE provisioned (
       deviceid TEXT PRIMARY KEY NOT NULL,
       keyver   INTEGER NOT NULL,
       created  TEXT NOT NULL
     )`,
  ],
];

/**
 * SQLite's answers that mean "not now" rather than "never": a full disk, a read-only file or file system, an I/O
 * error, a lock held by another process beyond the busy timeout. They become StorageUnavailableError (503).
 */
const UNAVAILABLE_CODES = new Set(['SQLITE_FULL', 'SQLITE_IOERR', 'SQLITE_READONLY', 'SQLITE_BUSY', 'SQLITE_LOCKED', 'SQLITE_CANTOPEN', 'SQLITE_PROTOCOL', 'SQLITE_NOLFS']);

function storageError(err: unknown): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && UNAVAILABLE_CODES.has(code) ? new StorageUnavailableError(code) : err;
}

/** How long SQLite retries a lock held by another process before a statement fails with SQLITE_BUSY. */
export const BUSY_TIMEOUT_MS = 5000;

/** The current time in the ISO 8601 form the rows use, computed by SQLite. */
const NOW_SQL = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

let isoMs = NaN;
let isoText = '';
/** The ISO 8601 text of a time; under load many calls share a millisecond, so the last one is kept. */
function iso(now: number): string {
  if (now !== isoMs) {
    isoText = new Date(now).toISOString();
    isoMs = now;
  }
  return isoText;
}

/**
 * What a committed write survives: `power` (the default; synchronous=FULL, each commit is fsynced: a power cut loses
 * nothing acknowledged) or `process` (synchronous=NORMAL in WAL: a crash or kill -9 of the process loses nothing
 * acknowledged, but a power cut or a kernel crash may lose the commits since the last WAL checkpoint sync).
 */
export type Durability = 'power' | 'process';
export const DURABILITIES: readonly Durability[] = ['power', 'process'];

/** A durability setting: power or process; anything else (a typo) throws. Empty: the default, power. */
export function parseDurability(value: unknown): Durability {
  const v = typeof value === 'string' ? value.trim() : '';
  if (v === '' || /^\$\{\w+\}$/.test(v)) return 'power';
  if ((DURABILITIES as readonly string[]).includes(v)) return v as Durability;
  throw new RangeError(`durability must be power or process, not ${v.slice(0, 20)}`);
}

export interface SqliteOptions {
  /** Database file; created with its directory when missing. */
  file: string;
  /** What a committed write survives (default power). */
  durability?: Durability;
  /** Test hook: called with each batch size. */
  onBatch?: (size: number) => void;
  /** Replay windows kept in memory (default REPLAY_CACHE_MAX). */
  replayCacheMax?: number;
  /**
   * Told when the storage becomes unavailable (with SQLite's code) and when it is available again (with how long
   * it was not), once per change.
   */
  onHealth?: (health: HealthEvent) => void;
}

export class SqliteStore implements DeviceStore {
  readonly backend = 'sqlite';
  readonly file: string;
  private db?: Sqlite3.Database;
  private readonly statements = new Map<string, Sqlite3.Statement>();
  private readonly commits: GroupCommit;
  private readonly known = new Set<string>();
  /** Each known device's key version, the one a rekey moves it to (absent: none pending) and its wrapped keys. */
  private readonly keyVersions = new Map<string, KeyRecord>();
  /** Removed devices: the lowest key version a message of theirs may use (every older one is revoked). */
  private readonly revokedBelow = new Map<string, number>();
  private readonly acked = new AckedUpTo();
  /** The source address last written for each device (to write it only when it changes). */
  private readonly sources = new Map<string, string>();
  /** The transport last written for each device (to write it only when it changes). */
  private readonly transports = new Map<string, Transport>();
  private readonly pruner = new ReadingsPruner();
  private readonly replays: ReplayStates;
  /** The latest poll's deferred lastseen write, until it commits. */
  private lastTouch?: Promise<unknown>;
  /** A write transaction is open (one always is between batches, unless the last BEGIN failed). */
  private inTransaction = false;
  private readonly life: StoreLifecycle;

  constructor(private readonly options: SqliteOptions) {
    this.file = path.resolve(options.file);
    this.life = new StoreLifecycle(options.onHealth, 'SQLITE_CANTOPEN');
    this.replays = new ReplayStates(options.replayCacheMax ?? REPLAY_CACHE_MAX, (deviceid) => this.loadReplay(deviceid));
    this.commits = new GroupCommit((batch) => this.commitBatch(batch), (index) => this.deferredWrites(index));
    // While the database is unavailable (locked by another process, read-only, on a full disk) opening is retried
    // with growing waits until it opens or the store is closed; meanwhile requests fail at once (503).
    this.life.start({ attempt: () => this.openOnce(), classify: storageError, afterFailure: () => this.release() });
  }

  get groupCommitStats() {
    return this.commits.stats;
  }

  ready(): Promise<void> {
    return this.life.ready();
  }

  private async openOnce(): Promise<void> {
    // Loaded here so that requiring the library does not need the native addon.
    const sqlite3 = require('sqlite3') as typeof Sqlite3;
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    this.db = await new Promise<Sqlite3.Database>((resolve, reject) => {
      const db = new sqlite3.Database(this.file, (err) => (err ? reject(err) : resolve(db)));
    });
    this.conn.serialize();
    this.conn.configure('busyTimeout', BUSY_TIMEOUT_MS);
    await this.exec('PRAGMA journal_mode = WAL');
    await this.exec(this.options.durability === 'process' ? 'PRAGMA synchronous = NORMAL' : 'PRAGMA synchronous = FULL');
    await this.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
    const row = (await this.first('SELECT max(version) AS version FROM schema_version')) as { version: number | null };
    let version = row?.version ?? 0;
    if (version > MIGRATIONS.length) throw new Error(`database schema ${version} is newer than this package supports (${MIGRATIONS.length})`);
    for (; version < MIGRATIONS.length; version++) {
      await this.exec('BEGIN IMMEDIATE');
      try {
        for (const sql of MIGRATIONS[version]) await this.exec(sql);
        await this.run('INSERT INTO schema_version (version) VALUES (?)', [version + 1]);
        await this.exec('COMMIT');
      } catch (err) {
        await this.exec('ROLLBACK').catch(() => undefined);
        throw err;
      }
    }
    type KeyRow = { deviceid: string; keyver: number; pendingkeyver: number | null; keywrap: string | null; rekeysecret: string | null };
    for (const r of (await this.all('SELECT deviceid, keyver, pendingkeyver, keywrap, rekeysecret FROM devices', [])) as KeyRow[]) {
      this.known.add(r.deviceid);
      this.keyVersions.set(r.deviceid, {
        keyver: r.keyver,
        ...(r.pendingkeyver !== null ? { pending: r.pendingkeyver } : {}),
        ...(r.keywrap !== null ? { keywrap: r.keywrap } : {}),
        ...(r.rekeysecret !== null ? { rekeysecret: r.rekeysecret } : {}),
      });
    }
    for (const r of (await this.all('SELECT deviceid, floor FROM revoked', [])) as { deviceid: string; floor: number }[]) this.revokedBelow.set(r.deviceid, r.floor);
    await this.exec('BEGIN IMMEDIATE');
    this.inTransaction = true;
    this.life.isOpen = true;
  }

  async close(): Promise<void> {
    if (!(await this.life.close())) return;
    // Whatever was accepted with persist with-next-write and never written commits now.
    this.replays.flushAll = true;
    if (this.life.isOpen) this.commits.kick();
    await this.commits.drain();
    if (!this.db) return;
    if (this.life.isOpen && this.inTransaction) await this.exec('COMMIT').catch(() => undefined);
    await this.release(true);
  }

  /** Finalizes the prepared statements and closes the connection (reporting a failure only when asked). */
  private async release(report = false): Promise<void> {
    const db = this.db;
    if (!db) return;
    await Promise.all([...this.statements.values()].map((s) => new Promise<void>((resolve) => s.finalize(() => resolve()))));
    this.statements.clear();
    this.db = undefined;
    await new Promise<void>((resolve, reject) => db.close((err) => (err && report ? reject(err) : resolve())));
  }

  // --- low-level helpers -------------------------------------------------

  /** The open connection (none between a failed open and the next attempt: the store is unavailable then). */
  private get conn(): Sqlite3.Database {
    if (!this.db) throw this.life.unavailable();
    return this.db;
  }

  private exec(sql: string): Promise<void> {
    return new Promise((resolve, reject) => this.conn.exec(sql, (err) => (err ? reject(storageError(err)) : resolve())));
  }

  private statement(sql: string): Sqlite3.Statement {
    let stmt = this.statements.get(sql);
    if (!stmt) {
      stmt = this.conn.prepare(sql);
      this.statements.set(sql, stmt);
    }
    return stmt;
  }

  private run(sql: string, params: unknown[]): Promise<void> {
    return new Promise((resolve, reject) => this.statement(sql).run(params, (err: Error | null) => (err ? reject(storageError(err)) : resolve())));
  }

  private all(sql: string, params: unknown[]): Promise<unknown[]> {
    return new Promise((resolve, reject) => this.statement(sql).all(params, (err: Error | null, rows: unknown[]) => (err ? reject(storageError(err)) : resolve(rows))));
  }

  private async first(sql: string, params: unknown[] = []): Promise<unknown> {
    return (await this.all(sql, params))[0];
  }

  private read<T>(sql: string, params: unknown[]): Promise<T[]> {
    return this.life.afterOpen(async () => (await this.all(sql, params)) as T[]);
  }

  private write(statements: Statement[], key?: string): Promise<unknown[]> {
    return this.life.afterOpen(() => this.commits.submit({ statements, key }));
  }

  /**
   * Commits one batch. A write transaction is always open between batches: each commit is `COMMIT` followed at
   * once by `BEGIN IMMEDIATE`, both queued behind the batch's statements on the connection, so a batch costs one
   * round trip to the SQLite thread instead of three. (Statements start at once on the thread pool; only
   * whole-connection calls such as exec wait for them, so the transaction must already be open when they are
   * issued.) When the storage fails, the transaction is rolled back, every write of the batch is rejected
   * (StorageUnavailableError: 503), and the next batch begins a new transaction first.
   */
  private async commitBatch(batch: PendingWrite[]): Promise<void> {
    this.options.onBatch?.(batch.length);
    if (!this.inTransaction) {
      try {
        await this.exec('BEGIN IMMEDIATE');
        this.inTransaction = true;
      } catch (err) {
        this.life.report(err);
        for (const w of batch) w.reject(err);
        return;
      }
    }
    const skip = supersededWrites(batch);
    const inserted = this.insertRows(batch, skip);
    const results = batch.map((w, i) => {
      if (skip.has(i) || w.statements.length === 0) return Promise.resolve([] as unknown[]);
      const issued = w.statements.map((s) => this.all(s.sql, s.params));
      return Promise.all(issued).then((all) => all[all.length - 1]);
    });
    const commit = this.exec('COMMIT');
    const begin = this.exec('BEGIN IMMEDIATE');
    const [insertedResult, commitResult, beginResult] = await Promise.allSettled([inserted, commit, begin]);
    const settled = await Promise.allSettled(results);
    if (commitResult.status === 'rejected') {
      // Not committed: roll back whatever is left (SQLite may have rolled back already) and start clean next time.
      await this.exec('ROLLBACK').catch(() => undefined);
      this.inTransaction = false;
      this.life.report(commitResult.reason);
      for (const w of batch) w.reject(commitResult.reason);
      return;
    }
    this.inTransaction = beginResult.status === 'fulfilled';
    // (A statement can fail on its own, e.g. SQLITE_FULL while the rest of the batch committed: its writes fail.)
    this.life.report(insertedResult.status === 'rejected' ? insertedResult.reason : undefined);
    batch.forEach((w, i) => {
      if (w.row && !skip.has(i) && insertedResult.status === 'rejected') w.reject(insertedResult.reason);
      else if (settled[i].status === 'fulfilled') w.resolve((settled[i] as PromiseFulfilledResult<unknown[]>).value);
      else w.reject((settled[i] as PromiseRejectedResult).reason);
    });
  }

  /**
   * The batch's row writes: one INSERT per target for all of its rows, however many. The rows travel as one
   * JSON array bound to one parameter and are unpacked by SQLite (`json_each`), the way PostgreSQL takes an
   * array with unnest: binding one string costs the main thread far less than binding every value on its
   * own, and the batch is one statement, one round trip to SQLite's thread.
   */
  private async insertRows(batch: PendingWrite[], skip: Set<number>): Promise<void> {
    const byTarget = new Map<string, { into: string; conflict: string; width: number; rows: unknown[][] }>();
    const touched = new Set<string>();
    let touchTime = '';
    batch.forEach((w, i) => {
      if (w.touch) {
        touched.add(w.touch.deviceid);
        if (w.touch.time > touchTime) touchTime = w.touch.time;
      }
      if (!w.row || skip.has(i)) return;
      const target = `${w.row.into} ${w.row.conflict ?? ''}`;
      const group = byTarget.get(target) ?? { into: w.row.into, conflict: w.row.conflict ?? '', width: w.row.values.length, rows: [] };
      group.rows.push(w.row.values);
      byTarget.set(target, group);
    });
    const pending: Promise<unknown>[] = [];
    // lastseen: the batch's latest time for every device it touched (batches last milliseconds).
    if (touched.size > 0) {
      pending.push(this.run('UPDATE devices SET lastseen = ? WHERE deviceid IN (SELECT value FROM json_each(?))', [touchTime, JSON.stringify([...touched])]));
    }
    for (const { into, conflict, width, rows } of byTarget.values()) {
      const columns = Array.from({ length: width }, (_, i) => `value ->> ${i}`).join(', ');
      // (`WHERE true` lets SQLite tell the upsert clause from a join condition.)
      pending.push(this.run(`INSERT INTO ${into} SELECT ${columns} FROM json_each(?) WHERE true ${conflict}`, [JSON.stringify(rows)]));
    }
    await Promise.all(pending);
  }

  async ping(): Promise<void> {
    await this.read('SELECT 1', []);
  }

  // --- registry ----------------------------------------------------------

  register(input: RegisterInput, now = Date.now(), maxDevices?: number): Promise<{ created: boolean; device: DeviceRow; full?: false } | { created: false; full: true }> {
    return this.life.afterOpen(() => this.registerOpen(input, now, maxDevices));
  }

  private async registerOpen(input: RegisterInput, now: number, maxDevices?: number): Promise<{ created: boolean; device: DeviceRow; full?: false } | { created: false; full: true }> {
    // Decided synchronously, so two concurrent first registrations give one 201, and the cap holds under concurrency.
    const created = !this.known.has(input.deviceid);
    if (created && maxDevices !== undefined && this.known.size >= maxDevices) return { created: false, full: true };
    this.known.add(input.deviceid);
    if (created) {
      // A new device starts at the key version it proved (0 for an unauthenticated one); a removed id that comes
      // back under a version above its revoked ones is a device provisioned anew.
      this.keyVersions.set(input.deviceid, { keyver: input.keyver ?? 0 });
      this.revokedBelow.delete(input.deviceid);
    }
    const t = iso(now);
    const rows = (await this.write([
      ...(created ? [{ sql: 'DELETE FROM revoked WHERE deviceid = ?', params: [input.deviceid] }] : []),
      {
        sql: `INSERT INTO devices (deviceid, name, lastseen, ssid, ipaddr, cfgsn, flags, data, datec, cmdport, keyver, rxbuf, sleep)
              VALUES (?, ?, ?, ?, ?, 1, 0, '{}', ?, ?, ?, ?, ?)
              ON CONFLICT (deviceid) DO UPDATE SET ipaddr = excluded.ipaddr, ssid = excluded.ssid, lastseen = excluded.lastseen,
                cmdport = excluded.cmdport, sleep = excluded.sleep, name = CASE WHEN ? IS NULL THEN devices.name ELSE excluded.name END,
                rxbuf = CASE WHEN ? IS NULL THEN devices.rxbuf ELSE excluded.rxbuf END
              RETURNING ${DEVICE_COLUMNS}`,
        params: [input.deviceid, input.name ?? '', t, input.ssid, input.ipaddr, t, input.cmdport ?? 80, input.keyver ?? 0, input.rxbuf ?? 0, input.sleep ?? 0, input.name ?? null, input.rxbuf ?? null],
      },
    ])) as RawDevice[];
    return { created, device: toDevice(rows[0]) };
  }

  poll(deviceid: string, now = Date.now()): Promise<DeviceRow | undefined> {
    return this.life.afterOpen(async () => {
      if (!this.known.has(deviceid)) return undefined;
      const t = iso(now);
      // lastseen needs no commit of its own before the answer, nor soon after: it is deferred (one UPDATE per
      // batch covers every device touched). A transaction of its own would put the poll's next reads (its
      // commands) behind that commit's fsync on this one connection. get and list write it first (touchesWritten).
      const touch = this.commits.defer({ statements: [], touch: { deviceid, time: t } }, TOUCH_DELAY_MS).catch(() => undefined);
      this.lastTouch = touch;
      void touch.then(() => {
        if (this.lastTouch === touch) this.lastTouch = undefined;
      });
      const rows = (await this.all(`SELECT ${DEVICE_COLUMNS} FROM devices WHERE deviceid = ?`, [deviceid])) as RawDevice[];
      return rows[0] ? { ...toDevice(rows[0]), lastseen: t } : undefined;
    });
  }

  /** Commits the polls' deferred lastseen now (batches take every queued write, so the latest one's commit covers all). */
  private async touchesWritten(): Promise<void> {
    const touch = this.lastTouch;
    if (!touch) return;
    this.commits.kick();
    await touch;
  }

  async get(deviceid: string): Promise<DeviceRow | undefined> {
    await this.touchesWritten();
    const rows = await this.read<RawDevice>(`SELECT ${DEVICE_COLUMNS} FROM devices WHERE deviceid = ?`, [deviceid]);
    return rows[0] ? toDevice(rows[0]) : undefined;
  }

  async update(deviceid: string, input: UpdateInput): Promise<DeviceRow | undefined> {
    const rows = (await this.write([
      {
        sql: `UPDATE devices SET
                name  = COALESCE(?, name),
                flags = COALESCE(?, flags),
                cfgsn = cfgsn + CASE WHEN ? IS NOT NULL AND ? <> data THEN 1 ELSE 0 END,
                data  = COALESCE(?, data)
              WHERE deviceid = ? RETURNING ${DEVICE_COLUMNS}`,
        params: [input.name ?? null, input.flags ?? null, input.data ?? null, input.data ?? null, input.data ?? null, deviceid],
      },
    ])) as RawDevice[];
    return rows[0] ? toDevice(rows[0]) : undefined;
  }

  async list(options: ListOptions): Promise<{ devices: DeviceRow[]; total: number }> {
    // The ORDER BY column comes from a fixed list, never from the caller's text.
    const sort = SORT_COLUMNS.includes(options.sort as SortColumn) ? (options.sort as SortColumn) : 'deviceid';
    const order = `${sort} ${options.descending ? 'DESC' : 'ASC'}, deviceid ASC`;
    const pattern = options.search ? `%${options.search.replace(/[\\%_]/g, (c) => `\\${c}`)}%` : null;
    const where = `(? IS NULL OR deviceid LIKE ? ESCAPE '\\' OR name LIKE ? ESCAPE '\\' OR ipaddr LIKE ? ESCAPE '\\' OR ssid LIKE ? ESCAPE '\\')`;
    const filter = [pattern, pattern, pattern, pattern, pattern];
    await this.touchesWritten();
    const rows = await this.read<RawDevice>(`SELECT ${DEVICE_COLUMNS} FROM devices WHERE ${where} ORDER BY ${order} LIMIT ? OFFSET ?`, [...filter, options.limit, options.offset]);
    const [count] = await this.read<{ n: number }>(`SELECT count(*) AS n FROM devices WHERE ${where}`, filter);
    return { devices: rows.map(toDevice), total: count.n };
  }

  remove(deviceid: string): Promise<boolean> {
    return this.life.afterOpen(async () => {
      if (!this.known.has(deviceid)) return false;
      this.known.delete(deviceid);
      // Its keys are revoked for good: every version it had or was moving to.
      const versions = this.keyVersions.get(deviceid) ?? { keyver: 0 };
      const floor = Math.max(versions.keyver, versions.pending ?? 0) + 1;
      this.keyVersions.delete(deviceid);
      this.revokedBelow.set(deviceid, floor);
      this.acked.forget(deviceid);
      this.sources.delete(deviceid);
      this.transports.delete(deviceid);
      const t = iso(Date.now());
      const rows = await this.write([
        { sql: 'DELETE FROM readings WHERE deviceid = ?', params: [deviceid] },
        { sql: 'DELETE FROM commands WHERE deviceid = ?', params: [deviceid] },
        { sql: 'DELETE FROM provisioned WHERE deviceid = ?', params: [deviceid] },
        { sql: 'INSERT INTO revoked (deviceid, floor, at) VALUES (?, ?, ?) ON CONFLICT (deviceid) DO UPDATE SET floor = max(floor, excluded.floor), at = excluded.at', params: [deviceid, floor, t] },
        { sql: 'DELETE FROM devices WHERE deviceid = ? RETURNING deviceid', params: [deviceid] },
      ]);
      return rows.length > 0;
    });
  }

  // --- readings ----------------------------------------------------------

  logReading(deviceid: string, seqn: number | null, payload: unknown, now = Date.now()): Promise<boolean> {
    return this.life.afterOpen(async () => {
      if (!this.known.has(deviceid)) {
        // Nothing is stored for an unregistered id, nor the state its message was accepted with: no replay
        // row for ids that never registered (the window stays in the bounded cache only).
        this.replays.takeDeferred(deviceid);
        return false;
      }
      // A state accepted with persist with-next-write is submitted in the same tick as this reading, so both
      // are in the same batch: they commit in one transaction, or neither does.
      const deferred = this.replays.takeDeferred(deviceid);
      if (deferred) this.persistReplay(deviceid, deferred).catch(() => undefined);
      const t = iso(now);
      this.pruner.noteReading(deviceid);
      await this.commits.submit({
        statements: [],
        row: { into: 'readings (deviceid, seqn, received, payload)', values: [deviceid, seqn, t, JSON.stringify(payload ?? null)] },
        touch: { deviceid, time: t },
      });
      return true;
    });
  }

  async prune(retention: Retention, now = Date.now()): Promise<number> {
    const deleted = async (sql: string, params: unknown[]) => (await this.write([{ sql, params }])).length;
    return this.pruner.prune(retention, now, {
      batch: PRUNE_BATCH,
      concurrency: PRUNE_DEVICES_AT_ONCE,
      deleteAged: (cutoff) => deleted('DELETE FROM readings WHERE id IN (SELECT id FROM readings ORDER BY id LIMIT ?) AND received < ? RETURNING id', [PRUNE_BATCH, cutoff]),
      // Everything past the newest maxPerDevice of the device (an index seek on readings_by_device).
      deleteBeyond: (deviceid, keep) => deleted('DELETE FROM readings WHERE id IN (SELECT id FROM readings WHERE deviceid = ? ORDER BY id DESC LIMIT ? OFFSET ?) RETURNING id', [deviceid, PRUNE_BATCH, keep]),
      allDevices: async () => [...this.known],
    });
  }

  async noteProvisioned(deviceid: string, keyver: number, now = Date.now()): Promise<void> {
    await this.write([{ sql: 'INSERT INTO provisioned (deviceid, keyver, created) VALUES (?, ?, ?) ON CONFLICT (deviceid) DO UPDATE SET keyver = excluded.keyver, created = excluded.created', params: [deviceid, keyver, iso(now)] }]);
  }

  async provisioned(limit: number): Promise<ProvisionedRow[]> {
    return this.read<ProvisionedRow>(
      'SELECT p.deviceid, p.keyver, p.created FROM provisioned p WHERE NOT EXISTS (SELECT 1 FROM devices d WHERE d.deviceid = p.deviceid) ORDER BY p.created DESC LIMIT ?',
      [limit],
    );
  }

  async forgetProvisioned(deviceid: string): Promise<boolean> {
    return ((await this.write([{ sql: 'DELETE FROM provisioned WHERE deviceid = ? RETURNING deviceid', params: [deviceid] }])) as unknown[]).length > 0;
  }

  async history(deviceid: string, { fields, since, bucketMs }: HistoryOptions): Promise<HistoryBucket[]> {
    // Readings are numbered as they arrive: the window is the ids above its newest older reading, which is found by
    // walking back from the device's newest (the window's readings, not all of the device's).
    const [edge] = await this.read<{ id: number }>('SELECT id FROM readings WHERE deviceid = ? AND received < ? ORDER BY id DESC LIMIT 1', [deviceid, iso(since)]);
    // (Field names are validated to [A-Za-z0-9_-]; the JSON paths are bound, not spliced.)
    const values = fields.map((_, i) => `CASE WHEN json_type(payload, ?) IN ('integer', 'real') THEN json_extract(payload, ?) END AS v${i}`).join(', ');
    const paths = fields.flatMap((f) => [`$.data."${f}"`, `$.data."${f}"`]);
    const rows = await this.read<RawHistory>(
      `SELECT b, count(*) AS n, ${historyColumns(fields)} FROM (
         SELECT CAST((round((julianday(received) - 2440587.5) * 86400000) - ?) / ? AS INTEGER) AS b, ${values}
         FROM readings WHERE deviceid = ? AND id > ? AND received >= ?
       ) GROUP BY b ORDER BY b`,
      [since, bucketMs, ...paths, deviceid, edge?.id ?? 0, iso(since)],
    );
    return toHistory(rows, fields, since, bucketMs);
  }

  async readings(deviceid: string, options: ReadingsOptions): Promise<ReadingRow[]> {
    const rows = await this.read<Omit<ReadingRow, 'payload'> & { payload: string }>(
      `SELECT id, deviceid, seqn, received, payload FROM readings
       WHERE deviceid = ? AND (? IS NULL OR received >= ?) ORDER BY id DESC LIMIT ?`,
      [deviceid, options.since ?? null, options.since ?? null, options.limit],
    );
    return rows.map((r) => {
      let payload: unknown = null;
      try {
        payload = JSON.parse(r.payload);
      } catch {
        payload = r.payload;
      }
      return { ...r, payload };
    });
  }

  // --- commands (downlink) -------------------------------------------------

  private readonly downlinkCache = new Map<string, number>();
  private readonly downlinkLoads = new Map<string, Promise<void>>();

  nextCommandSeq(deviceid: string): Promise<number> {
    return this.life.afterOpen(async () => {
      if (!this.downlinkCache.has(deviceid)) {
        let loading = this.downlinkLoads.get(deviceid);
        if (!loading) {
          loading = this.all('SELECT seqn FROM downlink_counters WHERE deviceid = ?', [deviceid])
            .then((rows) => {
              if (!this.downlinkCache.has(deviceid)) this.downlinkCache.set(deviceid, (rows[0] as { seqn: number } | undefined)?.seqn ?? 0);
            })
            .finally(() => this.downlinkLoads.delete(deviceid));
          this.downlinkLoads.set(deviceid, loading);
        }
        await loading;
      }
      // Allocated synchronously, so concurrent commands get distinct numbers.
      const seqn = (this.downlinkCache.get(deviceid) ?? 0) + 1;
      this.downlinkCache.set(deviceid, seqn);
      await this.commits.submit({
        statements: [],
        row: { into: 'downlink_counters (deviceid, seqn)', values: [deviceid, seqn], conflict: 'ON CONFLICT (deviceid) DO UPDATE SET seqn = max(seqn, excluded.seqn)' },
        key: `downlink:${deviceid}`,
      });
      return seqn;
    });
  }

  queueCommand(deviceid: string, seqn: number, command: unknown, now = Date.now()): Promise<void> {
    return this.life.afterOpen(async () => {
      await this.commits.submit({ statements: [], row: { into: 'commands (deviceid, seqn, command, created)', values: [deviceid, seqn, JSON.stringify(command), iso(now)] } });
    });
  }

  async pendingCommands(deviceid: string, limit: number): Promise<CommandRow[]> {
    const rows = await this.read<{ seqn: number; command: string; created: string }>(
      'SELECT seqn, command, created FROM commands WHERE deviceid = ? AND delivered IS NULL AND expired IS NULL ORDER BY seqn LIMIT ?',
      [deviceid, limit],
    );
    return rows.map((r) => ({ seqn: r.seqn, command: JSON.parse(r.command), created: r.created }));
  }

  markDelivered(deviceid: string, seqns: number[], via: string, now = Date.now()): Promise<void> {
    if (seqns.length === 0) return Promise.resolve();
    return this.write([
      {
        sql: `UPDATE commands SET delivered = ?, via = ? WHERE deviceid = ? AND delivered IS NULL AND seqn IN (${seqns.map(() => '?').join(', ')})`,
        params: [iso(now), via, deviceid, ...seqns],
      },
    ]).then(() => undefined);
  }

  ackCommands(deviceid: string, upTo: number, now = Date.now()): Promise<boolean> {
    return this.life.afterOpen(async () => {
      // Most uplinks repeat the acknowledgement of the one before: only a higher one is written.
      if (!this.known.has(deviceid) || !this.acked.isNew(deviceid, upTo)) return false;
      this.acked.record(deviceid, upTo);
      const rows = await this.write([
        {
          sql: "UPDATE commands SET delivered = ?, via = 'ack' WHERE deviceid = ? AND delivered IS NULL AND expired IS NULL AND seqn <= ? RETURNING seqn",
          params: [iso(now), deviceid, upTo],
        },
      ]);
      return rows.length > 0;
    });
  }

  async expireCommands(maxAgeMs: number, now = Date.now()): Promise<ExpiredCommand[]> {
    const rows = (await this.write([
      {
        sql: 'UPDATE commands SET expired = ? WHERE delivered IS NULL AND expired IS NULL AND created < ? RETURNING deviceid, seqn, created',
        params: [iso(now), new Date(now - maxAgeMs).toISOString()],
      },
    ])) as ExpiredCommand[];
    return sortExpired(rows);
  }

  async commandLog(deviceid: string, limit: number): Promise<CommandStatusRow[]> {
    const rows = await this.read<RawCommandStatus>(
      'SELECT seqn, created, delivered, via, expired FROM commands WHERE deviceid = ? ORDER BY seqn DESC LIMIT ?',
      [deviceid, limit],
    );
    return rows.map(toCommandStatus);
  }

  // --- key versions --------------------------------------------------------

  async checkKey(deviceid: string, kv: number): Promise<KeyCheck> {
    await this.life.afterOpen(async () => undefined);
    const versions = this.keyVersions.get(deviceid);
    return keyCheck({ keyver: versions?.keyver, pending: versions?.pending ?? null, floor: this.revokedBelow.get(deviceid) ?? 0 }, kv);
  }

  async keyFloor(deviceid: string): Promise<number> {
    await this.life.afterOpen(async () => undefined);
    return this.revokedBelow.get(deviceid) ?? 0;
  }

  promoteKey(deviceid: string, kv: number, keywrap?: string): Promise<void> {
    return this.life.afterOpen(async () => {
      const versions = this.keyVersions.get(deviceid);
      if (!versions || versions.pending !== kv) return;
      // Decided here, synchronously: from now on the old version is refused.
      this.keyVersions.set(deviceid, { keyver: kv, ...(keywrap !== undefined ? { keywrap } : {}) });
      await this.write([
        {
          sql: 'UPDATE devices SET keyver = ?, pendingkeyver = NULL, keywrap = ?, rekeysecret = NULL WHERE deviceid = ? AND pendingkeyver = ?',
          params: [kv, keywrap ?? null, deviceid, kv],
        },
      ]);
    });
  }

  keyRecord(deviceid: string): KeyRecord | undefined | Promise<KeyRecord | undefined> {
    // From memory once open: no promise, so a message's key is found without an event-loop turn.
    if (this.life.isOpen) return this.keyVersions.get(deviceid);
    return this.life.afterOpen(async () => this.keyVersions.get(deviceid));
  }

  offerRekey(deviceid: string, kv: number, rekeysecret: string): Promise<string | undefined> {
    return this.life.afterOpen(async () => {
      const versions = this.keyVersions.get(deviceid);
      if (!versions || versions.pending !== kv) return undefined;
      if (versions.rekeysecret !== undefined) return versions.rekeysecret;
      // Decided synchronously: a second offer meanwhile gets this one.
      this.keyVersions.set(deviceid, { ...versions, rekeysecret });
      await this.write([{ sql: 'UPDATE devices SET rekeysecret = ? WHERE deviceid = ? AND pendingkeyver = ?', params: [rekeysecret, deviceid, kv] }]);
      return rekeysecret;
    });
  }

  beginRekey(deviceid: string): Promise<{ keyver: number; pending: number } | undefined> {
    return this.life.afterOpen(async () => {
      const versions = this.keyVersions.get(deviceid);
      if (!versions) return undefined;
      // A rekey already under way keeps its version: the device may hold it already.
      const pending = versions.pending ?? versions.keyver + 1;
      this.keyVersions.set(deviceid, { ...versions, pending });
      await this.write([{ sql: 'UPDATE devices SET pendingkeyver = ? WHERE deviceid = ?', params: [pending, deviceid] }]);
      return { keyver: versions.keyver, pending };
    });
  }

  noteSource(deviceid: string, address: string): Promise<void> {
    // (Checked first: every reading of a device that stays put ends here, and must cost no more than the lookup.)
    if (this.sources.get(deviceid) === address) return Promise.resolve();
    return this.life.afterOpen(async () => {
      if (!this.known.has(deviceid) || this.sources.get(deviceid) === address) return;
      this.sources.set(deviceid, address);
      await this.write([{ sql: 'UPDATE devices SET seenaddr = ? WHERE deviceid = ?', params: [address, deviceid] }]);
    });
  }

  async seenAddress(deviceid: string): Promise<string | null> {
    const rows = await this.read<{ seenaddr: string | null }>('SELECT seenaddr FROM devices WHERE deviceid = ?', [deviceid]);
    return rows[0]?.seenaddr ?? null;
  }

  async commandTarget(deviceid: string): Promise<{ ipaddr: string; cmdport: number; transport: Transport; sleep: number } | undefined> {
    const rows = await this.read<{ ipaddr: string; cmdport: number; transport: string | null; sleep: number }>('SELECT ipaddr, cmdport, transport, sleep FROM devices WHERE deviceid = ?', [deviceid]);
    return rows[0] ? { ...rows[0], sleep: Number(rows[0].sleep) || 0, transport: rows[0].transport === 'mqtt' ? 'mqtt' : 'http' } : undefined;
  }

  noteTransport(deviceid: string, transport: Transport): Promise<void> {
    // (Checked first, as noteSource: a device that stays on its transport costs only the lookup.)
    if (this.transports.get(deviceid) === transport) return Promise.resolve();
    return this.life.afterOpen(async () => {
      if (!this.known.has(deviceid) || this.transports.get(deviceid) === transport) return;
      this.transports.set(deviceid, transport);
      // An authenticated uplink over MQTT: connected now (its status at connect came before it was known); over HTTP
      // the broker's word no longer applies.
      await this.write([{ sql: 'UPDATE devices SET transport = ?, connected = ? WHERE deviceid = ?', params: [transport, transport === 'mqtt' ? 1 : null, deviceid] }]);
    });
  }

  noteStatus(deviceid: string, connected: boolean): Promise<boolean> {
    return this.life.afterOpen(async () => {
      if (!this.known.has(deviceid)) return false;
      await this.write([{ sql: 'UPDATE devices SET connected = ? WHERE deviceid = ?', params: [connected ? 1 : 0, deviceid] }]);
      return true;
    });
  }

  // --- replay (the windows' books: replay-states.ts) ------------------------

  private async loadReplay(deviceid: string): Promise<ReplayState | undefined> {
    const [r] = await this.read<{ top: number; seen: string; width: number }>('SELECT top, seen, width FROM replay_state WHERE deviceid = ?', [deviceid]);
    return r ? { top: r.top, seen: BigInt(`0x${r.seen}`), width: r.width } : undefined;
  }

  /** The upsert of a device's replay state; only the newest one of a device in a batch is executed. */
  private replayWrite(deviceid: string, state: ReplayState): Write {
    return {
      statements: [],
      row: {
        into: 'replay_state (deviceid, top, seen, width)',
        values: [deviceid, state.top, state.seen.toString(16), state.width],
        // `updated` is the commit time, taken by SQLite once per statement.
        conflict: `ON CONFLICT (deviceid) DO UPDATE SET top = excluded.top, seen = excluded.seen, width = excluded.width, updated = ${NOW_SQL}`,
      },
      key: `replay:${deviceid}`,
    };
  }

  /** Counts the write as in flight; a failed one is held back for a later batch unless the store is closing. */
  private trackReplay<T>(deviceid: string, state: ReplayState, write: Promise<T>): Promise<T> {
    return this.replays.track(deviceid, state, write, () => this.commits.stats.batches, () => !this.life.closed);
  }

  private persistReplay(deviceid: string, state: ReplayState): Promise<unknown> {
    return this.trackReplay(deviceid, state, this.life.afterOpen(() => this.commits.submit(this.replayWrite(deviceid, state))));
  }

  /**
   * Deferred states that no reading claimed: each joins a batch once DEFERRED_BATCHES batches have started
   * after it was decided (a reading normally claims it within a tick or two), or every one of them on close.
   */
  private deferredWrites(batchIndex: number): PendingWrite[] {
    return this.replays.due(batchIndex, (deviceid) => this.known.has(deviceid)).map(({ deviceid, state }) => {
      let resolve!: (rows: unknown[]) => void;
      let reject!: (err: unknown) => void;
      void this.trackReplay(deviceid, state, new Promise<unknown[]>((res, rej) => { resolve = res; reject = rej; })).catch(() => undefined);
      return { ...this.replayWrite(deviceid, state), resolve, reject };
    });
  }

  /** Windows in memory (for tests and benchmarks). */
  get replayCacheSize(): number {
    return this.replays.size;
  }

  async checkReplay(deviceid: string, seq: number, window: number, persist: ReplayPersist = 'before-send'): Promise<ReplayResult> {
    if (this.life.closed) throw new Error('device store is closed');
    await this.replays.current(deviceid);
    // From here to the cache update nothing awaits: the decision is atomic.
    const cached = this.replays.cached(deviceid);
    if (cached === undefined) return this.checkReplay(deviceid, seq, window, persist);
    const decision = decide(cached, seq, window);
    if (!decision.accepted) return decision;
    this.replays.remember(deviceid, decision.next);
    if (persist === 'with-next-write') {
      this.replays.defer(deviceid, decision.next, this.commits.stats.batches);
    } else {
      this.replays.takeDeferred(deviceid);
      await this.persistReplay(deviceid, decision.next);
    }
    return { accepted: true, state: decision.next };
  }

  async resetReplay(deviceid: string, from?: number): Promise<void> {
    if (!this.life.isOpen) await this.life.afterOpen(async () => undefined);
    // A floor: everything below `from` counts as seen; with no floor the counter starts afresh.
    const state: ReplayState = from === undefined || from <= 0 ? INITIAL_STATE : { top: from - 1, seen: 1n, width: 0 };
    this.replays.remember(deviceid, state);
    this.replays.takeDeferred(deviceid);
    await this.persistReplay(deviceid, state);
  }

  replayState(deviceid: string): Promise<ReplayState> {
    return this.replays.current(deviceid);
  }
}
