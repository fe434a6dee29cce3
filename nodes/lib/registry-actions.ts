/**
 * The device-registry actions: validation, the store call, and the response
 * in the seed's shapes, ready for an http response node. The caller passes the
 * translator, so every text comes from the message catalog.
 */
import { bearerToken, secretsEqual } from './crypto';
import type { Translate } from './funnel';
import {
  DEFAULT_LIST_LIMIT,
  DEFAULT_READINGS_LIMIT,
  MAX_LIST_LIMIT,
  MAX_PENDING_COMMANDS,
  MAX_READINGS_LIMIT,
  ValidationError,
  isOnline,
  parseLimit,
  parseSince,
  validateDeviceId,
  validateRegister,
  validateCommand,
  validateUpdate,
} from './registry';
import { parseSeq } from './replay-window';
import type { PushPolicy, PushVerdict } from './push-target';
import { STORAGE_RETRY_AFTER_S, StorageUnavailableError } from './store/types';
import type { DeviceStore } from './store/types';

export const REGISTRY_ACTIONS = ['register', 'get', 'update', 'list', 'log', 'readings', 'remove', 'reset', 'command', 'queue-command', 'command-delivered'] as const;
export type RegistryAction = (typeof REGISTRY_ACTIONS)[number];

export interface ActionRequest {
  action: string;
  deviceid: unknown;
  /** msg.payload: the request body, or the query of a GET. */
  body: unknown;
  heartbeatMs: number;
  now?: number;
  /** When set, the request must carry `Authorization: Bearer <token>` matching `token`. */
  auth?: { header: unknown; token: string | undefined };
  /** msg.seqn: the command a queue-command or command-delivered step is about. */
  seqn?: unknown;
  /** queue-command: which registered addresses may be pushed to; without one, none is. */
  push?: PushPolicy;
  /** register: the most devices the store may hold (registration is not authenticated). */
  maxDevices?: number;
}

export interface ActionResponse {
  statusCode: number;
  payload: unknown;
  /** Total rows, for list. */
  total?: number;
  /** Something an operator did that belongs in the log (catalog text). */
  audit?: string;
  /** Response headers. */
  headers?: Record<string, string>;
  /** command: the allocated downlink SEQN. */
  seqn?: number;
  /** queue-command: where to push the command, when the device's address may be pushed to. */
  pushUrl?: string;
  /** queue-command: the device's address may not be pushed to (the command waits for its poll). */
  pushRefused?: { address: string; verdict: Exclude<PushVerdict, 'allowed'> };
}

function obj(body: unknown): Record<string, unknown> {
  return body !== null && typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
}

export async function runAction(store: DeviceStore, req: ActionRequest, t: Translate): Promise<ActionResponse> {
  const nok = (statusCode: number, key: string, params?: Record<string, unknown>): ActionResponse => ({
    statusCode,
    payload: { status: 'NOK', message: t(key, params) },
  });
  const notRegistered = () => nok(404, 'e2ee.registry.not-registered');
  const now = req.now ?? Date.now();
  const withOnline = <T extends { lastseen: string | null }>(row: T) => ({ ...row, online: isOnline(row.lastseen, req.heartbeatMs, now) });

  if (req.auth) {
    const presented = bearerToken(req.auth.header);
    // An unset token refuses everyone rather than letting everyone in.
    if (!req.auth.token || presented === undefined || !secretsEqual(presented, req.auth.token)) {
      return { ...nok(401, 'e2ee.registry.unauthorized'), headers: { 'WWW-Authenticate': 'Bearer' } };
    }
  }
  try {
    if (!(REGISTRY_ACTIONS as readonly string[]).includes(req.action)) return nok(400, 'e2ee.registry.bad-action', { action: String(req.action).slice(0, 32) });
    const action = req.action as RegistryAction;
    if (action === 'list') {
      const q = obj(req.body);
      const limit = parseLimit(q.limit, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT);
      const offset = parseLimit(q.offset, 0, Number.MAX_SAFE_INTEGER, 'offset');
      const { devices, total } = await store.list({ limit, offset });
      return { statusCode: 200, payload: devices.map(withOnline), total };
    }
    const deviceid = validateDeviceId(req.deviceid);
    switch (action) {
      case 'register': {
        const input = validateRegister(deviceid, req.body);
        const result = await store.register(input, now, req.maxDevices);
        if (result.full) return nok(403, 'e2ee.registry.device-limit', { max: req.maxDevices });
        const { created, device } = result;
        if (created) return { statusCode: 201, payload: { status: 'OK', message: t('e2ee.registry.registered'), deviceid, cfgsn: device.cfgsn } };
        return { statusCode: 200, payload: device };
      }
      case 'get': {
        const device = await store.poll(deviceid, now);
        if (!device) return notRegistered();
        // Queued commands ride along, so devices behind NAT get them too; offering one delivers it.
        const pending = await store.pendingCommands(deviceid, MAX_PENDING_COMMANDS);
        await store.markDelivered(deviceid, pending.map((c) => c.seqn), 'poll', now);
        return { statusCode: 200, payload: { cfgsn: device.cfgsn, data: device.data, commands: pending.map((c) => c.command) } };
      }
      case 'update': {
        const input = validateUpdate(req.body);
        const device = await store.update(deviceid, input);
        return device ? { statusCode: 200, payload: device } : notRegistered();
      }
      case 'log': {
        const seq = parseSeq(obj(req.body).SEQN);
        const stored = await store.logReading(deviceid, seq.ok ? seq.seq : null, req.body, now);
        return stored ? { statusCode: 200, payload: { status: 'OK' } } : notRegistered();
      }
      case 'readings': {
        const q = obj(req.body);
        const limit = parseLimit(q.limit, DEFAULT_READINGS_LIMIT, MAX_READINGS_LIMIT);
        const since = parseSince(q.since);
        if (!(await store.get(deviceid))) return notRegistered();
        return { statusCode: 200, payload: await store.readings(deviceid, { limit, since }) };
      }
      case 'remove': {
        const removed = await store.remove(deviceid);
        return removed
          ? { statusCode: 200, payload: { status: 'OK', message: t('e2ee.registry.removed') }, audit: t('e2ee.registry.audit-removed', { deviceid }) }
          : notRegistered();
      }
      case 'command': {
        const command = validateCommand(req.body);
        if (!(await store.get(deviceid))) return notRegistered();
        const seqn = await store.nextCommandSeq(deviceid);
        // The plaintext for aes-encrypt, in the shape of an uplink reading.
        return { statusCode: 202, payload: { cmd: command, SEQN: seqn }, seqn };
      }
      case 'queue-command': {
        const seqn = parseSeq(req.seqn);
        if (!seqn.ok || seqn.seq === 0) throw new ValidationError('bad-seqn', 'seqn');
        if (req.body === null || typeof req.body !== 'object') throw new ValidationError('bad-command', 'command');
        const target = await store.commandTarget(deviceid);
        if (!target) return notRegistered();
        await store.queueCommand(deviceid, seqn.seq, req.body, now);
        const queued = { statusCode: 202, payload: { status: 'OK', message: t('e2ee.registry.command-queued'), seqn: seqn.seq }, seqn: seqn.seq };
        const verdict = req.push?.verdict(target.ipaddr) ?? 'not-allowed';
        if (verdict !== 'allowed') return { ...queued, pushRefused: { address: target.ipaddr, verdict } };
        const host = target.ipaddr.includes(':') ? `[${target.ipaddr}]` : target.ipaddr;
        return { ...queued, pushUrl: `http://${host}:${target.cmdport}/command` };
      }
      case 'command-delivered': {
        const seqn = parseSeq(req.seqn);
        if (!seqn.ok) throw new ValidationError('bad-seqn', 'seqn');
        await store.markDelivered(deviceid, [seqn.seq], 'push', now);
        return { statusCode: 200, payload: { status: 'OK' }, seqn: seqn.seq };
      }
      case 'reset': {
        if (!(await store.get(deviceid))) return notRegistered();
        const fromRaw = obj(req.body).from;
        let from: number | undefined;
        if (fromRaw !== undefined) {
          const parsed = parseSeq(fromRaw);
          if (!parsed.ok) throw new ValidationError('bad-from', 'from');
          from = parsed.seq;
        }
        await store.resetReplay(deviceid, from);
        return {
          statusCode: 200,
          payload: { status: 'OK', message: t('e2ee.registry.reset') },
          audit: t('e2ee.registry.audit-reset', { deviceid, from: from ?? 0 }),
        };
      }
    }
  } catch (err) {
    if (err instanceof ValidationError) return nok(400, `e2ee.registry.${err.code}`);
    if (err instanceof StorageUnavailableError) {
      return { ...nok(503, 'e2ee.registry.storage-unavailable'), headers: { 'Retry-After': String(STORAGE_RETRY_AFTER_S) } };
    }
    throw err;
  }
}
