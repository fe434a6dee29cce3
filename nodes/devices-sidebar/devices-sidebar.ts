/**
 * The "Devices" sidebar: admin HTTP routes (behind the editor's own auth, with
 * RED.auth.needsPermission on every route) over the device stores of the
 * deployed flows. The editor side is devices-sidebar.html.
 */
import {
  MAX_READINGS_LIMIT,
  SORT_COLUMNS,
  ValidationError,
  encryptToWire,
  generateDeviceId,
  parseHistoryFields,
  readingValues,
  presence,
  parseLimit,
  renderSecretsH,
  runAction,
  validateDeviceId,
  withRekeyOffer,
} from '../lib';
import * as crypto from 'node:crypto';
import type { ActionResponse, DeviceAuth } from '../lib';
import { deviceAuthOf, resolveKey } from '../shared/keys';
import type { AesKeyNode, ResolvedKey } from '../shared/keys';
import type { RED } from '../shared/red';
import { DeviceStoreNode, openStores } from '../shared/stores';

interface Req {
  params: Record<string, string>;
  query: Record<string, unknown>;
  body: unknown;
}
interface Res {
  status(code: number): Res;
  json(body: unknown): void;
}
interface Router {
  get(path: string, ...handlers: unknown[]): void;
  put(path: string, ...handlers: unknown[]): void;
  post(path: string, ...handlers: unknown[]): void;
  delete(path: string, ...handlers: unknown[]): void;
}
interface PluginRED extends RED {
  plugins: { registerPlugin(id: string, def: Record<string, unknown>): void };
  httpAdmin: Router;
  auth: { needsPermission(permission: string): unknown };
  nodes: RED['nodes'] & { eachNode(cb: (n: { id: string; type: string; name?: string }) => void): void };
}

const PAGE_MAX = 200;

type Answer = [number, unknown];

/** What every route shares: the plugin's RED, its translator, the store a request names, the registry actions. */
interface Sidebar {
  RED: PluginRED;
  t(key: string, params?: Record<string, unknown>): string;
  storeOf(req: Req): DeviceStoreNode | undefined;
  noStore(): Answer;
  /** Changes go through the same registry actions as the HTTP flow, so validation, cfgsn and audit logging are one code path. */
  act(node: DeviceStoreNode, action: string, deviceid: unknown, body: unknown, seqn?: number, deviceAuth?: DeviceAuth): Promise<ActionResponse>;
}

function sidebarOf(RED: PluginRED): Sidebar {
  const t = (key: string, params?: Record<string, unknown>) => RED._(`devices-sidebar.${key}`, params);
  return {
    RED,
    t,
    storeOf: (req) => {
      const id = typeof req.query.store === 'string' ? req.query.store : '';
      return openStores.get(id) ?? (id === '' && openStores.size > 0 ? openStores.values().next().value : undefined);
    },
    noStore: () => [404, { status: 'NOK', message: t('noStore') }],
    act: async (node, action, deviceid, body, seqn, deviceAuth) => {
      const res = await runAction(node.store, { action, deviceid, body, heartbeatMs: node.heartbeat * 1000, seqn, deviceAuth, events: node.events }, (key, params) => RED._(key, params));
      if (res.audit) RED.log.warn(res.audit);
      return res;
    },
  };
}

/** Wraps a route: validation errors become 400, anything else 500 without details. */
function routeOf(s: Sidebar) {
  return (fn: (req: Req) => Promise<Answer>) => (req: Req, res: Res) => {
    fn(req).then(
      ([status, body]) => res.status(status).json(body),
      (err: unknown) => {
        if (err instanceof ValidationError) return res.status(400).json({ status: 'NOK', message: s.RED._(`e2ee.registry.${err.code}`) });
        s.RED.log.warn(s.t('log.failed', { message: err instanceof Error ? err.message : String(err) }));
        return res.status(500).json({ status: 'NOK', message: s.t('error.internal') });
      },
    );
  };
}

/** The deployed stores, the keys devices can be provisioned under, and where devices reach the backend. */
async function listStores({ RED }: Sidebar): Promise<Answer> {
  const stores = [...openStores.values()].map((st) => ({ id: st.id, name: (st as unknown as { name?: string }).name || st.file, heartbeat: st.heartbeat, retention: st.retention }));
  const keys: Array<{ id: string; name: string; format: string; auth: string; scope: string }> = [];
  RED.nodes.eachNode((n) => {
    if (n.type !== 'aes-key') return;
    const live = RED.nodes.getNode(n.id) as AesKeyNode | null;
    if ((live?.material && live.material.kind === 'bytes') || live?.keyring) keys.push({ id: n.id, name: n.name || n.id, format: live.format, auth: live.auth, scope: live.scope });
  });
  // Where devices reach the backend, for their secrets.h (npm start sets it; else the user types it).
  const settings = (RED.settings.e2ee ?? {}) as { deviceUrl?: unknown };
  return [200, { stores, keys, deviceUrl: typeof settings.deviceUrl === 'string' ? settings.deviceUrl : '' }];
}

async function listDevices(s: Sidebar, req: Req): Promise<Answer> {
  const node = s.storeOf(req);
  if (!node) return [200, { devices: [], total: 0 }];
  const sort = SORT_COLUMNS.find((c) => c === req.query.sort);
  const { devices, total } = await node.store.list({
    limit: parseLimit(req.query.limit, 50, PAGE_MAX),
    offset: parseLimit(req.query.offset, 0, Number.MAX_SAFE_INTEGER, 'offset'),
    search: typeof req.query.q === 'string' && req.query.q.trim() ? req.query.q.trim().slice(0, 64) : undefined,
    sort,
    descending: req.query.dir === 'desc',
  });
  const now = Date.now();
  // Each listed device's newest reading (one indexed lookup each: a page is at most PAGE_MAX devices).
  const latest = await Promise.all(devices.map((d) => node.store.readings(d.deviceid, { limit: 1 }).then((r) => (r[0] ? { received: r[0].received, data: readingValues(r[0].payload) } : null))));
  // Provisioned devices that have not registered yet, on the first page of an unfiltered list.
  const first = req.query.offset === undefined || Number(req.query.offset) === 0;
  const provisioned = first && !req.query.q ? await node.store.provisioned(PROVISIONED_SHOWN) : [];
  return [200, { devices: devices.map((d, i) => ({ ...d, ...presence(d, node.heartbeat * 1000, now), latest: latest[i] })), provisioned, total, heartbeat: node.heartbeat, now }];
}

/** At most this many provisioned, unseen devices are listed. */
const PROVISIONED_SHOWN = 20;

/** The chart's windows (seconds) and how many buckets each is drawn with. */
const HISTORY_WINDOWS = [3600, 86_400, 604_800];
const HISTORY_BUCKETS = 120;

/** A device's history of numeric fields over the last hour, day or week, downsampled by the store. */
async function deviceHistory(s: Sidebar, req: Req): Promise<Answer> {
  const node = s.storeOf(req);
  if (!node) return s.noStore();
  const id = validateDeviceId(req.params.id);
  const fields = parseHistoryFields(req.query.fields);
  const window = HISTORY_WINDOWS.find((w) => w === Number(req.query.window)) ?? HISTORY_WINDOWS[0];
  const bucketMs = (window * 1000) / HISTORY_BUCKETS;
  const since = Math.floor((Date.now() - window * 1000) / bucketMs) * bucketMs;
  return [200, { since, bucketMs, window, buckets: await node.store.history(id, { fields, since, bucketMs }) }];
}

/** Revoke a device, or forget one that was provisioned and never registered. */
async function removeDevice(s: Sidebar, req: Req): Promise<Answer> {
  const node = s.storeOf(req);
  if (!node) return s.noStore();
  // (A registered device's provisioning record goes with it: the store's remove drops it.)
  const res = await s.act(node, 'remove', req.params.id, {});
  if (res.statusCode === 404 && (await node.store.forgetProvisioned(validateDeviceId(req.params.id)))) return [200, { status: 'OK', message: s.t('notify.forgotten', { id: req.params.id }) }];
  return [res.statusCode, res.payload];
}

async function deviceReadings(s: Sidebar, req: Req): Promise<Answer> {
  const node = s.storeOf(req);
  if (!node) return s.noStore();
  const id = validateDeviceId(req.params.id);
  return [200, await node.store.readings(id, { limit: parseLimit(req.query.limit, 100, MAX_READINGS_LIMIT) })];
}

/** A registry action on the device the route names: update, reset, its command log. */
async function deviceAction(s: Sidebar, req: Req, action: string, body: unknown): Promise<Answer> {
  const node = s.storeOf(req);
  if (!node) return s.noStore();
  const res = await s.act(node, action, req.params.id, body);
  return [res.statusCode, res.payload];
}

/**
 * The flow's three steps for a command or a rekey: allocate the downlink SEQN (the action), seal it with the
 * device's key of the version the action names, queue it (the poll delivers it).
 */
async function queueSealed(s: Sidebar, req: Req, action: 'command' | 'rekey', command: unknown): Promise<Answer> {
  const node = s.storeOf(req);
  if (!node) return s.noStore();
  const noKey: Answer = [400, { status: 'NOK', message: s.t('error.no-key') }];
  const keyId = (req.body as { key?: unknown } | undefined)?.key;
  const deviceAuth = deviceAuthOf(s.RED, keyId);
  if (!deviceAuth) return noKey;
  const allocated = await s.act(node, action, req.params.id, command, undefined, deviceAuth);
  if (allocated.statusCode !== 202 || allocated.seqn === undefined) return [allocated.statusCode, allocated.payload];
  let resolved: ResolvedKey;
  try {
    // The shared key, or in per-device scope this device's own of the version the action chose.
    resolved = await resolveKey(s.RED, keyId, { deviceid: req.params.id, keyVersion: allocated.keyVersion });
  } catch {
    return noKey;
  }
  if (resolved.key.kind !== 'bytes') return noKey;
  const plaintext = resolved.keyring ? await withRekeyOffer(allocated.payload, resolved.keyring, req.params.id) : allocated.payload;
  const wire = encryptToWire(resolved.key, Buffer.from(JSON.stringify(plaintext)), req.params.id, { type: 'command', kv: resolved.keyVersion });
  const queued = await s.act(node, 'queue-command', req.params.id, wire, allocated.seqn, deviceAuth);
  return [queued.statusCode, action === 'rekey' ? { ...(queued.payload as object), keyver: (allocated.payload as { rekey: { kv: number } }).rekey.kv } : queued.payload];
}

/**
 * Add device: the secrets.h of a new (or known) device under a per-device master key. The master stays in the
 * key node; the answer holds the device's own key only. Needs write permission; logged.
 */
async function provision(s: Sidebar, req: Req): Promise<Answer> {
  const node = s.storeOf(req);
  const body = (req.body ?? {}) as { key?: unknown; deviceid?: unknown; generate?: unknown; url?: unknown };
  const keyNode = typeof body.key === 'string' ? (s.RED.nodes.getNode(body.key) as AesKeyNode | null) : null;
  if (!keyNode?.keyring) return [400, { status: 'NOK', message: s.t('error.noMaster') }];
  const url = typeof body.url === 'string' ? body.url.trim() : '';
  if (!/^https?:\/\/[^/\s]+/.test(url)) return [400, { status: 'NOK', message: s.t('error.badUrl') }];
  const deviceid = body.generate === true ? generateDeviceId(crypto.randomBytes) : validateDeviceId(body.deviceid);
  // A known device keeps its key version; a removed one comes back above its revoked versions. A key a rekey made
  // (or is making) is not the master's to give: such a device is removed first, then added again.
  const known = node ? await node.store.keyRecord(deviceid) : undefined;
  if (known && (known.keywrap !== undefined || known.pending !== undefined)) return [409, { status: 'NOK', message: s.t('error.rekeyed', { id: deviceid }) }];
  const version = known ? known.keyver : node ? await node.store.keyFloor(deviceid) : 0;
  const text = renderSecretsH({ deviceKey: keyNode.keyring.deviceKey(deviceid, version), deviceId: deviceid, version, backendUrl: url, hmac: keyNode.auth === 'hmac-sha256' });
  // Listed as "provisioned, not seen" until it registers (a device the store knows is listed already).
  if (node && !known) await node.store.noteProvisioned(deviceid, version);
  s.RED.log.info(s.t('log.provisioned', { deviceid, version }));
  return [200, { deviceid, version, filename: 'secrets.h', text }];
}

export = function register(RED: PluginRED) {
  const s = sidebarOf(RED);
  const route = routeOf(s);
  const read = RED.auth.needsPermission('esp-e2ee.read');
  const write = RED.auth.needsPermission('esp-e2ee.write');
  RED.httpAdmin.get('/esp-e2ee/stores', read, route(() => listStores(s)));
  RED.httpAdmin.get('/esp-e2ee/devices', read, route((req) => listDevices(s, req)));
  RED.httpAdmin.get('/esp-e2ee/devices/:id/readings', read, route((req) => deviceReadings(s, req)));
  RED.httpAdmin.put('/esp-e2ee/devices/:id', write, route((req) => deviceAction(s, req, 'update', req.body)));
  RED.httpAdmin.post('/esp-e2ee/devices/:id/reset', write, route((req) => deviceAction(s, req, 'reset', {})));
  // Revoke: removes the device and refuses every key version it had (the registry's remove action, logged).
  RED.httpAdmin.delete('/esp-e2ee/devices/:id', write, route((req) => removeDevice(s, req)));
  RED.httpAdmin.get('/esp-e2ee/devices/:id/history', read, route((req) => deviceHistory(s, req)));
  RED.httpAdmin.post('/esp-e2ee/devices/:id/command', write, route((req) => queueSealed(s, req, 'command', (req.body as { command?: unknown } | undefined)?.command)));
  // Rekey: the device moves to its next key version through an X25519 exchange (the rekey command carries the
  // server's public key, sealed under the current key; the device answers with its own).
  RED.httpAdmin.post('/esp-e2ee/devices/:id/rekey', write, route((req) => queueSealed(s, req, 'rekey', {})));
  RED.httpAdmin.get('/esp-e2ee/devices/:id/commands', read, route((req) => deviceAction(s, req, 'commands', { limit: req.query.limit })));
  RED.httpAdmin.post('/esp-e2ee/provision', write, route((req) => provision(s, req)));
  RED.plugins.registerPlugin('esp-e2ee-devices', { type: 'esp-e2ee-sidebar' });
};
