/** The operators' actions on the registry: list, update, readings, remove, the command log, a counter reset, health. */
import {
  DEFAULT_LIST_LIMIT,
  DEFAULT_READINGS_LIMIT,
  MAX_LIST_LIMIT,
  MAX_READINGS_LIMIT,
  ValidationError,
  presence,
  parseLimit,
  parseSince,
  validateUpdate,
} from '../registry';
import { parseSeq } from '../uplink';
import { obj } from './body';
import type { ActionHandler } from './types';

/** For a load balancer's checks: this instance runs its flow and its storage answers now. */
const health: ActionHandler = async ({ store }) => {
  await store.ping();
  return { statusCode: 200, payload: { status: 'OK', backend: store.backend } };
};

const list: ActionHandler = async ({ store, req, now }) => {
  const q = obj(req.body);
  const limit = parseLimit(q.limit, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT);
  const offset = parseLimit(q.offset, 0, Number.MAX_SAFE_INTEGER, 'offset');
  const { devices, total } = await store.list({ limit, offset });
  const payload = devices.map((row) => ({ ...row, ...presence(row, req.heartbeatMs, now) }));
  return { statusCode: 200, payload, total };
};

const update: ActionHandler = async (ctx) => {
  const device = await ctx.store.update(ctx.deviceid, validateUpdate(ctx.req.body));
  if (device) ctx.req.events?.changed(device);
  return device ? { statusCode: 200, payload: device } : ctx.notRegistered();
};

const readings: ActionHandler = async (ctx) => {
  const q = obj(ctx.req.body);
  const limit = parseLimit(q.limit, DEFAULT_READINGS_LIMIT, MAX_READINGS_LIMIT);
  const since = parseSince(q.since);
  if (!(await ctx.store.get(ctx.deviceid))) return ctx.notRegistered();
  return { statusCode: 200, payload: await ctx.store.readings(ctx.deviceid, { limit, since }) };
};

const remove: ActionHandler = async (ctx) => {
  const { deviceid, t } = ctx;
  // The event's name: from the devices online, else the row (read only when anybody listens).
  const events = ctx.req.events;
  const name = events?.tracking ? events.nameOf(deviceid) ?? (await ctx.store.get(deviceid))?.name ?? '' : '';
  if (!(await ctx.store.remove(deviceid))) return ctx.notRegistered();
  ctx.req.events?.revoked(deviceid, name);
  return { statusCode: 200, payload: { status: 'OK', message: t('e2ee.registry.removed') }, audit: t('e2ee.registry.audit-removed', { deviceid }) };
};

/** The device's commands and what became of them. */
const commands: ActionHandler = async (ctx) => {
  if (!(await ctx.store.get(ctx.deviceid))) return ctx.notRegistered();
  const limit = parseLimit(obj(ctx.req.body).limit, DEFAULT_READINGS_LIMIT, MAX_READINGS_LIMIT);
  return { statusCode: 200, payload: await ctx.store.commandLog(ctx.deviceid, limit) };
};

/** Forget the device's replay counter, or accept only numbers >= from. */
const reset: ActionHandler = async (ctx) => {
  const { deviceid, t } = ctx;
  if (!(await ctx.store.get(deviceid))) return ctx.notRegistered();
  const fromRaw = obj(ctx.req.body).from;
  let from: number | undefined;
  if (fromRaw !== undefined) {
    const parsed = parseSeq(fromRaw);
    if (!parsed.ok) throw new ValidationError('bad-from', 'from');
    from = parsed.seq;
  }
  await ctx.store.resetReplay(deviceid, from);
  return {
    statusCode: 200,
    payload: { status: 'OK', message: t('e2ee.registry.reset') },
    audit: t('e2ee.registry.audit-reset', { deviceid, from: from ?? 0 }),
  };
};

export const OPERATOR_ACTIONS = { health, list, update, readings, remove, commands, reset } satisfies Record<string, ActionHandler>;
