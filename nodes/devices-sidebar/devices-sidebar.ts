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
  isOnline,
  parseLimit,
  renderSecretsH,
  runAction,
  validateDeviceId,
  withRekeyKey,
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
}
interface PluginRED extends RED {
  plugins: { registerPlugin(id: string, def: Record<string, unknown>): void };
  httpAdmin: Router;
  auth: { needsPermission(permission: string): unknown };
  nodes: RED['nodes'] & { eachNode(cb: (n: { id: string; type: string; name?: string }) => void): void };
}

const PAGE_MAX = 200;

export = function register(RED: PluginRED) {
  const t = (key: string, params?: Record<string, unknown>) => RED._(`devices-sidebar.${key}`, params);
  const read = RED.auth.needsPermission('esp-e2ee.read');
  const write = RED.auth.needsPermission('esp-e2ee.write');

  /** Wraps a route: validation errors become 400, anything else 500 without details. */
  const route = (fn: (req: Req) => Promise<[number, unknown]>) => (req: Req, res: Res) => {
    fn(req).then(
      ([status, body]) => res.status(status).json(body),
      (err: unknown) => {
        if (err instanceof ValidationError) return res.status(400).json({ status: 'NOK', message: RED._(`e2ee.registry.${err.code}`) });
        RED.log.warn(t('log.failed', { message: err instanceof Error ? err.message : String(err) }));
        return res.status(500).json({ status: 'NOK', message: t('error.internal') });
      },
    );
  };
  const storeOf = (req: Req) => {
    const id = typeof req.query.store === 'string' ? req.query.store : '';
    return openStores.get(id) ?? (id === '' && openStores.size > 0 ? openStores.values().next().value : undefined);
  };
  const noStore = (): [number, unknown] => [404, { status: 'NOK', message: t('noStore') }];

  RED.httpAdmin.get('/esp-e2ee/stores', read, route(async () => {
    const stores = [...openStores.values()].map((s) => ({ id: s.id, name: (s as unknown as { name?: string }).name || s.file, heartbeat: s.heartbeat, retention: s.retention }));
    const keys: Array<{ id: string; name: string; format: string; auth: string; scope: string }> = [];
    RED.nodes.eachNode((n) => {
      if (n.type !== 'aes-key') return;
      const live = RED.nodes.getNode(n.id) as AesKeyNode | null;
      if ((live?.material && live.material.kind === 'bytes') || live?.keyring) keys.push({ id: n.id, name: n.name || n.id, format: live.format, auth: live.auth, scope: live.scope });
    });
    // Where devices reach the backend, for their secrets.h (npm start sets it; else the user types it).
    const settings = (RED.settings.e2ee ?? {}) as { deviceUrl?: unknown };
    return [200, { stores, keys, deviceUrl: typeof settings.deviceUrl === 'string' ? settings.deviceUrl : '' }];
  }));

  RED.httpAdmin.get('/esp-e2ee/devices', read, route(async (req) => {
    const node = storeOf(req);
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
    return [200, { devices: devices.map((d) => ({ ...d, online: isOnline(d.lastseen, node.heartbeat * 1000, now) })), total, heartbeat: node.heartbeat, now }];
  }));

  RED.httpAdmin.get('/esp-e2ee/devices/:id/readings', read, route(async (req) => {
    const node = storeOf(req);
    if (!node) return noStore();
    const id = validateDeviceId(req.params.id);
    return [200, await node.store.readings(id, { limit: parseLimit(req.query.limit, 100, MAX_READINGS_LIMIT) })];
  }));

  // Changes go through the same registry actions as the HTTP flow, so validation, cfgsn and audit logging are one code path.
  const act = async (node: DeviceStoreNode, action: string, deviceid: unknown, body: unknown, seqn?: number, deviceAuth?: DeviceAuth): Promise<ActionResponse> => {
    const res = await runAction(node.store, { action, deviceid, body, heartbeatMs: node.heartbeat * 1000, seqn, deviceAuth }, (key, params) => RED._(key, params));
    if (res.audit) RED.log.warn(res.audit);
    return res;
  };

  RED.httpAdmin.put('/esp-e2ee/devices/:id', write, route(async (req) => {
    const node = storeOf(req);
    if (!node) return noStore();
    const res = await act(node, 'update', req.params.id, req.body);
    return [res.statusCode, res.payload];
  }));

  RED.httpAdmin.post('/esp-e2ee/devices/:id/reset', write, route(async (req) => {
    const node = storeOf(req);
    if (!node) return noStore();
    const res = await act(node, 'reset', req.params.id, {});
    return [res.statusCode, res.payload];
  }));

  /**
   * The flow's three steps for a command or a rekey: allocate the downlink SEQN (the action), seal it with the
   * device's key of the version the action names, queue it (the poll delivers it).
   */
  const queueSealed = async (req: Req, action: 'command' | 'rekey', command: unknown): Promise<[number, unknown]> => {
    const node = storeOf(req);
    if (!node) return noStore();
    const keyId = (req.body as { key?: unknown } | undefined)?.key;
    const deviceAuth = deviceAuthOf(RED, keyId);
    if (!deviceAuth) return [400, { status: 'NOK', message: t('error.no-key') }];
    const allocated = await act(node, action, req.params.id, command, undefined, deviceAuth);
    if (allocated.statusCode !== 202 || allocated.seqn === undefined) return [allocated.statusCode, allocated.payload];
    let resolved: ResolvedKey;
    try {
      // The shared key, or in per-device scope this device's own of the version the action chose.
      resolved = resolveKey(RED, keyId, { deviceid: req.params.id, keyVersion: allocated.keyVersion });
    } catch {
      return [400, { status: 'NOK', message: t('error.no-key') }];
    }
    if (resolved.key.kind !== 'bytes') return [400, { status: 'NOK', message: t('error.no-key') }];
    const plaintext = resolved.keyring ? withRekeyKey(allocated.payload, resolved.keyring, req.params.id) : allocated.payload;
    const wire = encryptToWire(resolved.key, Buffer.from(JSON.stringify(plaintext)), req.params.id, { type: 'command', kv: resolved.keyVersion });
    const queued = await act(node, 'queue-command', req.params.id, wire, allocated.seqn, deviceAuth);
    return [queued.statusCode, action === 'rekey' ? { ...(queued.payload as object), keyver: (allocated.payload as { rekey: { kv: number } }).rekey.kv } : queued.payload];
  };

  RED.httpAdmin.post('/esp-e2ee/devices/:id/command', write, route((req) => queueSealed(req, 'command', (req.body as { command?: unknown } | undefined)?.command)));

  // Rekey: the device moves to its next key version (the new key travels sealed under the current one).
  RED.httpAdmin.post('/esp-e2ee/devices/:id/rekey', write, route((req) => queueSealed(req, 'rekey', {})));

  RED.httpAdmin.get('/esp-e2ee/devices/:id/commands', read, route(async (req) => {
    const node = storeOf(req);
    if (!node) return noStore();
    const res = await act(node, 'commands', req.params.id, { limit: req.query.limit });
    return [res.statusCode, res.payload];
  }));

  // Add device: the secrets.h of a new (or known) device under a per-device master key. The master stays in the
  // key node; the answer holds the device's own key only. Needs write permission; logged.
  RED.httpAdmin.post('/esp-e2ee/provision', write, route(async (req) => {
    const node = storeOf(req);
    const body = (req.body ?? {}) as { key?: unknown; deviceid?: unknown; generate?: unknown; url?: unknown };
    const keyNode = typeof body.key === 'string' ? (RED.nodes.getNode(body.key) as AesKeyNode | null) : null;
    if (!keyNode?.keyring) return [400, { status: 'NOK', message: t('error.noMaster') }];
    const url = typeof body.url === 'string' ? body.url.trim() : '';
    if (!/^https?:\/\/[^/\s]+/.test(url)) return [400, { status: 'NOK', message: t('error.badUrl') }];
    const deviceid = body.generate === true ? generateDeviceId(crypto.randomBytes) : validateDeviceId(body.deviceid);
    // A known device keeps its key version; a removed one comes back above its revoked versions.
    const known = node ? await node.store.get(deviceid) : undefined;
    const version = known ? (known.pendingkeyver ?? known.keyver) : node ? await node.store.keyFloor(deviceid) : 0;
    const text = renderSecretsH({ deviceKey: keyNode.keyring.deviceKey(deviceid, version), deviceId: deviceid, version, backendUrl: url, hmac: keyNode.auth === 'hmac-sha256' });
    RED.log.info(t('log.provisioned', { deviceid, version }));
    return [200, { deviceid, version, filename: 'secrets.h', text }];
  }));

  RED.plugins.registerPlugin('esp-e2ee-devices', { type: 'esp-e2ee-sidebar' });
};
