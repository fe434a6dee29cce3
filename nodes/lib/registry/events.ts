/**
 * What a store's devices do, for users' own flows: every accepted reading, and the device events (registered, online,
 * offline, a command acknowledged or expired, rekeyed, revoked). One `DeviceEvents` belongs to each store; the
 * registry's actions and the replay guard report into it, and the `device-events` node listens.
 *
 * Online and offline come from contact: a device is online from its first authenticated contact (registration,
 * poll, reading) until its presence lapses (the heartbeat; a sleeper, two missed wakes), which a sweep finds.
 * Nothing is tracked and no sweep runs while nobody listens, so a flow without a device-events node pays nothing.
 */
import { EventEmitter } from 'node:events';
import { presenceLapseMs } from './rules';
import type { DeviceRow, Transport } from './rules';

export const DEVICE_EVENTS = ['registered', 'online', 'offline', 'acknowledged', 'expired', 'rekeyed', 'revoked'] as const;
export type DeviceEventName = (typeof DEVICE_EVENTS)[number];

/** A device event, as the `device-events` node sends it (msg.payload). */
export interface DeviceEvent {
  event: DeviceEventName;
  deviceid: string;
  /** The device's name ('' when it has none or is unknown, as after `revoked`). */
  name: string;
  /** When it happened (ISO 8601). */
  ts: string;
  /** registered: a new device (not a known one booting again). */
  created?: boolean;
  /** acknowledged: every command up to this downlink SEQN; expired: the command's SEQN. */
  seqn?: number;
  /** rekeyed: the key version the device now uses. */
  keyver?: number;
  /** online: the transport it came over; offline: when it was last heard of (ISO 8601). */
  transport?: Transport;
  lastseen?: string;
}

/** An accepted reading, as the `device-events` node sends it (msg.payload). */
export interface ReadingEvent {
  deviceid: string;
  name: string;
  /** The reading's SEQN (null from a plain device that sends none). */
  seqn: number | null;
  /** The reading's sensor values: its `data` object, or the whole plaintext when it has none (readingValues). */
  data: unknown;
  /** When it was received (ISO 8601). */
  ts: string;
  transport: Transport;
}

/**
 * What a reading says, for users' flows and the sidebar: its `data` object, where the firmware and the simulator put
 * the sensor values (the rest, SEQN, ack and sleep, is protocol); the whole plaintext when it has none (the blog
 * firmware).
 */
export function readingValues(plaintext: unknown): unknown {
  const data = plaintext !== null && typeof plaintext === 'object' ? (plaintext as { data?: unknown }).data : undefined;
  return data !== null && typeof data === 'object' && !Array.isArray(data) ? data : plaintext;
}

/** The least a presence needs of a device row. */
export type PresenceRow = Pick<DeviceRow, 'deviceid' | 'name' | 'lastseen' | 'sleep' | 'data'>;

interface Tracked {
  name: string;
  /** Last contact (ms). */
  last: number;
  /** Offline once `last + lapseMs` has passed. */
  lapseMs: number;
}

export interface DeviceEventsOptions {
  /** The store's heartbeat: an always-on device is offline once this long has passed since its last contact. */
  heartbeatMs: number;
  /**
   * Every device the store holds, page by page, for the presence at the first subscription (so a restart reports no
   * one anew). Only the devices online are kept.
   */
  seed?: () => AsyncIterable<PresenceRow[]>;
  /** How often lapsed devices are looked for (default: a tenth of the heartbeat, 1 to 30 s). */
  sweepMs?: number;
  now?: () => number;
}

export type Unsubscribe = () => void;

export class DeviceEvents {
  private readonly emitter = new EventEmitter();
  /** The devices online now (only while anybody listens for events). */
  private readonly online = new Map<string, Tracked>();
  private listeners = { reading: 0, event: 0 };
  private sweeper: ReturnType<typeof setInterval> | undefined;
  private seeding: Promise<void> | undefined;
  private readonly now: () => number;

  constructor(private readonly options: DeviceEventsOptions) {
    this.now = options.now ?? Date.now;
    this.emitter.setMaxListeners(0);
  }

  /** Anybody listens (the registry then reports contact, and the devices online are tracked, with their names). */
  get tracking(): boolean {
    return this.listeners.event + this.listeners.reading > 0;
  }

  /** Anybody listens for readings. */
  get wantsReadings(): boolean {
    return this.listeners.reading > 0;
  }

  /** The name of a device online now, or undefined when it is not tracked (the caller then reads its row). */
  nameOf(deviceid: string): string | undefined {
    return this.online.get(deviceid)?.name;
  }

  onReading(listener: (reading: ReadingEvent) => void): Unsubscribe {
    return this.subscribe('reading', listener);
  }

  onEvent(listener: (event: DeviceEvent) => void): Unsubscribe {
    return this.subscribe('event', listener);
  }

  /** Tracking starts with the first listener of either kind and stops with the last. */
  private subscribe(kind: 'reading' | 'event', listener: ((reading: ReadingEvent) => void) | ((event: DeviceEvent) => void)): Unsubscribe {
    const wasTracking = this.tracking;
    this.emitter.on(kind, listener);
    this.listeners[kind]++;
    if (!wasTracking) this.startTracking();
    return once(() => {
      this.emitter.off(kind, listener);
      this.listeners[kind]--;
      if (!this.tracking) this.stopTracking();
    });
  }

  /** Resolves once the first subscription's presence is known (tests and orderly starts wait for it). */
  settled(): Promise<void> {
    return this.seeding ?? Promise.resolve();
  }

  /** Stops the sweep and drops every listener (the store is closing). */
  close(): void {
    this.emitter.removeAllListeners();
    this.listeners = { reading: 0, event: 0 };
    this.stopTracking();
  }

  reading(reading: ReadingEvent): void {
    if (this.listeners.reading > 0) this.emitter.emit('reading', reading);
  }

  /**
   * An authenticated contact from the device, whose row (or what it needs of one) is given: `online` when it was not
   * online before. Also what a rename or a new interval changes.
   */
  contact(device: PresenceRow, transport?: Transport, at = this.now()): void {
    if (!this.tracking) return;
    const was = this.online.get(device.deviceid);
    this.online.set(device.deviceid, { name: device.name, last: at, lapseMs: this.lapseMs(device) });
    if (!was) this.emit({ event: 'online', deviceid: device.deviceid, name: device.name, ts: iso(at), ...(transport ? { transport } : {}) });
  }

  /** Contact from a device already online: only its time moves. False when it is not tracked (call contact). */
  touch(deviceid: string, at = this.now()): boolean {
    const t = this.online.get(deviceid);
    if (!t) return false;
    t.last = at;
    return true;
  }

  /** A rename or a new interval of a device (no contact). */
  changed(device: PresenceRow): void {
    const t = this.online.get(device.deviceid);
    if (!t) return;
    t.name = device.name;
    t.lapseMs = this.lapseMs(device);
  }

  registered(device: PresenceRow, created: boolean, transport?: Transport): void {
    this.emit({ event: 'registered', deviceid: device.deviceid, name: device.name, ts: iso(this.now()), created });
    this.contact(device, transport);
  }

  acknowledged(deviceid: string, seqn: number): void {
    this.emit({ event: 'acknowledged', deviceid, name: this.nameOf(deviceid) ?? '', ts: iso(this.now()), seqn });
  }

  expired(deviceid: string, seqn: number): void {
    this.emit({ event: 'expired', deviceid, name: this.nameOf(deviceid) ?? '', ts: iso(this.now()), seqn });
  }

  rekeyed(deviceid: string, keyver: number): void {
    this.emit({ event: 'rekeyed', deviceid, name: this.nameOf(deviceid) ?? '', ts: iso(this.now()), keyver });
  }

  /** The device was removed: its keys are revoked, and it is no longer online. */
  revoked(deviceid: string, name: string): void {
    this.online.delete(deviceid);
    this.emit({ event: 'revoked', deviceid, name, ts: iso(this.now()) });
  }

  /** Reports every device whose presence lapsed (the sweep calls it; tests may). */
  sweep(at = this.now()): void {
    for (const [deviceid, t] of this.online) {
      if (at - t.last <= t.lapseMs) continue;
      this.online.delete(deviceid);
      this.emit({ event: 'offline', deviceid, name: t.name, ts: iso(at), lastseen: iso(t.last) });
    }
  }

  private emit(event: DeviceEvent): void {
    if (this.listeners.event > 0) this.emitter.emit('event', event);
  }

  private lapseMs(device: PresenceRow): number {
    return presenceLapseMs(device, this.options.heartbeatMs);
  }

  private startTracking(): void {
    const seed = this.options.seed;
    if (seed) {
      this.seeding = (async () => {
        for await (const rows of seed()) {
          const at = this.now();
          for (const row of rows) {
            const last = row.lastseen ? Date.parse(row.lastseen) : NaN;
            if (!Number.isFinite(last) || this.online.has(row.deviceid)) continue;
            const lapseMs = this.lapseMs(row);
            if (at - last <= lapseMs) this.online.set(row.deviceid, { name: row.name, last, lapseMs });
          }
        }
      })().catch(() => undefined); // A store that cannot be read now: devices are reported online at their next contact.
    }
    const every = this.options.sweepMs ?? Math.min(30_000, Math.max(1000, Math.floor(this.options.heartbeatMs / 10)));
    this.sweeper = setInterval(() => this.sweep(), every);
    this.sweeper.unref?.();
  }

  private stopTracking(): void {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
    this.online.clear();
  }
}

function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
