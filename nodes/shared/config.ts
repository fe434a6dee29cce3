/** Small helpers that turn editor properties and message fields into checked values. */
import type { Msg } from './red';

/** The configured value when it is one of the allowed ones, else the default. */
export function oneOf<T extends string>(value: unknown, allowed: readonly T[], fallback: T): T {
  return allowed.includes(value as T) ? (value as T) : fallback;
}

export function positiveInt(value: unknown, fallback: number): number {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  return typeof n === 'number' && Number.isSafeInteger(n) && n > 0 ? n : fallback;
}

/** msg.deviceid, or the :deviceid route parameter when the message comes straight from an http in node. */
export function deviceIdFrom(msg: Msg): unknown {
  if (msg.deviceid !== undefined) return msg.deviceid;
  return (msg.req as { params?: Record<string, unknown> } | undefined)?.params?.deviceid;
}

/** msg.deviceid as the MAC binds it: a string, or empty when there is none. */
export function deviceIdOf(msg: Msg): string {
  const id = msg.deviceid;
  return typeof id === 'string' ? id : typeof id === 'number' ? String(id) : '';
}
