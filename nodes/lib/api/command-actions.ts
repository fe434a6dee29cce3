/**
 * The life of a command: the operator's command (or rekey) allocates a downlink SEQN and hands the plaintext to
 * aes-encrypt; queue-command stores the encrypted command and says where to push it; command-delivered records
 * a push's answer.
 */
import { ValidationError, validateCommand } from '../registry';
import { parseSeq } from '../uplink';
import { commandFits, pushUrl } from '../downlink';
import type { ActionHandler } from './types';

const command: ActionHandler = async (ctx) => {
  const { store, deviceid } = ctx;
  const cmd = validateCommand(ctx.req.body);
  const device = await store.get(deviceid);
  if (!device) return ctx.notRegistered();
  // The key a rekey moves the device to exists only once the device has answered it (its X25519 public key comes in
  // its first message under the new version), so nothing can be sealed under it before: queue again after that.
  if (ctx.req.deviceAuth?.perDevice && device.pendingkeyver !== null && device.pendingkeyver !== undefined) {
    return ctx.nok(409, 'e2ee.registry.rekey-pending', { version: device.pendingkeyver });
  }
  const keyVersion = ctx.req.deviceAuth?.perDevice ? device.keyver : undefined;
  if (!commandFits(device, cmd, ctx.acknowledged, keyVersion)) return ctx.nok(413, 'e2ee.registry.command-too-large', { rxbuf: device.rxbuf });
  const seqn = await store.nextCommandSeq(deviceid);
  // The plaintext for aes-encrypt, in the shape of an uplink reading.
  return { statusCode: 202, payload: { cmd, SEQN: seqn }, seqn, ...(keyVersion !== undefined ? { keyVersion } : {}) };
};

const rekey: ActionHandler = async (ctx) => {
  const { store, deviceid } = ctx;
  if (!ctx.req.deviceAuth?.rekey || !ctx.acknowledged) return ctx.nok(409, 'e2ee.registry.rekey-unavailable');
  const versions = await store.beginRekey(deviceid);
  if (!versions) return ctx.notRegistered();
  const seqn = await store.nextCommandSeq(deviceid);
  // Sealed under the current key; aes-encrypt adds the server's X25519 public key of this rekey (its secret stays
  // wrapped in the store), and the device answers with its own in its first message under the new version.
  return {
    statusCode: 202,
    payload: { rekey: { kv: versions.pending }, SEQN: seqn },
    seqn,
    keyVersion: versions.keyver,
    audit: ctx.t('e2ee.registry.audit-rekey', { deviceid, from: versions.keyver, to: versions.pending }),
  };
};

const queueCommand: ActionHandler = async (ctx) => {
  const { store, deviceid, req } = ctx;
  const seqn = parseSeq(req.seqn);
  if (!seqn.ok || seqn.seq === 0) throw new ValidationError('bad-seqn', 'seqn');
  if (req.body === null || typeof req.body !== 'object') throw new ValidationError('bad-command', 'command');
  const target = await store.commandTarget(deviceid);
  if (!target) return ctx.notRegistered();
  await store.queueCommand(deviceid, seqn.seq, req.body, ctx.now);
  const queued = { statusCode: 202, payload: { status: 'OK', message: ctx.t('e2ee.registry.command-queued'), seqn: seqn.seq }, seqn: seqn.seq };
  // The device accepts only ever higher numbers, and acknowledges the highest: pushed or published past an earlier
  // command that waits, this one would make the device drop that one (a broker that lost or held back the earlier
  // publish would get it counted as delivered). So it waits its turn: the answer to the poll that acknowledges the
  // earlier one offers it.
  if (ctx.acknowledged) {
    const [oldest] = await store.pendingCommands(deviceid, 1);
    if (oldest && oldest.seqn < seqn.seq) return queued;
  }
  // A device last heard over MQTT gets it published to its topic: the broker keeps it for the device's session.
  if (target.transport === 'mqtt') return { ...queued, publish: true };
  // A sleeper cannot be reached over HTTP: the answer to its next wake's reading offers the command.
  if (target.sleep > 0) return queued;
  // Pushed only to where the device's latest authenticated uplink came from, never to the address it claims (a key
  // holder could name any host); before its first such uplink, the poll delivers.
  const address = await store.seenAddress(deviceid);
  if (address === null) return queued;
  const verdict = req.push?.verdict(address) ?? 'not-allowed';
  if (verdict !== 'allowed') return { ...queued, pushRefused: { address, verdict } };
  return { ...queued, pushUrl: pushUrl({ ipaddr: address, cmdport: target.cmdport }) };
};

const commandDelivered: ActionHandler = async (ctx) => {
  const seqn = parseSeq(ctx.req.seqn);
  if (!seqn.ok) throw new ValidationError('bad-seqn', 'seqn');
  // With authenticating devices a 200 from the address proves nothing: the acknowledgement in the device's
  // next uplink does.
  if (!ctx.acknowledged) await ctx.store.markDelivered(ctx.deviceid, [seqn.seq], 'push', ctx.now);
  return { statusCode: 200, payload: { status: 'OK' }, seqn: seqn.seq };
};

export const COMMAND_ACTIONS = { command, rekey, 'queue-command': queueCommand, 'command-delivered': commandDelivered } satisfies Record<string, ActionHandler>;
