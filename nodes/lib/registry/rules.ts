/**
 * Device registry rules: validation of what devices and operators send, and
 * the seed's request and response shapes. No I/O: the store persists.
 */
import { isIP } from 'node:net';

export const DEVICE_ID_RE = /^[A-Za-z0-9:._-]{1,64}$/;
export const MAX_SSID_BYTES = 32;
export const MAX_NAME_CHARS = 64;
export const MAX_DATA_BYTES = 16 * 1024;
export const DEFAULT_READINGS_LIMIT = 100;
export const MAX_READINGS_LIMIT = 1000;
export const DEFAULT_LIST_LIMIT = 1000;
export const MAX_LIST_LIMIT = 10000;

/** The seed's device row, as the API returns it. */
export interface DeviceRow {
  deviceid: string;
  name: string;
  lastseen: string | null;
  ssid: string;
  ipaddr: string;
  cfgsn: number;
  flags: number;
  data: Record<string, unknown>;
  datec: string;
  /** The version of the device's key under a per-device master key (0 until it is rekeyed). */
  keyver: number;
  /** The version a rekey is moving it to, until its first message under that version; else null. */
  pendingkeyver: number | null;
  /** The largest response body the device said it can receive (0: it did not say). */
  rxbuf: number;
  /** The transport of its latest authenticated uplink (http until one came over MQTT). */
  transport: Transport;
  /**
   * Connected to the MQTT broker, as its status topic says (the device's {"online": true} at connect, its Last Will's
   * {"online": false} when the connection drops), and true when its transport became MQTT; null for a device on HTTP.
   * Unauthenticated, so shown and never acted on. (The list's `online` is the heartbeat: an authenticated uplink within it.)
   */
  connected: boolean | null;
  /**
   * Seconds a battery device deep-sleeps between wakes, as its registration declared (0: always on). Its readings are
   * answered with the sealed config, and it is late only after two missed wakes.
   */
  sleep: number;
}

export const TRANSPORTS = ['http', 'mqtt'] as const;
export type Transport = (typeof TRANSPORTS)[number];

export interface ReadingRow {
  id: number;
  deviceid: string;
  seqn: number | null;
  received: string;
  payload: unknown;
}

/** A downsampled history of numeric reading fields: one bucket per time slot that has readings. */
export interface HistoryBucket {
  /** The bucket's start (ms since the epoch). */
  t: number;
  /** Readings in it. */
  n: number;
  /** Per field: the mean, least and greatest of its numeric values in the bucket (absent when none was numeric). */
  values: Record<string, { avg: number; min: number; max: number }>;
}

/** The fields of a reading's `data` a history may ask for (a name, not a path: it becomes a JSON path in SQL). */
const HISTORY_FIELD = /^[A-Za-z0-9_-]{1,32}$/;
/** At most this many fields per history, and this many buckets. */
export const MAX_HISTORY_FIELDS = 4;
export const MAX_HISTORY_BUCKETS = 1000;

/** The fields of a history request, validated (`a0,heap` or an array). */
export function parseHistoryFields(value: unknown): string[] {
  const list = Array.isArray(value) ? value : typeof value === 'string' ? value.split(',') : [];
  const fields = [...new Set(list.map((f) => String(f).trim()).filter((f) => f !== ''))];
  if (fields.length === 0 || fields.length > MAX_HISTORY_FIELDS || !fields.every((f) => HISTORY_FIELD.test(f))) throw new ValidationError('bad-fields', 'fields');
  return fields;
}

/** A validation failure: `field` names what was wrong, `code` the catalog key under e2ee.registry. */
export class ValidationError extends Error {
  constructor(readonly code: string, readonly field: string) {
    super(code);
    this.name = 'ValidationError';
  }
}

/** A string of decimal digits (a query-string value) as its number; anything else unchanged. */
function fromDigits(value: unknown): unknown {
  return typeof value === 'string' && /^[0-9]+$/.test(value) ? Number(value) : value;
}

export function validateDeviceId(value: unknown): string {
  if (typeof value !== 'string' || !DEVICE_ID_RE.test(value)) throw new ValidationError('bad-deviceid', 'deviceid');
  return value;
}

export function validateIp(value: unknown): string {
  if (typeof value !== 'string' || isIP(value) === 0) throw new ValidationError('bad-ipaddr', 'ipaddr');
  return value;
}

export function validateSsid(value: unknown): string {
  if (typeof value !== 'string' || Buffer.byteLength(value, 'utf8') > MAX_SSID_BYTES) throw new ValidationError('bad-ssid', 'ssid');
  return value;
}

export function validateName(value: unknown): string {
  if (typeof value !== 'string' || [...value].length > MAX_NAME_CHARS) throw new ValidationError('bad-name', 'name');
  return value;
}

/** data must be a JSON object (not an array) whose JSON text is at most 16 KiB. Returns that text. */
export function validateData(value: unknown): string {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || Buffer.isBuffer(value)) throw new ValidationError('bad-data', 'data');
  const json = JSON.stringify(value);
  if (Buffer.byteLength(json, 'utf8') > MAX_DATA_BYTES) throw new ValidationError('bad-data', 'data');
  return json;
}

export function validateFlags(value: unknown): number {
  const n = fromDigits(value);
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new ValidationError('bad-flags', 'flags');
  return n;
}

/** A non-negative integer from a number or a digit string (query strings), clamped to max; `fallback` when absent. */
export function parseLimit(value: unknown, fallback: number, max: number, field = 'limit'): number {
  if (value === undefined || value === null || value === '') return fallback;
  const n = fromDigits(value);
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new ValidationError('bad-limit', field);
  return Math.min(n, max);
}

/** An optional time bound: ISO 8601 text or epoch milliseconds. Returns ISO text. */
export function parseSince(value: unknown): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const digits = fromDigits(value);
  const ms = typeof digits === 'number' ? digits : Date.parse(String(value));
  // ±8.64e15 ms is the range of a JavaScript Date; beyond it there is no time to compare with.
  if (!Number.isFinite(ms) || Math.abs(ms) > 8.64e15) throw new ValidationError('bad-since', 'since');
  return new Date(ms).toISOString();
}

export interface RegisterInput {
  deviceid: string;
  ipaddr: string;
  ssid: string;
  name?: string;
  /** TCP port of the device's /command endpoint (default 80). */
  cmdport?: number;
  /** The largest response body the device can receive (authenticated registration). */
  rxbuf?: number;
  /** The per-device key version the registration was sealed with (a new device starts there). */
  keyver?: number;
  /** Seconds it deep-sleeps between wakes (0 or absent: always on). */
  sleep?: number;
}

/** The longest sleep a device may declare: a day. */
export const MAX_SLEEP_S = 86_400;

/** A declared sleep: a whole number of seconds, 0 (always on) to a day. */
export function validateSleep(value: unknown): number {
  const n = fromDigits(value);
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > MAX_SLEEP_S) throw new ValidationError('bad-sleep', 'sleep');
  return n;
}

/** The smallest receive buffer a device may declare, and the largest that means anything. */
export const MIN_RXBUF = 256;
export const MAX_RXBUF = 1 << 20;

export const MAX_COMMAND_BYTES = 1024;
export const MAX_PENDING_COMMANDS = 10;

export function validatePort(value: unknown): number {
  const n = fromDigits(value);
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 65535) throw new ValidationError('bad-cmdport', 'cmdport');
  return n;
}

/** A command is a non-empty JSON object of at most 1 KiB (it must fit the device's buffer). */
export function validateCommand(value: unknown): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || Buffer.isBuffer(value) || Object.keys(value).length === 0) {
    throw new ValidationError('bad-command', 'command');
  }
  if (Buffer.byteLength(JSON.stringify(value), 'utf8') > MAX_COMMAND_BYTES) throw new ValidationError('bad-command', 'command');
  return value as Record<string, unknown>;
}

export function validateRegister(deviceid: unknown, body: unknown): RegisterInput {
  const id = validateDeviceId(deviceid);
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new ValidationError('bad-body', 'body');
  const b = body as Record<string, unknown>;
  const input: RegisterInput = { deviceid: id, ipaddr: validateIp(b.ipaddr), ssid: validateSsid(b.ssid) };
  // The name is the operators' (PUT): a registration cannot set it, so whoever can register a device id cannot
  // rename it. (A name in the body is ignored, for firmware that sends one.)
  if (b.cmdport !== undefined) input.cmdport = validatePort(b.cmdport);
  if (b.rxbuf !== undefined) {
    const n = fromDigits(b.rxbuf);
    if (typeof n !== 'number' || !Number.isInteger(n) || n < MIN_RXBUF || n > MAX_RXBUF) throw new ValidationError('bad-rxbuf', 'rxbuf');
    input.rxbuf = n;
  }
  if (b.sleep !== undefined) input.sleep = validateSleep(b.sleep);
  return input;
}

export interface UpdateInput {
  name?: string;
  /** JSON text of the new data object. */
  data?: string;
  flags?: number;
}

export function validateUpdate(body: unknown): UpdateInput {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new ValidationError('bad-body', 'body');
  const b = body as Record<string, unknown>;
  const input: UpdateInput = {};
  if (b.name !== undefined) input.name = validateName(b.name);
  if (b.data !== undefined) input.data = validateData(b.data);
  if (b.flags !== undefined) input.flags = validateFlags(b.flags);
  if (input.name === undefined && input.data === undefined && input.flags === undefined) throw new ValidationError('empty-update', 'body');
  return input;
}

/** Whether a device counts as online: seen within the heartbeat timeout. */
export function isOnline(lastseen: string | null, heartbeatMs: number, now: number): boolean {
  if (!lastseen) return false;
  const t = Date.parse(lastseen);
  return Number.isFinite(t) && now - t <= heartbeatMs;
}

/**
 * The seconds between a sleeper's wakes: its config's `interval` when the operator set one (the firmware sleeps that
 * long), else the sleep its registration declared; 0 for a device that is always on.
 */
export function wakePeriodS(device: Pick<DeviceRow, 'sleep' | 'data'>): number {
  if (!(device.sleep > 0)) return 0;
  const interval = Number(device.data?.interval);
  return Number.isInteger(interval) && interval > 0 && interval < MAX_SLEEP_S ? interval : device.sleep;
}

/** A sleeper is late only after two missed wakes: online while its last wake is at most 2.5 periods ago. */
export const SLEEPER_LATE_PERIODS = 2.5;

/**
 * What the device list says about presence: `online` (the heartbeat; for a sleeper, two missed wakes), and for a
 * sleeper `nextwake`, when it is due next (ISO time; in the past when it is late).
 */
export function presence(device: Pick<DeviceRow, 'lastseen' | 'sleep' | 'data'>, heartbeatMs: number, now: number): { online: boolean; nextwake: string | null } {
  const period = wakePeriodS(device);
  if (period === 0) return { online: isOnline(device.lastseen, heartbeatMs, now), nextwake: null };
  const t = device.lastseen ? Date.parse(device.lastseen) : NaN;
  if (!Number.isFinite(t)) return { online: false, nextwake: null };
  return { online: now - t <= presenceLapseMs(device, heartbeatMs), nextwake: new Date(t + period * 1000).toISOString() };
}

/** How long after its last contact a device stops counting as online: the heartbeat, or a sleeper's 2.5 periods. */
export function presenceLapseMs(device: Pick<DeviceRow, 'sleep' | 'data'>, heartbeatMs: number): number {
  const period = wakePeriodS(device);
  return period > 0 ? SLEEPER_LATE_PERIODS * period * 1000 : heartbeatMs;
}
