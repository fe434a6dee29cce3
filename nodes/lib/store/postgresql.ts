/**
 * The shared backend: PostgreSQL through node-postgres (`pg`), for several Node-RED instances over one database.
 *
 * Nothing that decides is kept in memory, because another instance may change it at any moment: the replay
 * windows, the registered ids, the key versions and the revocations are read from the database each time.
 * Every statement is parameterised; the schema has its own versioned migrations (PG_MIGRATIONS), applied under an
 * advisory lock so that instances starting together migrate once.
 *
 * Uplink decisions (the key version, the replay window, the promotion of a pending key version) are made inside a
 * transaction that holds a per-device advisory lock: any number of instances deciding for the same device at the
 * same moment are serialised by PostgreSQL, and a number is accepted exactly once. The decision itself is the same
 * pure function as SQLite's (replay-window.ts), run on the row read under the lock. (A lock rather than one
 * atomic statement: the window of up to 1,024 bits would have to be decided a second time in SQL, and the lock also
 * covers ids that have no row yet.) Decisions are group-committed: the requests waiting while a transaction commits
 * are decided together in the next one (one call that locks and reads, one statement that writes, for all of them),
 * and each resolves after its transaction has committed (persist `before-send`; `with-next-write` is treated the
 * same here, since a decision cannot be trusted before it is in the database).
 *
 * No in-process fast path rejects numbers: an operator's reset on any instance may lower a device's floor, so a
 * floor cached here could refuse a number the database would accept. (Rejections write nothing, so a replay
 * flood costs reads, not commits.) The only cache is of acknowledgements this process already applied, which
 * cannot change a decision: an applied acknowledgement stays applied.
 *
 * Other writes (readings, lastseen, commands, operator changes) go through a second group commit: per batch, the
 * readings as one multi-row INSERT (the rows unpacked from one JSON parameter) and lastseen as one UPDATE, both in
 * one statement.
 */
import type * as PgTypes from 'pg';
import type { DeviceRow, HistoryBucket, ReadingRow, RegisterInput, Retention, Transport, UpdateInput } from '../registry';
import { INITIAL_STATE, ReplayState, decide } from '../uplink';
import type { KeyCheck, ReplayPersist, ReplayResult, UplinkVerdict } from '../uplink';
import { DEVICE_COLUMNS, KeyState, RawCommandStatus, RawDevice, RawHistory, historyColumns, keyCheck, sortExpired, toCommandStatus, toDevice, toHistory } from './rows';
import type { HealthEvent } from './availability';
import { AckedUpTo, ReadingsPruner } from './bookkeeping';
import { StoreLifecycle } from './lifecycle';
import { GroupCommit, PendingWrite, Statement } from './group-commit';
import { SORT_COLUMNS, StorageUnavailableError } from './types';
import type { CommandRow, CommandStatusRow, DeviceStore, ExpiredCommand, HistoryOptions, KeyRecord, ListOptions, ProvisionedRow, ReadingsOptions, SortColumn } from './types';

/** Each entry migrates the schema from version i to i + 1. Never edit a shipped entry: append. */
export const PG_MIGRATIONS: string[][] = [
  [
    `CREATE TABLE devices (
       deviceid      text PRIMARY KEY,
       name          text NOT NULL DEFAULT '',
       lastseen      timestamptz,
       ssid          text NOT NULL DEFAULT '',
       ipaddr        text NOT NULL DEFAULT '',
       cfgsn         integer NOT NULL DEFAULT 1,
       flags         integer NOT NULL DEFAULT 0,
       data          text NOT NULL DEFAULT '{}',
       datec         timestamptz NOT NULL,
       cmdport       integer NOT NULL DEFAULT 80,
       keyver        integer NOT NULL DEFAULT 0,
       pendingkeyver integer,
       rxbuf         integer NOT NULL DEFAULT 0
     )`,
    `CREATE TABLE replay_state (
       deviceid text PRIMARY KEY,
       top      bigint NOT NULL,
       seen     text NOT NULL,
       width    integer NOT NULL,
       updated  timestamptz NOT NULL DEFAULT now()
     )`,
    `CREATE TABLE readings (
       id       bigserial PRIMARY KEY,
       deviceid text NOT NULL,
       seqn     bigint,
       received timestamptz NOT NULL,
       payload  json NOT NULL
     )`,
    `CREATE INDEX readings_by_device ON readings (deviceid, id)`,
    `CREATE TABLE downlink_counters (
       deviceid text PRIMARY KEY,
       seqn     bigint NOT NULL
     )`,
    `CREATE TABLE commands (
       id        bigserial PRIMARY KEY,
       deviceid  text NOT NULL,
       seqn      bigint NOT NULL,
       command   text NOT NULL,
       created   timestamptz NOT NULL,
       delivered timestamptz,
       via       text,
       expired   timestamptz,
       UNIQUE (deviceid, seqn)
     )`,
    `CREATE INDEX commands_waiting ON commands (created) WHERE delivered IS NULL AND expired IS NULL`,
    `CREATE TABLE revoked (
       deviceid text PRIMARY KEY,
       floor    integer NOT NULL,
       at       timestamptz NOT NULL
     )`,
    // One round trip for what an uplink decision needs: the devices' replay locks (advisory, per device id, taken
    // in one order by every instance, so batches cannot deadlock), then, read after the locks are held (each
    // statement of a function takes a new snapshot), their replay windows and key versions.
    `CREATE FUNCTION e2ee_lock_uplinks(ids text[]) RETURNS TABLE (
       id text, top bigint, seen text, width integer, known boolean, keyver integer, pendingkeyver integer, floor integer
     ) LANGUAGE plpgsql AS $$
     BEGIN
       PERFORM pg_advisory_xact_lock(${0x45325250}, locks.h) FROM (SELECT DISTINCT hashtext(i) AS h FROM unnest(ids) AS i ORDER BY 1) AS locks;
       RETURN QUERY SELECT i, r.top, r.seen, r.width, d.deviceid IS NOT NULL, d.keyver, d.pendingkeyver, v.floor
         FROM unnest(ids) AS i
         LEFT JOIN replay_state r ON r.deviceid = i
         LEFT JOIN devices d ON d.deviceid = i
         LEFT JOIN revoked v ON v.deviceid = i;
     END
     $$`,
  ],
  [
    // Where the device's latest authenticated uplink came from: the only address commands are pushed to.
    `ALTER TABLE devices ADD COLUMN seenaddr text`,
  ],
  [
    // The X25519 rekey: the current key wrapped under the master when a rekey made it, and the server's wrapped
    // secret of the rekey pending (both opaque here; only the keyring can unwrap them).
    `ALTER TABLE devices ADD COLUMN keywrap text`,
    `ALTER TABLE devices ADD COLUMN rekeysecret text`,
  ],
  [
    // The transport of the device's latest authenticated uplink (NULL: http): commands for an MQTT device are published.
    `ALTER TABLE devices ADD COLUMN transport text`,
  ],
  [
    // Connected to the broker, as the device's MQTT status topic says (NULL: never said). Shown, never acted on.
    `ALTER TABLE devices ADD COLUMN connected boolean`,
  ],
  [
    // Seconds a battery device deep-sleeps between wakes, as its registration declared (0: always on).
    `ALTER TABLE devices ADD COLUMN sleep integer NOT NULL DEFAULT 0`,
  ],
  [
    // Devices an operator provisioned (a secrets.h was made): listed as "provisioned, not seen" until they register.
    `CREATE TABLE provisioned (
       deviceid text PRIMARY KEY,
       keyver   integer NOT NULL,
       created  timestamptz NOT NULL
     )`,
  ],
];

/** How long an instance trusts that the device's source address it wrote is still the stored one. */
export const SOURCE_REFRESH_MS = 60_000;

/** Most readings one prune step removes (one transaction). */
export const PG_PRUNE_BATCH = 500;

/** The default number of connections an instance keeps to the database. */
export const DEFAULT_POOL_SIZE = 10;

/**
 * The first key of this package's advisory locks ('E2EE'); the second is 0 for migrations, 1 for the device cap.
 * (The per-device uplink locks use 'E2RP' and hashtext(deviceid): see e2ee_lock_uplinks.)
 */
const LOCK_CLASS = 0x45324545;

/** How often a batch that lost a deadlock or a serialisation conflict is tried again before its writes fail. */
const CONFLICT_RETRIES = 5;
/** Key records kept in memory for devices at rest (see keyRecord); beyond it the longest held is dropped. */
const MAX_RESTING_KEYS = 100_000;

/** Node's socket errors that mean the server cannot be reached now. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * PostgreSQL's answers that mean "not now" rather than "never" (SQLSTATE classes 08 connection exception, 53
 * insufficient resources, 57P admin or crash shutdown, 58 system error), the socket's errors, and node-postgres's
 * own connection errors (no code): they become StorageUnavailableError (503).
 */
export function pgStorageError(err: unknown): unknown {
  if (err instanceof StorageUnavailableError) return err;
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : undefined;
  if (code && (/^(08|53|57P|58)/.test(code) || NETWORK_CODES.has(code))) return new StorageUnavailableError(code);
  if (code === undefined && typeof e?.message === 'string' && /connection|terminat|timeout|not queryable/i.test(e.message)) {
    return new StorageUnavailableError('PG_CONNECTION');
  }
  return err;
}

/** A deadlock or a serialisation conflict between instances: the whole transaction may simply run again. */
function isConflict(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === '40P01' || code === '40001';
}

const iso = (now: number) => new Date(now).toISOString();

/**
 * Where a connection string points, without its user, password or parameters (for logs and the sidebar):
 * `postgresql://host:port/database`. Anything unreadable is shown as `postgresql`.
 */
export function describeConnection(connectionString: string): string {
  try {
    const url = new URL(connectionString);
    return `postgresql://${url.host}${url.pathname}`;
  } catch {
    return 'postgresql';
  }
}

/** The backend of a device-store node: `postgresql` (also `postgres`, `pg`), else the embedded `sqlite`. */
export function parseBackend(value: unknown): 'sqlite' | 'postgresql' {
  const v = typeof value === 'string' ? value.trim().toLowerCase() : '';
  return v === 'postgresql' || v === 'postgres' || v === 'pg' ? 'postgresql' : 'sqlite';
}

/** bigint columns hold sequence numbers and ids, all safe integers; timestamps read as ISO 8601 text, as SQLite's. */
function typeParsers(pg: typeof PgTypes): PgTypes.CustomTypesConfig {
  const timestamptz = pg.types.getTypeParser(1184 as never, 'text') as (value: string) => Date;
  return {
    getTypeParser: ((oid: number, format?: string) => {
      if (oid === 20) return (value: string) => Number(value);
      if (oid === 1184) return (value: string) => timestamptz(value).toISOString();
      return pg.types.getTypeParser(oid as never, format as never);
    }) as PgTypes.CustomTypesConfig['getTypeParser'],
  };
}

export interface PostgresOptions {
  /** The connection string (a credential: never logged). */
  connectionString: string;
  /** Connections this instance keeps (default DEFAULT_POOL_SIZE). */
  poolSize?: number;
  /** Test hook: called with each batch size. */
  onBatch?: (size: number) => void;
  /** Told when the database becomes unavailable and when it is available again, once per change. */
  onHealth?: (health: HealthEvent) => void;
}

/** An uplink decision (with the key version it was sealed under, if any) or an operator's reset, in the replay batch. */
type ReplayWrite = { deviceid: string } & ({ seq: number; window: number; keyver?: number; keywrap?: string } | { reset: ReplayState });

/**
 * The one statement that stores a batch's readings (only for registered devices) and moves lastseen of every device
 * touched, and how its answer tells each reading whether it was stored. The rows travel as one JSON array in one
 * parameter (JSON.stringify is native; binding arrays of strings escapes every character in JavaScript), unpacked
 * by json_to_recordset; each payload travels boxed in a one-element array, so that a JSON null stays a JSON null,
 * and stays json, verbatim.
 */
function ingestOf(batch: PendingWrite<DataWrite, unknown>[]) {
  const readings: { index: number; r: { deviceid: string; seqn: number | null; received: string; payload: string } }[] = [];
  const touched = new Map<string, string>();
  batch.forEach((w, index) => {
    if ('reading' in w) readings.push({ index, r: w.reading });
    const t = 'touch' in w ? w.touch : 'reading' in w ? { deviceid: w.reading.deviceid, time: w.reading.received } : undefined;
    if (t && (touched.get(t.deviceid) ?? '') < t.time) touched.set(t.deviceid, t.time);
  });
  const ids = [...touched.keys()];
  const statement = {
    name: 'e2ee-ingest',
    text: `WITH batch AS (
             SELECT u.* FROM json_to_recordset($1::json) AS u(ord integer, deviceid text, seqn bigint, received timestamptz, boxed json)
             WHERE EXISTS (SELECT 1 FROM devices d WHERE d.deviceid = u.deviceid)
           ), stored AS (
             INSERT INTO readings (deviceid, seqn, received, payload) SELECT deviceid, seqn, received, boxed -> 0 FROM batch ORDER BY ord
           ), seen AS (
             UPDATE devices SET lastseen = GREATEST(devices.lastseen, t.time)
             FROM json_to_recordset($2::json) AS t(deviceid text, time timestamptz),
                  (SELECT deviceid FROM devices WHERE deviceid IN (SELECT value FROM json_array_elements_text($3::json)) ORDER BY deviceid FOR UPDATE) AS locked
             WHERE devices.deviceid = t.deviceid AND locked.deviceid = t.deviceid
           )
           SELECT ord FROM batch`,
    values: [
      `[${readings.map((x, i) => `{"ord":${i + 1},"deviceid":${JSON.stringify(x.r.deviceid)},"seqn":${x.r.seqn === null ? 'null' : x.r.seqn},"received":"${x.r.received}","boxed":[${x.r.payload}]}`).join(',')}]`,
      JSON.stringify(ids.map((id) => ({ deviceid: id, time: touched.get(id) }))),
      JSON.stringify(ids),
    ],
  };
  return {
    statement,
    empty: readings.length === 0 && ids.length === 0,
    /** Marks each reading of the batch stored (true) or not (false, an unregistered device) in `out`. */
    settle: (rows: { ord: number }[], out: unknown[]) => {
      const stored = new Set(rows.map((r) => Number(r.ord)));
      readings.forEach((x, i) => { out[x.index] = stored.has(i + 1); });
    },
  };
}

/** A write of the data batch. */
type DataWrite =
  | { reading: { deviceid: string; seqn: number | null; received: string; payload: string } }
  | { touch: { deviceid: string; time: string } }
  | { statements: Statement[] };

export class PostgresStore implements DeviceStore {
  readonly backend = 'postgresql';
  private pool?: PgTypes.Pool;
  private readonly replays: GroupCommit<ReplayWrite, UplinkVerdict>;
  private readonly commits: GroupCommit<DataWrite, unknown>;
  /** Acknowledgements applied through this process (others may apply them too: a repeat is harmless). */
  private readonly acked = new AckedUpTo();
  /** Key records of devices with no rekey pending, as last read (see keyRecord). */
  private readonly restingKeys = new Map<string, KeyRecord>();
  /** The source address this process last wrote for each device, and when (to write it only when it changes). */
  private readonly sources = new Map<string, { address: string; at: number }>();
  private readonly transports = new Map<string, { transport: Transport; at: number }>();
  /** Devices that logged readings through this process since its last prune by count. */
  private readonly pruner = new ReadingsPruner();
  private readonly life: StoreLifecycle;

  constructor(private readonly options: PostgresOptions) {
    this.life = new StoreLifecycle(options.onHealth, 'PG_CONNECTION');
    this.replays = new GroupCommit((batch) => this.commitReplays(batch));
    this.commits = new GroupCommit((batch) => this.commitData(batch));
    this.life.start({
      prepare: () => this.createPool(),
      attempt: async () => {
        await this.migrate();
        this.life.isOpen = true;
      },
      classify: pgStorageError,
    });
  }

  /** Both commit queues together (for the close log and benchmarks). */
  get groupCommitStats() {
    const a = this.replays.stats;
    const b = this.commits.stats;
    return { batches: a.batches + b.batches, writes: a.writes + b.writes, largestBatch: Math.max(a.largestBatch, b.largestBatch) };
  }

  ready(): Promise<void> {
    return this.life.ready();
  }

  private createPool(): void {
    if (!this.options.connectionString.trim()) throw new Error('no PostgreSQL connection string');
    // Loaded here so that requiring the library does not need the pg package unless PostgreSQL is used.
    const pg = require('pg') as typeof PgTypes;
    this.pool = new pg.Pool({
      connectionString: this.options.connectionString,
      max: this.options.poolSize ?? DEFAULT_POOL_SIZE,
      connectionTimeoutMillis: 5000,
      idleTimeoutMillis: 30_000,
      types: typeParsers(pg),
      application_name: 'node-red-contrib-esp-e2ee',
    });
    // A connection that the server closes (a restart) must not take the process down: the pool handles idle ones
    // ('error' on the pool), and every connection gets a listener of its own for the time it is checked out (the
    // query under way then fails, and the connection is discarded on release).
    this.pool.on('error', (err) => this.life.report(pgStorageError(err)));
    this.pool.on('connect', (client) => client.on('error', (err) => this.life.report(pgStorageError(err))));
  }

  private async migrate(): Promise<void> {
    const client = await this.connectedPool.connect();
    try {
      await client.query('BEGIN');
      try {
        // Instances that start together migrate one after the other; the later ones find nothing to do.
        await client.query('SELECT pg_advisory_xact_lock($1, 0)', [LOCK_CLASS]);
        await client.query('CREATE TABLE IF NOT EXISTS e2ee_schema_version (version integer NOT NULL)');
        const { rows } = await client.query('SELECT max(version) AS version FROM e2ee_schema_version');
        let version = (rows[0]?.version as number | null) ?? 0;
        if (version > PG_MIGRATIONS.length) throw new Error(`database schema ${version} is newer than this package supports (${PG_MIGRATIONS.length})`);
        for (; version < PG_MIGRATIONS.length; version++) {
          for (const sql of PG_MIGRATIONS[version]) await client.query(sql);
          await client.query('INSERT INTO e2ee_schema_version (version) VALUES ($1)', [version + 1]);
        }
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
      client.release();
    } catch (err) {
      client.release(true);
      throw err;
    }
  }

  async close(): Promise<void> {
    if (!(await this.life.close())) return;
    await Promise.all([this.replays.drain(), this.commits.drain()]);
    await this.pool?.end().catch(() => undefined);
  }

  private get connectedPool(): PgTypes.Pool {
    if (!this.pool) throw new StorageUnavailableError('PG_CONNECTION');
    return this.pool;
  }

  /** One statement in its own transaction, on any pooled connection. */
  private query<T>(sql: string, params: unknown[]): Promise<T[]> {
    return this.life.afterOpen(() => this.autocommit<T>({ text: sql, values: params }));
  }

  /** fn inside one transaction on one connection, once the store is open. */
  private transaction<T>(fn: (client: PgTypes.PoolClient) => Promise<T>): Promise<T> {
    return this.life.afterOpen(() => this.inTransaction(fn));
  }

  /**
   * fn inside one transaction on one connection; run again (whole) when it loses a deadlock. (The commit queues
   * call it directly: what they hold was submitted while the store was open, and commits even while it closes.)
   */
  private async inTransaction<T>(fn: (client: PgTypes.PoolClient) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      let client: PgTypes.PoolClient | undefined;
      try {
        client = await this.connectedPool.connect();
        await client.query('BEGIN');
        const result = await fn(client);
        await client.query('COMMIT');
        client.release();
        this.life.report();
        return result;
      } catch (raw) {
        if (client) {
          const broken = await client.query('ROLLBACK').then(() => false, () => true);
          client.release(broken);
        }
        if (isConflict(raw) && attempt < CONFLICT_RETRIES) continue;
        const err = pgStorageError(raw);
        this.life.report(err);
        throw err;
      }
    }
  }

  // --- group commit --------------------------------------------------------

  /**
   * Decides one batch of uplinks and resets in one transaction: the devices' locks with their windows and key
   * versions (e2ee_lock_uplinks, one round trip), the decisions in batch order (the pure rules of checkKey,
   * replay-window and promoteKey), one statement for the new windows and the promoted key versions, commit. Then
   * each decision resolves. Four round trips however many uplinks the batch holds.
   */
  private async commitReplays(batch: PendingWrite<ReplayWrite, UplinkVerdict>[]): Promise<void> {
    this.options.onBatch?.(batch.length);
    const ids = [...new Set(batch.map((w) => w.deviceid))];
    try {
      const results = await this.inTransaction(async (client) => {
        const { rows } = await client.query({ name: 'e2ee-lock-uplinks', text: 'SELECT * FROM e2ee_lock_uplinks($1::text[])', values: [ids] });
        const states = new Map<string, ReplayState>();
        const keys = new Map<string, KeyState>();
        for (const r of rows as { id: string; top: number | null; seen: string | null; width: number | null; known: boolean; keyver: number | null; pendingkeyver: number | null; floor: number | null }[]) {
          states.set(r.id, r.top === null ? INITIAL_STATE : { top: r.top, seen: BigInt(`0x${r.seen}`), width: r.width as number });
          keys.set(r.id, { keyver: r.known ? (r.keyver as number) : undefined, pending: r.pendingkeyver, floor: r.floor ?? 0 });
        }
        const changed = new Set<string>();
        const promoted = new Map<string, { kv: number; keywrap: string | null }>();
        const out: UplinkVerdict[] = batch.map((w) => {
          if ('reset' in w) {
            states.set(w.deviceid, w.reset);
            changed.add(w.deviceid);
            return { accepted: true, state: w.reset };
          }
          const key = keys.get(w.deviceid) as KeyState;
          const check = w.keyver === undefined ? 'current' : keyCheck(key, w.keyver);
          if (check === 'refused') return { accepted: false, reason: 'key-version' };
          const decision = decide(states.get(w.deviceid) ?? INITIAL_STATE, w.seq, w.window);
          if (!decision.accepted) return decision;
          states.set(w.deviceid, decision.next);
          changed.add(w.deviceid);
          if (check === 'pending') {
            // The first accepted message under the pending version: from now on the old one is refused.
            keys.set(w.deviceid, { ...key, keyver: w.keyver as number, pending: null });
            promoted.set(w.deviceid, { kv: w.keyver as number, keywrap: w.keywrap ?? null });
            return { accepted: true, state: decision.next, promoted: w.keyver as number };
          }
          return { accepted: true, state: decision.next };
        });
        if (changed.size > 0) {
          const list = [...changed];
          const st = list.map((id) => states.get(id) as ReplayState);
          await client.query({
            name: 'e2ee-decided',
            text: `WITH windows AS (
               INSERT INTO replay_state (deviceid, top, seen, width)
               SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::integer[])
               ON CONFLICT (deviceid) DO UPDATE SET top = excluded.top, seen = excluded.seen, width = excluded.width, updated = now()
             ), promoted AS (
               UPDATE devices SET keyver = p.kv, pendingkeyver = NULL, keywrap = p.wrap, rekeysecret = NULL
               FROM unnest($5::text[], $6::integer[], $7::text[]) AS p(id, kv, wrap)
               WHERE devices.deviceid = p.id AND devices.pendingkeyver = p.kv
             )
             SELECT 1`,
            values: [list, st.map((s) => s.top), st.map((s) => s.seen.toString(16)), st.map((s) => s.width), [...promoted.keys()], [...promoted.values()].map((p) => p.kv), [...promoted.values()].map((p) => p.keywrap)],
          });
        }
        return out;
      });
      batch.forEach((w, i) => w.resolve(results[i]));
    } catch (err) {
      for (const w of batch) w.reject(err);
    }
  }

  /**
   * Commits one batch of data writes: the readings as one INSERT (only for registered devices; each reading learns
   * whether it was stored) together with one lastseen UPDATE for every device touched (rows locked in id order), then
   * the other writes in order. A batch of readings and touches only is that one statement, atomic on its own (one
   * round trip); with other writes it is one transaction.
   */
  private async commitData(batch: PendingWrite<DataWrite, unknown>[]): Promise<void> {
    this.options.onBatch?.(batch.length);
    const ingest = ingestOf(batch);
    const others = batch.some((w) => 'statements' in w);
    try {
      let results: unknown[] = batch.map(() => undefined);
      if (!others) {
        ingest.settle(await this.autocommit<{ ord: number }>(ingest.statement), results);
      } else {
        // (A fresh answer per attempt: a transaction that lost a deadlock runs again whole.)
        results = await this.inTransaction(async (client) => {
          const out: unknown[] = batch.map(() => undefined);
          if (!ingest.empty) ingest.settle((await client.query(ingest.statement)).rows, out);
          for (let i = 0; i < batch.length; i++) {
            const w = batch[i];
            if (!('statements' in w)) continue;
            let last: unknown[] = [];
            for (const st of w.statements) last = (await client.query(st.sql, st.params)).rows;
            out[i] = last;
          }
          return out;
        });
      }
      batch.forEach((w, i) => w.resolve(results[i]));
    } catch (err) {
      for (const w of batch) w.reject(err);
    }
  }

  /**
   * One statement in its own transaction, retried when it loses a deadlock (the commit queues call it directly).
   * A named one is prepared once per connection.
   */
  private async autocommit<T>(statement: { name?: string; text: string; values: unknown[] }): Promise<T[]> {
    for (let attempt = 0; ; attempt++) {
      try {
        const result = await this.connectedPool.query(statement);
        this.life.report();
        return result.rows as T[];
      } catch (raw) {
        if (isConflict(raw) && attempt < CONFLICT_RETRIES) continue;
        const err = pgStorageError(raw);
        this.life.report(err);
        throw err;
      }
    }
  }

  private write(statements: Statement[]): Promise<unknown[]> {
    return this.life.afterOpen(() => this.commits.submit({ statements })) as Promise<unknown[]>;
  }

  async ping(): Promise<void> {
    await this.query('SELECT 1', []);
  }

  // --- registry ----------------------------------------------------------

  register(input: RegisterInput, now = Date.now(), maxDevices?: number): Promise<{ created: boolean; device: DeviceRow; full?: false } | { created: false; full: true }> {
    const t = iso(now);
    return this.transaction(async (client) => {
      if (maxDevices !== undefined) {
        // The cap holds across instances: new registrations count the devices one at a time.
        const { rows } = await client.query('SELECT EXISTS (SELECT 1 FROM devices WHERE deviceid = $1) AS known', [input.deviceid]);
        if (!rows[0].known) {
          await client.query('SELECT pg_advisory_xact_lock($1, 1)', [LOCK_CLASS]);
          const count = await client.query('SELECT count(*) AS n FROM devices');
          if ((count.rows[0].n as number) >= maxDevices) return { created: false as const, full: true as const };
        }
      }
      const { rows } = await client.query(
        `INSERT INTO devices (deviceid, name, lastseen, ssid, ipaddr, cfgsn, flags, data, datec, cmdport, keyver, rxbuf, sleep)
         VALUES ($1, $2, $3, $4, $5, 1, 0, '{}', $3, $6, $7, $8, $11)
         ON CONFLICT (deviceid) DO UPDATE SET ipaddr = excluded.ipaddr, ssid = excluded.ssid, lastseen = excluded.lastseen,
           cmdport = excluded.cmdport, sleep = excluded.sleep, name = CASE WHEN $9::text IS NULL THEN devices.name ELSE excluded.name END,
           rxbuf = CASE WHEN $10::integer IS NULL THEN devices.rxbuf ELSE excluded.rxbuf END
         RETURNING ${DEVICE_COLUMNS}, (xmax = 0) AS created`,
        [input.deviceid, input.name ?? '', t, input.ssid, input.ipaddr, input.cmdport ?? 80, input.keyver ?? 0, input.rxbuf ?? 0, input.name ?? null, input.rxbuf ?? null, input.sleep ?? 0],
      );
      const { created, ...device } = rows[0] as RawDevice & { created: boolean };
      // A removed id that comes back is a device provisioned anew (at a version above its revoked ones).
      if (created) await client.query('DELETE FROM revoked WHERE deviceid = $1', [input.deviceid]);
      return { created, device: toDevice(device) };
    });
  }

  poll(deviceid: string, now = Date.now()): Promise<DeviceRow | undefined> {
    return this.life.afterOpen(async () => {
      const device = await this.get(deviceid);
      if (!device) return undefined;
      const t = iso(now);
      // lastseen commits with the next data batch (one UPDATE for every device touched); the answer need not wait.
      this.commits.submit({ touch: { deviceid, time: t } }).catch(() => undefined);
      return { ...device, lastseen: t };
    });
  }

  async get(deviceid: string): Promise<DeviceRow | undefined> {
    const rows = await this.query<RawDevice>(`SELECT ${DEVICE_COLUMNS} FROM devices WHERE deviceid = $1`, [deviceid]);
    return rows[0] ? toDevice(rows[0]) : undefined;
  }

  async update(deviceid: string, input: UpdateInput): Promise<DeviceRow | undefined> {
    const rows = (await this.write([
      {
        sql: `UPDATE devices SET
                name  = COALESCE($1, name),
                flags = COALESCE($2, flags),
                cfgsn = cfgsn + CASE WHEN $3::text IS NOT NULL AND $3::text <> data THEN 1 ELSE 0 END,
                data  = COALESCE($3, data)
              WHERE deviceid = $4 RETURNING ${DEVICE_COLUMNS}`,
        params: [input.name ?? null, input.flags ?? null, input.data ?? null, deviceid],
      },
    ])) as RawDevice[];
    return rows[0] ? toDevice(rows[0]) : undefined;
  }

  async list(options: ListOptions): Promise<{ devices: DeviceRow[]; total: number }> {
    // The ORDER BY column comes from a fixed list, never from the caller's text. Text sorts bytewise and an unseen
    // device sorts first, as in SQLite, whatever the database's collation.
    const sort = SORT_COLUMNS.includes(options.sort as SortColumn) ? (options.sort as SortColumn) : 'deviceid';
    const column = sort === 'cfgsn' || sort === 'lastseen' ? sort : `${sort} COLLATE "C"`;
    const order = `${column} ${options.descending ? 'DESC NULLS LAST' : 'ASC NULLS FIRST'}, deviceid COLLATE "C" ASC`;
    const pattern = options.search ? `%${options.search.replace(/[\\%_]/g, (c) => `\\${c}`)}%` : null;
    const where = `($1::text IS NULL OR deviceid ILIKE $1 ESCAPE '\\' OR name ILIKE $1 ESCAPE '\\' OR ipaddr ILIKE $1 ESCAPE '\\' OR ssid ILIKE $1 ESCAPE '\\')`;
    const rows = await this.query<RawDevice>(`SELECT ${DEVICE_COLUMNS} FROM devices WHERE ${where} ORDER BY ${order} LIMIT $2 OFFSET $3`, [pattern, options.limit, options.offset]);
    const [count] = await this.query<{ n: number }>(`SELECT count(*) AS n FROM devices WHERE ${where}`, [pattern]);
    return { devices: rows.map(toDevice), total: count.n };
  }

  async remove(deviceid: string): Promise<boolean> {
    this.restingKeys.delete(deviceid);
    this.acked.forget(deviceid);
    this.sources.delete(deviceid);
    this.transports.delete(deviceid);
    return this.transaction(async (client) => {
      const { rows } = await client.query('SELECT keyver, pendingkeyver FROM devices WHERE deviceid = $1 FOR UPDATE', [deviceid]);
      if (rows.length === 0) return false;
      // Its keys are revoked for good: every version it had or was moving to.
      const floor = Math.max(rows[0].keyver as number, (rows[0].pendingkeyver as number | null) ?? 0) + 1;
      await client.query('DELETE FROM readings WHERE deviceid = $1', [deviceid]);
      await client.query('DELETE FROM commands WHERE deviceid = $1', [deviceid]);
      await client.query('DELETE FROM provisioned WHERE deviceid = $1', [deviceid]);
      await client.query(
        'INSERT INTO revoked (deviceid, floor, at) VALUES ($1, $2, now()) ON CONFLICT (deviceid) DO UPDATE SET floor = GREATEST(revoked.floor, excluded.floor), at = excluded.at',
        [deviceid, floor],
      );
      await client.query('DELETE FROM devices WHERE deviceid = $1', [deviceid]);
      return true;
    });
  }

  // --- readings ----------------------------------------------------------

  logReading(deviceid: string, seqn: number | null, payload: unknown, now = Date.now()): Promise<boolean> {
    return this.life.afterOpen(async () => {
      this.pruner.noteReading(deviceid);
      return (await this.commits.submit({ reading: { deviceid, seqn, received: iso(now), payload: JSON.stringify(payload ?? null) } })) as boolean;
    });
  }

  async noteProvisioned(deviceid: string, keyver: number, now = Date.now()): Promise<void> {
    await this.query('INSERT INTO provisioned (deviceid, keyver, created) VALUES ($1, $2, $3) ON CONFLICT (deviceid) DO UPDATE SET keyver = excluded.keyver, created = excluded.created', [deviceid, keyver, iso(now)]);
  }

  async provisioned(limit: number): Promise<ProvisionedRow[]> {
    const rows = await this.query<{ deviceid: string; keyver: number; created: Date }>(
      'SELECT p.deviceid, p.keyver, p.created FROM provisioned p WHERE NOT EXISTS (SELECT 1 FROM devices d WHERE d.deviceid = p.deviceid) ORDER BY p.created DESC LIMIT $1',
      [limit],
    );
    return rows.map((r) => ({ deviceid: r.deviceid, keyver: Number(r.keyver), created: new Date(r.created).toISOString() }));
  }

  async forgetProvisioned(deviceid: string): Promise<boolean> {
    return (await this.query('DELETE FROM provisioned WHERE deviceid = $1 RETURNING deviceid', [deviceid])).length > 0;
  }

  async history(deviceid: string, { fields, since, bucketMs }: HistoryOptions): Promise<HistoryBucket[]> {
    // As in SQLite: the window is the ids above its newest older reading (the field names are bound parameters).
    const values = fields.map((_, i) => `CASE WHEN json_typeof(payload->'data'->$${i + 4}) = 'number' THEN (payload->'data'->>$${i + 4})::float8 END AS v${i}`).join(', ');
    const rows = await this.query<RawHistory>(
      `SELECT b, count(*) AS n, ${historyColumns(fields)} FROM (
         SELECT floor((extract(epoch FROM received) * 1000 - $2) / $3)::bigint AS b, ${values}
         FROM readings
         WHERE deviceid = $1 AND received >= to_timestamp($2 / 1000.0)
           AND id > coalesce((SELECT id FROM readings WHERE deviceid = $1 AND received < to_timestamp($2 / 1000.0) ORDER BY id DESC LIMIT 1), 0)
       ) w GROUP BY b ORDER BY b`,
      [deviceid, since, bucketMs, ...fields],
    );
    return toHistory(rows, fields, since, bucketMs);
  }

  async readings(deviceid: string, options: ReadingsOptions): Promise<ReadingRow[]> {
    return this.query<ReadingRow>(
      `SELECT id, deviceid, seqn, received, payload FROM readings
       WHERE deviceid = $1 AND ($2::timestamptz IS NULL OR received >= $2::timestamptz) ORDER BY id DESC LIMIT $3`,
      [deviceid, options.since ?? null, options.limit],
    );
  }

  async prune(retention: Retention, now = Date.now()): Promise<number> {
    // Each step is its own short transaction, so ingest on every instance goes on between them.
    const deleted = async (sql: string, params: unknown[]) => (await this.query(sql, params)).length;
    return this.pruner.prune(retention, now, {
      batch: PG_PRUNE_BATCH,
      concurrency: 1,
      deleteAged: (cutoff) => deleted('DELETE FROM readings WHERE id IN (SELECT id FROM readings ORDER BY id LIMIT $1) AND received < $2 RETURNING id', [PG_PRUNE_BATCH, cutoff]),
      deleteBeyond: (deviceid, keep) => deleted('DELETE FROM readings WHERE id IN (SELECT id FROM readings WHERE deviceid = $1 ORDER BY id DESC LIMIT $2 OFFSET $3) RETURNING id', [deviceid, PG_PRUNE_BATCH, keep]),
      allDevices: async () => (await this.query<{ deviceid: string }>('SELECT deviceid FROM devices', [])).map((r) => r.deviceid),
    });
  }

  // --- commands (downlink) -------------------------------------------------

  async nextCommandSeq(deviceid: string): Promise<number> {
    // One atomic statement: instances allocating for the same device at once get distinct numbers.
    const rows = await this.query<{ seqn: number }>(
      'INSERT INTO downlink_counters (deviceid, seqn) VALUES ($1, 1) ON CONFLICT (deviceid) DO UPDATE SET seqn = downlink_counters.seqn + 1 RETURNING seqn',
      [deviceid],
    );
    return rows[0].seqn;
  }

  async queueCommand(deviceid: string, seqn: number, command: unknown, now = Date.now()): Promise<void> {
    await this.write([{ sql: 'INSERT INTO commands (deviceid, seqn, command, created) VALUES ($1, $2, $3, $4)', params: [deviceid, seqn, JSON.stringify(command), iso(now)] }]);
  }

  async pendingCommands(deviceid: string, limit: number): Promise<CommandRow[]> {
    const rows = await this.query<{ seqn: number; command: string; created: string }>(
      'SELECT seqn, command, created FROM commands WHERE deviceid = $1 AND delivered IS NULL AND expired IS NULL ORDER BY seqn LIMIT $2',
      [deviceid, limit],
    );
    return rows.map((r) => ({ seqn: r.seqn, command: JSON.parse(r.command), created: r.created }));
  }

  async markDelivered(deviceid: string, seqns: number[], via: string, now = Date.now()): Promise<void> {
    if (seqns.length === 0) return;
    await this.write([
      { sql: 'UPDATE commands SET delivered = $1, via = $2 WHERE deviceid = $3 AND delivered IS NULL AND seqn = ANY($4::bigint[])', params: [iso(now), via, deviceid, seqns] },
    ]);
  }

  async ackCommands(deviceid: string, upTo: number, now = Date.now()): Promise<boolean> {
    // Most uplinks repeat the acknowledgement of the one before: one already applied through this process is skipped.
    if (!this.acked.isNew(deviceid, upTo)) return false;
    const rows = await this.write([
      {
        sql: "UPDATE commands SET delivered = $1, via = 'ack' WHERE deviceid = $2 AND delivered IS NULL AND expired IS NULL AND seqn <= $3 RETURNING seqn",
        params: [iso(now), deviceid, upTo],
      },
    ]);
    this.acked.record(deviceid, upTo);
    return rows.length > 0;
  }

  async expireCommands(maxAgeMs: number, now = Date.now()): Promise<ExpiredCommand[]> {
    // Every instance runs expiry; the row locks of the UPDATE make each command expire (and be logged) once.
    const rows = await this.query<ExpiredCommand>(
      'UPDATE commands SET expired = $1 WHERE delivered IS NULL AND expired IS NULL AND created < $2 RETURNING deviceid, seqn, created',
      [iso(now), iso(now - maxAgeMs)],
    );
    return sortExpired(rows);
  }

  async commandLog(deviceid: string, limit: number): Promise<CommandStatusRow[]> {
    const rows = await this.query<RawCommandStatus>(
      'SELECT seqn, created, delivered, via, expired FROM commands WHERE deviceid = $1 ORDER BY seqn DESC LIMIT $2',
      [deviceid, limit],
    );
    return rows.map(toCommandStatus);
  }

  // --- key versions --------------------------------------------------------

  async checkKey(deviceid: string, kv: number): Promise<KeyCheck> {
    const [row] = await this.query<{ keyver: number | null; pendingkeyver: number | null; floor: number | null }>(
      `SELECT d.keyver, d.pendingkeyver, r.floor FROM (SELECT $1::text AS id) AS x
       LEFT JOIN devices d ON d.deviceid = x.id LEFT JOIN revoked r ON r.deviceid = x.id`,
      [deviceid],
    );
    return keyCheck({ keyver: row.keyver ?? undefined, pending: row.pendingkeyver, floor: row.floor ?? 0 }, kv);
  }

  async keyFloor(deviceid: string): Promise<number> {
    const rows = await this.query<{ floor: number }>('SELECT floor FROM revoked WHERE deviceid = $1', [deviceid]);
    return rows[0]?.floor ?? 0;
  }

  async promoteKey(deviceid: string, kv: number, keywrap?: string): Promise<void> {
    this.restingKeys.delete(deviceid);
    await this.query('UPDATE devices SET keyver = $1, pendingkeyver = NULL, keywrap = $3, rekeysecret = NULL WHERE deviceid = $2 AND pendingkeyver = $1', [
      kv,
      deviceid,
      keywrap ?? null,
    ]);
  }

  /**
   * With `version`, the version a message says it is sealed under: a device at rest (no rekey pending) whose current
   * version that is answers from memory. A device's key at a version never changes once that version is current
   * (versions only grow; a removed device's are revoked), and whether the version may still be used is decided in
   * the uplink's own transaction (keyCheck), so another instance's rekey or removal cannot make the cache admit
   * anything. Every other case is read: another instance may have begun or completed a rekey.
   */
  keyRecord(deviceid: string, version?: number): KeyRecord | Promise<KeyRecord | undefined> {
    const resting = this.restingKeys.get(deviceid);
    if (resting && version === resting.keyver) return resting;
    return this.readKeyRecord(deviceid);
  }

  private async readKeyRecord(deviceid: string): Promise<KeyRecord | undefined> {
    const [row] = await this.query<{ keyver: number; pendingkeyver: number | null; keywrap: string | null; rekeysecret: string | null }>(
      'SELECT keyver, pendingkeyver, keywrap, rekeysecret FROM devices WHERE deviceid = $1',
      [deviceid],
    );
    this.restingKeys.delete(deviceid);
    if (!row) return undefined;
    const record: KeyRecord = {
      keyver: row.keyver,
      ...(row.pendingkeyver !== null ? { pending: row.pendingkeyver } : {}),
      ...(row.keywrap !== null ? { keywrap: row.keywrap } : {}),
      ...(row.rekeysecret !== null ? { rekeysecret: row.rekeysecret } : {}),
    };
    if (record.pending === undefined) {
      this.restingKeys.set(deviceid, record);
      // Bounded: the longest held goes first (a Map keeps insertion order).
      if (this.restingKeys.size > MAX_RESTING_KEYS) this.restingKeys.delete(this.restingKeys.keys().next().value as string);
    }
    return record;
  }

  async offerRekey(deviceid: string, kv: number, rekeysecret: string): Promise<string | undefined> {
    // The first secret kept wins, whichever instance sealed it.
    const [row] = await this.query<{ rekeysecret: string }>(
      `UPDATE devices SET rekeysecret = COALESCE(rekeysecret, $3) WHERE deviceid = $1 AND pendingkeyver = $2 RETURNING rekeysecret`,
      [deviceid, kv, rekeysecret],
    );
    return row?.rekeysecret;
  }

  async beginRekey(deviceid: string): Promise<{ keyver: number; pending: number } | undefined> {
    this.restingKeys.delete(deviceid);
    // A rekey already under way keeps its version: the device may hold it already.
    const rows = await this.query<{ keyver: number; pending: number }>(
      'UPDATE devices SET pendingkeyver = COALESCE(pendingkeyver, keyver + 1) WHERE deviceid = $1 RETURNING keyver, pendingkeyver AS pending',
      [deviceid],
    );
    return rows[0];
  }

  async noteSource(deviceid: string, address: string, now = Date.now()): Promise<void> {
    // Skipped when this process wrote the same address within SOURCE_REFRESH_MS: another instance may have written
    // another one since (the device moved and came back), so a repeat is written at least that often.
    const last = this.sources.get(deviceid);
    if (last && last.address === address && now - last.at < SOURCE_REFRESH_MS) return;
    await this.write([{ sql: 'UPDATE devices SET seenaddr = $1 WHERE deviceid = $2', params: [address, deviceid] }]);
    this.sources.set(deviceid, { address, at: now });
  }

  async seenAddress(deviceid: string): Promise<string | null> {
    const rows = await this.query<{ seenaddr: string | null }>('SELECT seenaddr FROM devices WHERE deviceid = $1', [deviceid]);
    return rows[0]?.seenaddr ?? null;
  }

  async commandTarget(deviceid: string): Promise<{ ipaddr: string; cmdport: number; transport: Transport; sleep: number } | undefined> {
    const rows = await this.query<{ ipaddr: string; cmdport: number; transport: string | null; sleep: number }>('SELECT ipaddr, cmdport, transport, sleep FROM devices WHERE deviceid = $1', [deviceid]);
    return rows[0] ? { ...rows[0], sleep: Number(rows[0].sleep) || 0, transport: rows[0].transport === 'mqtt' ? 'mqtt' : 'http' } : undefined;
  }

  async noteTransport(deviceid: string, transport: Transport, now = Date.now()): Promise<void> {
    // As noteSource: rewritten at least every SOURCE_REFRESH_MS, since another instance may have written another one.
    const last = this.transports.get(deviceid);
    if (last && last.transport === transport && now - last.at < SOURCE_REFRESH_MS) return;
    // As in SQLite: an authenticated uplink over MQTT means connected; over HTTP the broker's word no longer applies.
    // (Rewritten every SOURCE_REFRESH_MS at most: an authenticated uplink over MQTT proves the connection then.)
    await this.write([{ sql: 'UPDATE devices SET transport = $1, connected = $2 WHERE deviceid = $3', params: [transport, transport === 'mqtt' ? true : null, deviceid] }]);
    this.transports.set(deviceid, { transport, at: now });
  }

  async noteStatus(deviceid: string, connected: boolean): Promise<boolean> {
    const rows = await this.query<{ deviceid: string }>('UPDATE devices SET connected = $1 WHERE deviceid = $2 RETURNING deviceid', [connected, deviceid]);
    return rows.length > 0;
  }

  // --- replay ------------------------------------------------------------

  checkReplay(deviceid: string, seq: number, window: number, _persist: ReplayPersist = 'before-send'): Promise<ReplayResult> {
    return this.life.afterOpen(() => this.replays.submit({ deviceid, seq, window }) as Promise<ReplayResult>);
  }

  /** The key version, the replay window and a promotion, decided in one batch transaction (see commitReplays). */
  admit(deviceid: string, seq: number, window: number, _persist: ReplayPersist, keyver?: number, keywrap?: string): Promise<UplinkVerdict> {
    return this.life.afterOpen(() => this.replays.submit({ deviceid, seq, window, keyver, keywrap }));
  }

  async resetReplay(deviceid: string, from?: number): Promise<void> {
    const state: ReplayState = from === undefined || from <= 0 ? INITIAL_STATE : { top: from - 1, seen: 1n, width: 0 };
    await this.life.afterOpen(() => this.replays.submit({ deviceid, reset: state }));
  }

  async replayState(deviceid: string): Promise<ReplayState> {
    const rows = await this.query<{ top: number; seen: string; width: number }>('SELECT top, seen, width FROM replay_state WHERE deviceid = $1', [deviceid]);
    return rows[0] ? { top: rows[0].top, seen: BigInt(`0x${rows[0].seen}`), width: rows[0].width } : INITIAL_STATE;
  }
}
