/**
 * What both backends share about rows: the device columns and how a device row reads, how a command's columns
 * become its state, the order expired commands are reported in, and the rule for a message's key version.
 */
import type { DeviceRow, HistoryBucket } from '../registry';
import type { KeyCheck } from '../uplink';
import type { CommandStatusRow, ExpiredCommand } from './types';

export const DEVICE_COLUMNS = 'deviceid, name, lastseen, ssid, ipaddr, cfgsn, flags, data, datec, keyver, pendingkeyver, rxbuf, transport, connected, sleep';

/** A device row as stored: its data is JSON text. */
export interface RawDevice extends Omit<DeviceRow, 'data' | 'transport' | 'connected'> {
  data: string;
  transport: string | null;
  /** 1/0 in SQLite, a boolean in PostgreSQL, null when never said. */
  connected: number | boolean | null;
}

export function toDevice(raw: RawDevice): DeviceRow {
  let data: Record<string, unknown> = {};
  try {
    const parsed = JSON.parse(raw.data);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) data = parsed;
  } catch {
    // Only validated JSON objects are written; an unreadable value reads as empty.
  }
  return { ...raw, sleep: Number(raw.sleep) || 0, data, transport: raw.transport === 'mqtt' ? 'mqtt' : 'http', connected: raw.connected === null || raw.connected === undefined ? null : Boolean(raw.connected) };
}

/** A command's columns as the command log shows them. */
export interface RawCommandStatus {
  seqn: number;
  created: string;
  delivered: string | null;
  via: string | null;
  expired: string | null;
}

export function toCommandStatus(r: RawCommandStatus): CommandStatusRow {
  return {
    seqn: r.seqn,
    created: r.created,
    // Without acknowledgements (plain mode) a poll only offers a command: the device may have dropped it.
    state: r.expired ? 'expired' : r.delivered ? (r.via === 'ack' ? 'acknowledged' : r.via === 'poll' ? 'offered' : 'delivered') : 'pending',
    at: r.expired ?? r.delivered,
  };
}

/** Expired commands by device id, then SEQN. */
export function sortExpired(rows: ExpiredCommand[]): ExpiredCommand[] {
  return rows.sort((a, b) => (a.deviceid < b.deviceid ? -1 : a.deviceid > b.deviceid ? 1 : a.seqn - b.seqn));
}

/** A device's key versions (keyver undefined: not registered; floor: the lowest version a removed id may come back with). */
export interface KeyState {
  keyver?: number;
  pending: number | null;
  floor: number;
}

/** Whether a message sealed under key version kv is under the device's current version, its pending one, or refused. */
export function keyCheck(state: KeyState, kv: number): KeyCheck {
  if (state.keyver === undefined) return kv >= state.floor ? 'current' : 'refused';
  if (kv === state.keyver) return 'current';
  return kv === state.pending ? 'pending' : 'refused';
}

/** A history query's row: the bucket number, its count, and per field i its avg/min/max and count of numbers. */
export type RawHistory = { b: number | string; n: number | string } & Record<string, number | string | null>;

/** The history buckets from the rows of either dialect's query (see DeviceStore.history). */
export function toHistory(rows: RawHistory[], fields: string[], since: number, bucketMs: number): HistoryBucket[] {
  return rows.map((r) => {
    const values: HistoryBucket['values'] = {};
    fields.forEach((f, i) => {
      if (Number(r[`n${i}`]) > 0) values[f] = { avg: Number(r[`avg${i}`]), min: Number(r[`min${i}`]), max: Number(r[`max${i}`]) };
    });
    return { t: since + Number(r.b) * bucketMs, n: Number(r.n), values };
  });
}

/** The per-field aggregate columns of a history query over the values v0, v1, ... */
export function historyColumns(fields: string[]): string {
  return fields.map((_, i) => `avg(v${i}) AS avg${i}, min(v${i}) AS min${i}, max(v${i}) AS max${i}, count(v${i}) AS n${i}`).join(', ');
}
