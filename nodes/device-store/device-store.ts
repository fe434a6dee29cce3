import { DEFAULT_COMMAND_TTL_MS, DeviceEvents, MAX_LIST_LIMIT, parseDurability, DEFAULT_POOL_SIZE, PostgresStore, Retention, RetentionError, SqliteStore, describeConnection, describeRetention, formatDuration, hasRetention, parseBackend, parseCommandTtl, parseRetention } from '../lib';
import type { DeviceStore as Store } from '../lib';
import { positiveInt } from '../shared/config';
import type { NodeDef, RED } from '../shared/red';
import { DEFAULT_HEARTBEAT_S, DeviceStoreNode, openStores, storeFile } from '../shared/stores';

/** Retention runs a minute apart, the first one shortly after the store opens. */
const PRUNE_INTERVAL_MS = 60_000;
const FIRST_PRUNE_MS = 1_000;

type Health = { available: false; code: string } | { available: true; downMs: number };
type OpenStore = Store & { groupCommitStats: { writes: number; batches: number; largestBatch: number } };

const SQLITE_HINTS: Record<string, string> = { SQLITE_FULL: 'hint-full', SQLITE_READONLY: 'hint-readonly', SQLITE_CANTOPEN: 'hint-readonly', SQLITE_BUSY: 'hint-busy', SQLITE_LOCKED: 'hint-busy' };

/** The node's retention and command lifetime; a typo is reported and falls back to what loses nothing. */
function parseRules(RED: RED, node: DeviceStoreNode, def: NodeDef): { retention: Retention; commandTtlMs: number } {
  let retention: Retention = {};
  try {
    retention = parseRetention(def.retention);
  } catch (err) {
    // A typo must not delete readings: keep everything and say so.
    node.error(RED._('e2ee.store.bad-retention', { value: err instanceof RetentionError ? err.value.slice(0, 40) : '' }));
  }
  let commandTtlMs = DEFAULT_COMMAND_TTL_MS;
  try {
    commandTtlMs = parseCommandTtl(def.commandTtl);
  } catch (err) {
    node.error(RED._('e2ee.store.bad-command-ttl', { value: err instanceof RetentionError ? err.value.slice(0, 40) : '', default: formatDuration(DEFAULT_COMMAND_TTL_MS) }));
  }
  return { retention, commandTtlMs };
}

/** One line when the storage fails and one when it is back, however many requests fail meanwhile. */
function healthReporter(RED: RED, node: DeviceStoreNode, backend: string) {
  return (health: Health) => {
    if (health.available) {
      node.log(RED._('e2ee.store.recovered', { seconds: Math.round(health.downMs / 100) / 10 }));
      node.status({});
      return;
    }
    const hint = backend === 'postgresql' ? 'hint-postgresql' : SQLITE_HINTS[health.code] ?? 'hint-other';
    node.error(RED._('e2ee.store.unavailable', { code: health.code, hint: RED._(`e2ee.store.${hint}`) }));
    node.status({ fill: 'red', shape: 'ring', text: health.code });
  };
}

/**
 * Retention and command expiry: a first run soon after the store opens, then one a minute, or more often for a short
 * command lifetime (expiry is checked at least four times per lifetime); never two at once. Returns the stop.
 */
function startMaintenance(RED: RED, node: DeviceStoreNode, store: Store, retention: Retention, commandTtlMs: number): () => void {
  const events = node.events;
  const everyMs = Math.min(PRUNE_INTERVAL_MS, Math.max(1000, Math.floor(commandTtlMs / 4)));
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  const run = () => {
    const started = Date.now();
    const pruning = hasRetention(retention)
      ? store.prune(retention).then((count) => {
        if (count > 0) node.debug(RED._('e2ee.store.pruned', { count, ms: Date.now() - started }));
      })
      : Promise.resolve();
    // Each expired command is logged (the sidebar lists it too): it was never acknowledged.
    const expiring = store.expireCommands(commandTtlMs).then((expired) => {
      for (const c of expired) {
        node.warn(RED._('e2ee.store.command-expired', { seqn: c.seqn, deviceid: c.deviceid, created: c.created, ttl: node.commandTtl }));
        events.expired(c.deviceid, c.seqn);
      }
    });
    // (Storage trouble is reported by onHealth; the next run tries again.)
    Promise.allSettled([pruning, expiring]).finally(() => {
      if (!stopped) timer = setTimeout(run, everyMs);
    });
  };
  store.ready().then(
    () => {
      node.log(RED._('e2ee.store.opened', { file: node.file, backend: store.backend }));
      node.log(RED._('e2ee.store.retention', { rule: node.retention }));
      if (!stopped) timer = setTimeout(run, FIRST_PRUNE_MS);
    },
    (err: Error) => node.error(RED._('e2ee.store.open-failed', { message: err.message })),
  );
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** Every device the store holds, a page at a time (the device events' presence at their first subscriber). */
async function* everyDevice(store: Store) {
  await store.ready();
  for (let offset = 0; ; offset += MAX_LIST_LIMIT) {
    const { devices } = await store.list({ limit: MAX_LIST_LIMIT, offset });
    yield devices;
    if (devices.length < MAX_LIST_LIMIT) return;
  }
}

/** Pending writes commit before the handle goes, so a redeploy loses nothing. */
function closeStore(RED: RED, node: DeviceStoreNode, store: OpenStore, done: () => void): void {
  store.close().then(
    () => {
      const stats = store.groupCommitStats;
      node.log(RED._('e2ee.store.closed', { writes: stats.writes, batches: stats.batches, largest: stats.largestBatch }));
      done();
    },
    (err: Error) => {
      node.error(RED._('e2ee.store.close-failed', { message: err.message }));
      done();
    },
  );
}

export = function register(RED: RED) {
  function DeviceStore(this: DeviceStoreNode, def: NodeDef) {
    RED.nodes.createNode(this, def);
    const backend = parseBackend(def.backend);
    const connectionString = String(this.credentials?.database ?? '').trim();
    // Where the data lives, for the logs and the sidebar (a connection string without its credentials).
    this.file = backend === 'postgresql' ? describeConnection(connectionString) : storeFile(def.path, RED.settings.userDir);
    this.heartbeat = positiveInt(def.heartbeat, DEFAULT_HEARTBEAT_S);
    const { retention, commandTtlMs } = parseRules(RED, this, def);
    this.retention = describeRetention(retention, (key, params) => RED._(key, params));
    this.commandTtl = formatDuration(commandTtlMs);
    const onHealth = healthReporter(RED, this, backend);
    let store: OpenStore;
    if (backend === 'postgresql') {
      if (!connectionString) this.error(RED._('e2ee.store.no-connection'));
      store = new PostgresStore({ connectionString, poolSize: positiveInt(def.poolSize, DEFAULT_POOL_SIZE), onHealth });
    } else {
      let durability: ReturnType<typeof parseDurability> = 'power';
      try {
        durability = parseDurability(def.durability);
      } catch {
        // A typo must not weaken durability: the safe one, and say so.
        this.error(RED._('e2ee.store.bad-durability', { value: String(def.durability).slice(0, 20) }));
      }
      if (durability === 'process') this.log(RED._('e2ee.store.durability-process'));
      store = new SqliteStore({ file: this.file, onHealth, durability });
    }
    this.store = store;
    this.events = new DeviceEvents({ heartbeatMs: this.heartbeat * 1000, seed: () => everyDevice(store) });
    openStores.set(this.id, this);
    if (!this.credentials?.token) this.log(RED._('e2ee.registry.no-token'));
    const stopMaintenance = startMaintenance(RED, this, store, retention, commandTtlMs);
    this.on('close', (_removed, done) => {
      openStores.delete(this.id);
      stopMaintenance();
      this.events.close();
      closeStore(RED, this, store, done);
    });
  }
  // The operator token that device-registry nodes with "require token" check.
  // (The connection string is a credential too: it holds the database's password.)
  RED.nodes.registerType('device-store', DeviceStore, { credentials: { token: { type: 'password' }, database: { type: 'password' } } });
};
