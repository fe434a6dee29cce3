/**
 * The device-registry actions: one handler per action (device-actions, operator-actions, command-actions), and
 * runAction, which is only dispatch, the operator token check and the mapping of errors to answers. Every answer is
 * in the seed's shapes, ready for an http response node; the caller passes the translator, so every text comes
 * from the message catalog.
 */
import type { Translate } from '../common';
import { bearerToken, secretsEqual } from '../crypto';
import { ValidationError, validateDeviceId } from '../registry';
import { STORAGE_RETRY_AFTER_S, StorageUnavailableError } from '../store';
import type { DeviceStore } from '../store';
import { COMMAND_ACTIONS } from './command-actions';
import { DEVICE_ACTIONS } from './device-actions';
import { OPERATOR_ACTIONS } from './operator-actions';
import { REGISTRY_ACTIONS } from './types';
import type { ActionContext, ActionHandler, ActionRequest, ActionResponse, RegistryAction } from './types';

const HANDLERS: Record<RegistryAction, ActionHandler> = { ...DEVICE_ACTIONS, ...OPERATOR_ACTIONS, ...COMMAND_ACTIONS };

/** The actions that are about no one device (no device id is validated for them). */
const FLEET_ACTIONS: ReadonlySet<RegistryAction> = new Set(['health', 'list']);

function isAction(action: string): action is RegistryAction {
  return (REGISTRY_ACTIONS as readonly string[]).includes(action);
}

function nokOf(t: Translate) {
  return (statusCode: number, key: string, params?: Record<string, unknown>): ActionResponse => ({
    statusCode,
    payload: { status: 'NOK', message: t(key, params) },
  });
}

/** The operator token check: an unset token refuses everyone rather than letting everyone in. */
function authorized(auth: NonNullable<ActionRequest['auth']>): boolean {
  const presented = bearerToken(auth.header);
  return !!auth.token && presented !== undefined && secretsEqual(presented, auth.token);
}

export async function runAction(store: DeviceStore, req: ActionRequest, t: Translate): Promise<ActionResponse> {
  const nok = nokOf(t);
  if (req.auth && !authorized(req.auth)) return { ...nok(401, 'e2ee.registry.unauthorized'), headers: { 'WWW-Authenticate': 'Bearer' } };
  try {
    if (!isAction(req.action)) return nok(400, 'e2ee.registry.bad-action', { action: String(req.action).slice(0, 32) });
    const action = req.action;
    const acknowledged = req.deviceAuth?.acknowledged === true;
    const deviceid = FLEET_ACTIONS.has(action) ? '' : validateDeviceId(req.deviceid);
    // With authenticating devices, a registration or poll that did not come through aes-decrypt is nobody's.
    if ((action === 'register' || action === 'get') && acknowledged && !req.sealed?.authenticated) {
      return { ...nok(401, 'e2ee.registry.auth-required'), headers: { 'WWW-Authenticate': 'esp-e2ee' } };
    }
    const ctx: ActionContext = { store, req, t, now: req.now ?? Date.now(), deviceid, acknowledged, nok, notRegistered: () => nok(404, 'e2ee.registry.not-registered') };
    return await HANDLERS[action](ctx);
  } catch (err) {
    if (err instanceof ValidationError) return nok(400, `e2ee.registry.${err.code}`);
    if (err instanceof StorageUnavailableError) {
      return { ...nok(503, 'e2ee.registry.storage-unavailable'), headers: { 'Retry-After': String(STORAGE_RETRY_AFTER_S) } };
    }
    throw err;
  }
}
