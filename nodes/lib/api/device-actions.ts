/**
 * The actions devices call: registration, the config poll, a reading. Sealed ones (through aes-decrypt) get the
 * sealed config answer, with the acknowledgement the request carried applied first.
 */
import type { DeviceRow } from '../registry';
import { MAX_PENDING_COMMANDS, ValidationError, readingValues, validateRegister } from '../registry';
import { ackOf, parseSeq } from '../uplink';
import { MAX_OFFERED_COMMANDS, configResponse, plainConfigResponse } from '../downlink';
import { obj } from './body';
import type { ActionContext, ActionHandler, ActionResponse } from './types';

/**
 * Where a sealed uplink came from is where its device's commands are pushed (ActionRequest.source), and how: over
 * HTTP, or published to its topic when it was last heard over MQTT.
 */
async function recordSource(ctx: ActionContext): Promise<void> {
  if (!ctx.req.sealed) return;
  if (ctx.req.source) await ctx.store.noteSource(ctx.deviceid, ctx.req.source);
  if (ctx.req.transport) await ctx.store.noteTransport(ctx.deviceid, ctx.req.transport);
}

/** The device was heard from (its row read when it is not online yet, so that only a change costs a lookup). */
async function contact(ctx: ActionContext, device?: DeviceRow): Promise<void> {
  const events = ctx.req.events;
  if (!events?.tracking || events.touch(ctx.deviceid, ctx.now)) return;
  const row = device ?? (await ctx.store.get(ctx.deviceid));
  if (row) events.contact(row, ctx.req.transport, ctx.now);
}

/** Applies an acknowledgement the uplink carried, reporting it when it was new. */
async function acknowledge(ctx: ActionContext, ack: number): Promise<void> {
  if ((await ctx.store.ackCommands(ctx.deviceid, ack, ctx.now)) && ctx.req.events) ctx.req.events.acknowledged(ctx.deviceid, ack);
}

/** The sealed answer to a registration or poll. */
async function sealedAnswer(ctx: ActionContext, statusCode: number, device: DeviceRow): Promise<ActionResponse> {
  const { store, deviceid, now } = ctx;
  const sealed = ctx.req.sealed;
  const body = obj(ctx.req.body);
  const re = parseSeq(body.SEQN);
  if (!re.ok) throw new ValidationError('bad-seqn', 'SEQN');
  const ack = ackOf(body);
  if (ack !== undefined) await acknowledge(ctx, ack);
  const pending = await store.pendingCommands(deviceid, MAX_OFFERED_COMMANDS + 1);
  const response = configResponse(device, re.seq, pending, sealed?.keyver);
  // Without acknowledgements (plain mode), offering a command delivers it.
  if (!ctx.acknowledged) await store.markDelivered(deviceid, pending.slice(0, (response.commands as unknown[]).length).map((c) => c.seqn), 'poll', now);
  return { statusCode, payload: response, ...(sealed?.keyver !== undefined ? { keyVersion: sealed.keyver } : {}) };
}

const register: ActionHandler = async (ctx) => {
  const { req, deviceid } = ctx;
  const input = validateRegister(deviceid, req.body);
  if (req.sealed?.keyver !== undefined) input.keyver = req.sealed.keyver;
  const result = await ctx.store.register(input, ctx.now, req.maxDevices);
  if (result.full) return ctx.nok(403, 'e2ee.registry.device-limit', { max: req.maxDevices });
  const { created, device } = result;
  await recordSource(ctx);
  req.events?.registered(device, created, req.transport);
  if (req.sealed) return sealedAnswer(ctx, created ? 201 : 200, device);
  if (created) return { statusCode: 201, payload: { status: 'OK', message: ctx.t('e2ee.registry.registered'), deviceid, cfgsn: device.cfgsn } };
  return { statusCode: 200, payload: device };
};

/** The config poll. */
const get: ActionHandler = async (ctx) => {
  const { store, deviceid, now } = ctx;
  const device = await store.poll(deviceid, now);
  if (!device) return ctx.notRegistered();
  await recordSource(ctx);
  await contact(ctx, device);
  if (ctx.req.sealed) return sealedAnswer(ctx, 200, device);
  // Queued commands ride along, so devices behind NAT get them too; offering one delivers it.
  const pending = await store.pendingCommands(deviceid, MAX_PENDING_COMMANDS);
  const payload = plainConfigResponse(device, pending);
  await store.markDelivered(deviceid, pending.slice(0, payload.commands.length).map((c) => c.seqn), 'poll', now);
  return { statusCode: 200, payload };
};

/**
 * A reading (already admitted by the replay guard), with the acknowledgement it carries. A sleeper's reading (its
 * plaintext says `"sleep": seconds`, with hmac-sha256) is its one exchange of the wake: it is answered with the sealed
 * config answer, pending commands included, exactly as a poll is.
 */
const log: ActionHandler = async (ctx) => {
  const { store, deviceid, now, req } = ctx;
  const body = obj(req.body);
  const seq = parseSeq(body.SEQN);
  const ack = req.sealed ? ackOf(body) : undefined;
  const stored = await store.logReading(deviceid, seq.ok ? seq.seq : null, req.body, now);
  if (!stored) return ctx.notRegistered();
  await recordSource(ctx);
  const sleeper = ctx.acknowledged && req.sealed?.authenticated === true && isSleeper(body);
  const device = sleeper ? await store.get(deviceid) : undefined;
  if (req.events?.tracking) {
    await contact(ctx, device);
    const name = req.events.nameOf(deviceid) ?? '';
    req.events.reading({ deviceid, name, seqn: seq.ok ? seq.seq : null, data: readingValues(req.body), ts: new Date(now).toISOString(), transport: req.transport ?? 'http' });
  }
  if (device) return { ...(await sealedAnswer(ctx, 200, device)), answer: 'config' };
  if (ack !== undefined) await acknowledge(ctx, ack);
  return { statusCode: 200, payload: { status: 'OK' } };
};

/** A reading that says its device sleeps after it (`"sleep"`: a positive number of seconds). */
function isSleeper(body: Record<string, unknown>): boolean {
  return typeof body.sleep === 'number' && Number.isInteger(body.sleep) && body.sleep > 0;
}

/**
 * What a device's MQTT status topic says: {"online": true} when it connects, {"online": false} from its Last Will
 * when the connection drops. Not sealed (a Last Will is fixed at connect and would be replayable anyway), so it sets
 * the displayed connected flag of a known device and nothing else.
 */
const status: ActionHandler = async (ctx) => {
  const online = obj(ctx.req.body).online;
  if (typeof online !== 'boolean') throw new ValidationError('bad-status', 'online');
  return (await ctx.store.noteStatus(ctx.deviceid, online)) ? { statusCode: 200, payload: { status: 'OK' } } : ctx.notRegistered();
};

export const DEVICE_ACTIONS = { register, get, log, status } satisfies Record<string, ActionHandler>;
