/**
 * What goes down to a device: the config answer to a registration or poll, with as many pending commands as fit the
 * receive buffer the device declared, and whether a command could ever fit it.
 */
import { MAX_PENDING_COMMANDS } from '../registry';
import type { DeviceRow } from '../registry';
import type { CommandRow } from '../store';
import { sealedDataLength, sealedLength } from '../wire';

/** Commands a config response offers at most. */
export const MAX_OFFERED_COMMANDS = MAX_PENDING_COMMANDS;

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

/**
 * Whether the command could ever reach the device: encrypted (with the longest SEQN) inside a config answer that
 * offers it alone, it must fit the receive buffer the device declared (always true when it declared none).
 * `acknowledged`: sealed answers (hmac-sha256); else the plain answer of `none` mode.
 */
export function commandFits(device: DeviceRow, command: unknown, acknowledged: boolean, kv?: number): boolean {
  if (device.rxbuf <= 0) return true;
  const plainLength = Buffer.byteLength(JSON.stringify({ cmd: command, SEQN: Number.MAX_SAFE_INTEGER }), 'utf8');
  const encrypted = { iv: 'x'.repeat(24), data: 'x'.repeat(sealedDataLength(plainLength)), ...(acknowledged ? { mac: 'x'.repeat(44) } : {}), ...(kv !== undefined ? { kv } : {}) };
  const lone = acknowledged
    ? sealedLength(Buffer.byteLength(JSON.stringify({ re: Number.MAX_SAFE_INTEGER, cfgsn: device.cfgsn, data: device.data, commands: [encrypted], more: true }), 'utf8'), kv)
    : Buffer.byteLength(JSON.stringify({ cfgsn: device.cfgsn, data: device.data, commands: [encrypted] }), 'utf8');
  return lone <= device.rxbuf;
}
