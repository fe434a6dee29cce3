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
import type { CommandRow, DeviceStore } from './store/types';
import type { DeviceRow } from './registry';
import { sealedDataLength, sealedLength } from './wire';

/** How the devices talk to this registry: what its aes-key says. */
export interface DeviceAuth {
  /**
   * Devices authenticate (hmac-sha256): registration and the config poll must come sealed, and a command counts as
   * delivered only when the device acknowledges it.
   */
  acknowledged: boolean;
  /** Keys are per device, so a device can be rekeyed. */
  perDevice: boolean;
}

/** A request that came through aes-decrypt: its body is the decrypted plaintext. */
export interface SealedRequest {
  /** The MAC was verified (hmac-sha256). */
  authenticated: boolean;
  /** The per-device key version it was sealed with. */
  keyver?: number;
}

export const REGISTRY_ACTIONS = ['register', 'get', 'update', 'list', 'log', 'readings', 'remove', 'reset', 'command', 'queue-command', 'command-delivered', 'rekey', 'commands', 'health'] as const;
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
  /** register: the most devices the store may hold. */
  maxDevices?: number;
  /** How devices authenticate (from the registry's aes-key); absent: the seed's plain protocol. */
  deviceAuth?: DeviceAuth;
  /** Set when the request came through aes-decrypt (msg.e2ee). */
  sealed?: SealedRequest;
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
  /** The per-device key version to seal the answer or command with (msg.keyVersion). */
  keyVersion?: number;
}

/** Commands a config response offers at most. */
export const MAX_OFFERED_COMMANDS = MAX_PENDING_COMMANDS;

/** The acknowledgement an uplink carries: the highest downlink SEQN the device accepted (0: none yet). */
function ackOf(body: Record<string, unknown>): number | undefined {
  if (body.ack === undefined) return undefined;
  const n = body.ack;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new ValidationError('bad-ack', 'ack');
  return n;
}

/**
 * The answer to a sealed registration or poll, sealed by the flow with the key the request came under:
 *   {"re": request SEQN, "cfgsn": n, "data": {...}, "commands": [sealed command, ...], "more": bool}
 * It offers the oldest pending commands, as many as keep the sealed answer within the device's receive buffer;
 * `more` says some are left for the next poll.
 */
export function configResponse(device: DeviceRow, re: number, pending: CommandRow[], kv?: number): Record<string, unknown> {
  const base = { re, cfgsn: device.cfgsn, data: device.data, commands: [] as unknown[], more: false };
  offerCommands(base, pending, device.rxbuf, MAX_OFFERED_COMMANDS, (length) => sealedLength(length, kv));
  base.more = base.commands.length < pending.length;
  return base;
}

/**
 * The plain config answer (`none` mode) `{cfgsn, data, commands}`: the oldest pending commands, as many as keep the
 * answer within the receive buffer the device declared (up to MAX_PENDING_COMMANDS when it declared none). Offering
 * a command delivers it in this mode, so what does not fit waits for the next poll instead of being lost with an
 * answer the device must drop.
 */
export function plainConfigResponse(device: DeviceRow, pending: CommandRow[]): { cfgsn: number; data: Record<string, unknown>; commands: unknown[] } {
  const base = { cfgsn: device.cfgsn, data: device.data, commands: [] as unknown[] };
  offerCommands(base, pending, device.rxbuf, MAX_PENDING_COMMANDS, (length) => length);
  return base;
}

/** Adds pending commands to answer.commands while the answer's size (`size` of its JSON length) stays within rxbuf. */
function offerCommands(answer: { commands: unknown[] }, pending: CommandRow[], rxbuf: number, max: number, size: (jsonLength: number) => number): void {
  const limit = rxbuf > 0 ? rxbuf : Infinity;
  let length = Buffer.byteLength(JSON.stringify(answer), 'utf8');
  for (const c of pending) {
    const next = length + Buffer.byteLength(JSON.stringify(c.command), 'utf8') + (answer.commands.length > 0 ? 1 : 0);
    if (answer.commands.length === max || size(next) > limit) break;
    answer.commands.push(c.command);
    length = next;
  }
}

/** The sealed length of a config response that offers only `command` (what a device must be able to receive). */
function loneCommandLength(device: DeviceRow, command: unknown, kv?: number): number {
  const plain = { re: Number.MAX_SAFE_INTEGER, cfgsn: device.cfgsn, data: device.data, commands: [command], more: true };
  return sealedLength(Buffer.byteLength(JSON.stringify(plain), 'utf8'), kv);
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
    if (action === 'health') {
      // For a load balancer's checks: this instance runs its flow and its storage answers now.
      await store.ping();
      return { statusCode: 200, payload: { status: 'OK', backend: store.backend } };
    }
    if (action === 'list') {
      const q = obj(req.body);
      const limit = parseLimit(q.limit, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT);
      const offset = parseLimit(q.offset, 0, Number.MAX_SAFE_INTEGER, 'offset');
      const { devices, total } = await store.list({ limit, offset });
      return { statusCode: 200, payload: devices.map(withOnline), total };
    }
    const deviceid = validateDeviceId(req.deviceid);
    const acknowledged = req.deviceAuth?.acknowledged === true;
    const sealed = req.sealed;
    // With authenticating devices, a registration or poll that did not come through aes-decrypt is nobody's.
    if ((action === 'register' || action === 'get') && acknowledged && !sealed?.authenticated) {
      return { ...nok(401, 'e2ee.registry.auth-required'), headers: { 'WWW-Authenticate': 'esp-e2ee' } };
    }
    /** The sealed answer to a registration or poll, and the acknowledgement the request carried applied first. */
    const answer = async (statusCode: number, device: DeviceRow): Promise<ActionResponse> => {
      const body = obj(req.body);
      const re = parseSeq(body.SEQN);
      if (!re.ok) throw new ValidationError('bad-seqn', 'SEQN');
      const ack = ackOf(body);
      if (ack !== undefined) await store.ackCommands(deviceid, ack, now);
      const pending = await store.pendingCommands(deviceid, MAX_OFFERED_COMMANDS + 1);
      // Without acknowledgements (plain mode), offering a command delivers it.
      const response = configResponse(device, re.seq, pending, sealed?.keyver);
      if (!acknowledged) await store.markDelivered(deviceid, pending.slice(0, (response.commands as unknown[]).length).map((c) => c.seqn), 'poll', now);
      return { statusCode, payload: response, ...(sealed?.keyver !== undefined ? { keyVersion: sealed.keyver } : {}) };
    };
    switch (action) {
      case 'register': {
        const input = validateRegister(deviceid, req.body);
        if (sealed?.keyver !== undefined) input.keyver = sealed.keyver;
        const result = await store.register(input, now, req.maxDevices);
        if (result.full) return nok(403, 'e2ee.registry.device-limit', { max: req.maxDevices });
        const { created, device } = result;
        // (Awaited here, so that a rejection of the answer is answered by the catch below.)
        if (sealed) return await answer(created ? 201 : 200, device);
        if (created) return { statusCode: 201, payload: { status: 'OK', message: t('e2ee.registry.registered'), deviceid, cfgsn: device.cfgsn } };
        return { statusCode: 200, payload: device };
      }
      case 'get': {
        const device = await store.poll(deviceid, now);
        if (!device) return notRegistered();
        if (sealed) return await answer(200, device);
        // Queued commands ride along, so devices behind NAT get them too; offering one delivers it.
        const pending = await store.pendingCommands(deviceid, MAX_PENDING_COMMANDS);
        const payload = plainConfigResponse(device, pending);
        await store.markDelivered(deviceid, pending.slice(0, payload.commands.length).map((c) => c.seqn), 'poll', now);
        return { statusCode: 200, payload };
      }
      case 'update': {
        const input = validateUpdate(req.body);
        const device = await store.update(deviceid, input);
        return device ? { statusCode: 200, payload: device } : notRegistered();
      }
      case 'log': {
        const seq = parseSeq(obj(req.body).SEQN);
        const ack = sealed ? ackOf(obj(req.body)) : undefined;
        const stored = await store.logReading(deviceid, seq.ok ? seq.seq : null, req.body, now);
        if (stored && ack !== undefined) await store.ackCommands(deviceid, ack, now);
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
        const device = await store.get(deviceid);
        if (!device) return notRegistered();
        // Sealed under the newest key: a device that has not taken a pending rekey yet finds the rekey command
        // before this one in its poll (the push waits for the acknowledgement of earlier commands).
        const keyVersion = req.deviceAuth?.perDevice ? (device.pendingkeyver ?? device.keyver) : undefined;
        if (device.rxbuf > 0) {
          // The encrypted command (with the longest SEQN), inside a poll answer that offers it alone: if that does not
          // fit the device's buffer, no poll could ever deliver it.
          const plainLength = Buffer.byteLength(JSON.stringify({ cmd: command, SEQN: Number.MAX_SAFE_INTEGER }), 'utf8');
          const encrypted = { iv: 'x'.repeat(24), data: 'x'.repeat(sealedDataLength(plainLength)), ...(acknowledged ? { mac: 'x'.repeat(44) } : {}), ...(keyVersion !== undefined ? { kv: keyVersion } : {}) };
          const lone = acknowledged
            ? loneCommandLength(device, encrypted, keyVersion)
            : Buffer.byteLength(JSON.stringify({ cfgsn: device.cfgsn, data: device.data, commands: [encrypted] }), 'utf8');
          if (lone > device.rxbuf) return nok(413, 'e2ee.registry.command-too-large', { rxbuf: device.rxbuf });
        }
        const seqn = await store.nextCommandSeq(deviceid);
        // The plaintext for aes-encrypt, in the shape of an uplink reading.
        return { statusCode: 202, payload: { cmd: command, SEQN: seqn }, seqn, ...(keyVersion !== undefined ? { keyVersion } : {}) };
      }
      case 'rekey': {
        if (!req.deviceAuth?.perDevice || !acknowledged) return nok(409, 'e2ee.registry.rekey-unavailable');
        const versions = await store.beginRekey(deviceid);
        if (!versions) return notRegistered();
        const seqn = await store.nextCommandSeq(deviceid);
        // Sealed under the current key; aes-encrypt adds the new key itself, so it never travels through the flow.
        return {
          statusCode: 202,
          payload: { rekey: { kv: versions.pending }, SEQN: seqn },
          seqn,
          keyVersion: versions.keyver,
          audit: t('e2ee.registry.audit-rekey', { deviceid, from: versions.keyver, to: versions.pending }),
        };
      }
      case 'commands': {
        if (!(await store.get(deviceid))) return notRegistered();
        const q = obj(req.body);
        return { statusCode: 200, payload: await store.commandLog(deviceid, parseLimit(q.limit, DEFAULT_READINGS_LIMIT, MAX_READINGS_LIMIT)) };
      }
      case 'queue-command': {
        const seqn = parseSeq(req.seqn);
        if (!seqn.ok || seqn.seq === 0) throw new ValidationError('bad-seqn', 'seqn');
        if (req.body === null || typeof req.body !== 'object') throw new ValidationError('bad-command', 'command');
        const target = await store.commandTarget(deviceid);
        if (!target) return notRegistered();
        await store.queueCommand(deviceid, seqn.seq, req.body, now);
        const queued = { statusCode: 202, payload: { status: 'OK', message: t('e2ee.registry.command-queued'), seqn: seqn.seq }, seqn: seqn.seq };
        // The device accepts only ever higher numbers, and acknowledges the highest: pushed past an earlier command
        // that waits for the poll, this one would make the device drop that one. So it waits its turn.
        if (acknowledged) {
          const [oldest] = await store.pendingCommands(deviceid, 1);
          if (oldest && oldest.seqn < seqn.seq) return queued;
        }
        const verdict = req.push?.verdict(target.ipaddr) ?? 'not-allowed';
        if (verdict !== 'allowed') return { ...queued, pushRefused: { address: target.ipaddr, verdict } };
        const host = target.ipaddr.includes(':') ? `[${target.ipaddr}]` : target.ipaddr;
        return { ...queued, pushUrl: `http://${host}:${target.cmdport}/command` };
      }
      case 'command-delivered': {
        const seqn = parseSeq(req.seqn);
        if (!seqn.ok) throw new ValidationError('bad-seqn', 'seqn');
        // With authenticating devices a 200 from the address proves nothing: the acknowledgement in the device's
        // next uplink does.
        if (!acknowledged) await store.markDelivered(deviceid, [seqn.seq], 'push', now);
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
