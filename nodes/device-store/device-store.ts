import { DEFAULT_COMMAND_TTL_MS, DEFAULT_POOL_SIZE, PostgresStore, Retention, RetentionError, SqliteStore, describeConnection, describeRetention, formatDuration, hasRetention, parseBackend, parseCommandTtl, parseRetention } from '../lib';
import type { DeviceStore as Store } from '../lib';
import { positiveInt } from '../shared/config';
import type { NodeDef, RED } from '../shared/red';
import { DEFAULT_HEARTBEAT_S, DeviceStoreNode, openStores, storeFile } from '../shared/stores';

/** Retention runs a minute apart, the first one shortly after the store opens. */
const PRUNE_INTERVAL_MS = 60_000;
const FIRST_PRUNE_MS = 1_000;

export = function register(RED: RED) {
  function DeviceStore(this: DeviceStoreNode, def: NodeDef) {
    RED.nodes.createNode(this, def);
    const backend = parseBackend(def.backend);
    const connectionString = String(this.credentials?.database ?? '').trim();
    // Where the data lives, for the logs and the sidebar (a connection string without its credentials).
    this.file = backend === 'postgresql' ? describeConnection(connectionString) : storeFile(def.path, RED.settings.userDir);
    this.heartbeat = positiveInt(def.heartbeat, DEFAULT_HEARTBEAT_S);
    let retention: Retention = {};
    try {
      retention = parseRetention(def.retention);
    } catch (err) {
      // A typo must not delete readings: keep everything and say so.
      this.error(RED._('e2ee.store.bad-retention', { value: err instanceof RetentionError ? err.value.slice(0, 40) : '' }));
    }
    this.retention = describeRetention(retention, (key, params) => RED._(key, params));
    let commandTtlMs = DEFAULT_COMMAND_TTL_MS;
    try {
      commandTtlMs = parseCommandTtl(def.commandTtl);
    } catch (err) {
      this.error(RED._('e2ee.store.bad-command-ttl', { value: err instanceof RetentionError ? err.value.slice(0, 40) : '', default: formatDuration(DEFAULT_COMMAND_TTL_MS) }));
    }
    this.commandTtl = formatDuration(commandTtlMs);
    // Expiry is checked at least four times per lifetime (a short lifetime is checked more often than a minute).
    const expiryCheckMs = Math.max(1000, Math.floor(commandTtlMs / 4));
    const hints: Record<string, string> = { SQLITE_FULL: 'hint-full', SQLITE_READONLY: 'hint-readonly', SQLITE_CANTOPEN: 'hint-readonly', SQLITE_BUSY: 'hint-busy', SQLITE_LOCKED: 'hint-busy' };
    // One line when the storage fails and one when it is back, however many requests fail meanwhile.
    const onHealth = (health: { available: false; code: string } | { available: true; downMs: number }) => {
      if (health.available) {
        this.log(RED._('e2ee.store.recovered', { seconds: Math.round(health.downMs / 100) / 10 }));
        this.status({});
      } else {
        const hint = backend === 'postgresql' ? 'hint-postgresql' : hints[health.code] ?? 'hint-other';
        this.error(RED._('e2ee.store.unavailable', { code: health.code, hint: RED._(`e2ee.store.${hint}`) }));
        this.status({ fill: 'red', shape: 'ring', text: health.code });
      }
    };
    let store: Store & { groupCommitStats: { writes: number; batches: number; largestBatch: number } };
    if (backend === 'postgresql') {
      if (!connectionString) this.error(RED._('e2ee.store.no-connection'));
      store = new PostgresStore({ connectionString, poolSize: positiveInt(def.poolSize, DEFAULT_POOL_SIZE), onHealth });
    } else {
      store = new SqliteStore({ file: this.file, onHealth });
    }
    this.store = store;
    openStores.set(this.id, this);
    if (!this.credentials?.token) this.log(RED._('e2ee.registry.no-token'));
    // Retention and command expiry: a first run soon after opening, then one a minute (never two at once).
    let pruneTimer: ReturnType<typeof setTimeout> | undefined;
    let closed = false;
    const prune = () => {
      const started = Date.now();
      const pruning = hasRetention(retention)
        ? store.prune(retention).then((count) => {
          if (count > 0) this.debug(RED._('e2ee.store.pruned', { count, ms: Date.now() - started }));
        })
        : Promise.resolve();
      // Each expired command is logged (the sidebar lists it too): it was never acknowledged.
      const expiring = store.expireCommands(commandTtlMs).then((expired) => {
        for (const c of expired) this.warn(RED._('e2ee.store.command-expired', { seqn: c.seqn, deviceid: c.deviceid, created: c.created, ttl: this.commandTtl }));
      });
      // (Storage trouble is reported by onHealth; the next run tries again.)
      Promise.allSettled([pruning, expiring]).finally(() => {
        if (pruneTimer && !closed) pruneTimer = setTimeout(prune, Math.min(PRUNE_INTERVAL_MS, expiryCheckMs));
      });
    };
    store.ready().then(
      () => {
        this.log(RED._('e2ee.store.opened', { file: this.file, backend: store.backend }));
        this.log(RED._('e2ee.store.retention', { rule: this.retention }));
        if (!closed) pruneTimer = setTimeout(prune, FIRST_PRUNE_MS);
      },
      (err: Error) => this.error(RED._('e2ee.store.open-failed', { message: err.message })),
    );
    this.on('close', (_removed, done) => {
      openStores.delete(this.id);
      closed = true;
      clearTimeout(pruneTimer);
      pruneTimer = undefined;
      // Pending writes commit before the handle goes, so a redeploy loses nothing.
      store.close().then(
        () => {
          const stats = store.groupCommitStats;
          this.log(RED._('e2ee.store.closed', { writes: stats.writes, batches: stats.batches, largest: stats.largestBatch }));
          done();
        },
        (err: Error) => {
          this.error(RED._('e2ee.store.close-failed', { message: err.message }));
          done();
        },
      );
    });
  }
  // The operator token that device-registry nodes with "require token" check.
  // (The connection string is a credential too: it holds the database's password.)
  RED.nodes.registerType('device-store', DeviceStore, { credentials: { token: { type: 'password' }, database: { type: 'password' } } });
};
