/**
 * The storage interface the nodes use. SQLite (sqlite.ts) is the embedded
 * default; a shared backend such as PostgreSQL implements the same interface
 * (its checkReplay then decides inside the database, with a row lock, since
 * several Node-RED instances share the state).
 */
import type { Transport, DeviceRow, HistoryBucket, ReadingRow, RegisterInput, Retention, UpdateInput } from '../registry';
import type { ReplayState, UplinkLedger } from '../uplink';

export const SORT_COLUMNS = ['deviceid', 'name', 'lastseen', 'ipaddr', 'ssid', 'cfgsn'] as const;
export type SortColumn = (typeof SORT_COLUMNS)[number];

export interface ListOptions {
  limit: number;
  offset: number;
  /** Case-insensitive substring of the device id, name, IP or SSID. */
  search?: string;
  sort?: SortColumn;
  descending?: boolean;
}

export interface ReadingsOptions {
  limit: number;
  /** ISO 8601 lower bound on the received time, inclusive. */
  since?: string;
}

export interface HistoryOptions {
  /** Names in the readings' `data` (validated: parseHistoryFields). */
  fields: string[];
  /** The window's start (ms since the epoch); it ends now. */
  since: number;
  /** The bucket width (ms). */
  bucketMs: number;
}

/** A device an operator provisioned that has not registered yet. */
export interface ProvisionedRow {
  deviceid: string;
  /** The key version its secrets.h holds. */
  keyver: number;
  created: string;
}

export interface CommandRow {
  seqn: number;
  /** The encrypted wire object, as queued. */
  command: unknown;
  created: string;
}

/** A command as the sidebar lists it. */
export interface CommandStatusRow {
  seqn: number;
  created: string;
  /** `pending` (offered until acknowledged), `acknowledged` (by the device), `delivered` (pushed: the device answered 200), `offered` (in a plain-mode poll answer: not acknowledged, the device may have dropped it), `expired`. */
  state: 'pending' | 'acknowledged' | 'delivered' | 'offered' | 'expired';
  /** When it reached that state (null while pending). */
  at: string | null;
}

export interface ExpiredCommand {
  deviceid: string;
  seqn: number;
  created: string;
}

/** How a known device's keys are held (the keyring's vault; wrapped values are opaque to the store). */
export interface KeyRecord {
  keyver: number;
  /** The version a rekey moves the device to. */
  pending?: number;
  /** The current version's key wrapped under the master, when a rekey made it (else it derives from the master). */
  keywrap?: string;
  /** The server's X25519 secret of the pending rekey wrapped under the master, once its command was sealed. */
  rekeysecret?: string;
}

export interface DeviceStore extends UplinkLedger {
  readonly backend: string;
  /** Resolves once the store is open and migrated; rejects when it cannot be opened. */
  ready(): Promise<void>;
  /** Waits for every queued write to commit, then releases the store. */
  close(): Promise<void>;
  /** Resolves when the storage answers a trivial query now (health checks); rejects as StorageUnavailableError when not. */
  ping(): Promise<void>;

  /** Inserts a new device (cfgsn 1) or refreshes ipaddr, ssid and lastseen of a known one. */
  /**
   * With `maxDevices`, a new device beyond that many is not stored: `{created: false, full: true}` (registration is
   * not authenticated, so the number of devices anyone can create is capped).
   */
  register(input: RegisterInput, now?: number, maxDevices?: number): Promise<{ created: boolean; device: DeviceRow; full?: false } | { created: false; full: true }>;
  /** The device's row with lastseen set to now (the config poll; lastseen commits with the next batch, unawaited), or undefined when unknown. */
  poll(deviceid: string, now?: number): Promise<DeviceRow | undefined>;
  /** The device's row without touching it. */
  get(deviceid: string): Promise<DeviceRow | undefined>;
  /** Applies name/data/flags; cfgsn goes up by one when data changes. Undefined when unknown. */
  update(deviceid: string, input: UpdateInput): Promise<DeviceRow | undefined>;
  list(options: ListOptions): Promise<{ devices: DeviceRow[]; total: number }>;
  /**
   * Removes the device, its readings, commands and provisioning record, and revokes its keys: every version it had or was moving to is
   * refused from then on (a device provisioned again needs a higher version). Its replay state is kept so old
   * messages stay rejected.
   */
  remove(deviceid: string): Promise<boolean>;

  /** Stores a reading and updates lastseen. False when the device is not registered. */
  logReading(deviceid: string, seqn: number | null, payload: unknown, now?: number): Promise<boolean>;
  readings(deviceid: string, options: ReadingsOptions): Promise<ReadingRow[]>;
  /**
   * The device's readings since `since`, downsampled in the database: per bucket of `bucketMs`, the count and each
   * field's mean, least and greatest numeric value, oldest first. Costs the window's readings, not the device's.
   */
  history(deviceid: string, options: HistoryOptions): Promise<HistoryBucket[]>;

  /** An operator made the device's secrets.h (the sidebar's Add device): it is listed until it registers. */
  noteProvisioned(deviceid: string, keyver: number, now?: number): Promise<void>;
  /** Provisioned devices that have not registered, newest first. */
  provisioned(limit: number): Promise<ProvisionedRow[]>;
  /** Drops a provisioned device from that list (it will not come); false when it was not there. */
  forgetProvisioned(deviceid: string): Promise<boolean>;
  /**
   * Removes the readings beyond the retention, in small batches that each commit on their own, so ingest goes
   * on between them. The count rule looks at the devices that logged readings since the last prune (all of them
   * on the first). Resolves with the number removed.
   */
  prune(retention: Retention, now?: number): Promise<number>;

  /** Allocates the device's next downlink SEQN (persisted, strictly increasing); resolves after commit. */
  nextCommandSeq(deviceid: string): Promise<number>;
  /** Stores an encrypted command for delivery. */
  queueCommand(deviceid: string, seqn: number, command: unknown, now?: number): Promise<void>;
  /** Undelivered commands, oldest first. */
  pendingCommands(deviceid: string, limit: number): Promise<CommandRow[]>;
  markDelivered(deviceid: string, seqns: number[], via: 'push' | 'poll', now?: number): Promise<void>;
  /**
   * The device acknowledged every command up to and including downlink SEQN `upTo`. Resolves true when that changed
   * a command (it was pending, offered or delivered), false when the acknowledgement was old news.
   */
  ackCommands(deviceid: string, upTo: number, now?: number): Promise<boolean>;
  /** Marks every command undelivered for longer than maxAgeMs as expired; resolves with them. */
  expireCommands(maxAgeMs: number, now?: number): Promise<ExpiredCommand[]>;
  /** The device's latest commands and what became of them, newest first. */
  commandLog(deviceid: string, limit: number): Promise<CommandStatusRow[]>;

  /** The lowest key version a new registration of this id may use: 0, or above the versions of a removed device. */
  keyFloor(deviceid: string): Promise<number>;
  /** Starts a rekey to the next version (or keeps the one pending); undefined for an unknown device. */
  beginRekey(deviceid: string): Promise<{ keyver: number; pending: number } | undefined>;
  /**
   * How a known device's keys are held (undefined for an unknown device): its version, the pending one, the current
   * key wrapped when a rekey made it, and the server's wrapped X25519 secret of the pending rekey. A value, not a
   * promise, whenever the store can answer from memory (the SQLite store, once open; the PostgreSQL store for a
   * device at rest whose current version is `version`, the one the message at hand is sealed under), so aes-decrypt
   * stays synchronous on the hot path.
   */
  keyRecord(deviceid: string, version?: number): KeyRecord | undefined | Promise<KeyRecord | undefined>;
  /**
   * Keeps the server's wrapped X25519 secret of the rekey pending at version kv, unless one is kept already (the
   * rekey command may be sealed again, and the device may hold the first): resolves with the one kept, or undefined
   * when no rekey is pending at kv.
   */
  offerRekey(deviceid: string, kv: number, rekeysecret: string): Promise<string | undefined>;
  /** The registered address and command port (the address as the device claims it). */
  commandTarget(deviceid: string): Promise<{ ipaddr: string; cmdport: number; transport: Transport; sleep: number } | undefined>;
  /**
   * Records the transport of an authenticated uplink of the device (http or mqtt): commands for a device last heard
   * over MQTT are published to its topic. Written only when it changed.
   */
  noteTransport(deviceid: string, transport: Transport): Promise<void>;
  /**
   * Records what a device's status topic says (connected: {"online": true} at connect; not: its Last Will).
   * Unauthenticated: it changes this flag of a known device and nothing else, and never creates one. False for an
   * unknown device.
   */
  noteStatus(deviceid: string, connected: boolean): Promise<boolean>;
  /**
   * Records the source address of an uplink of the device that came through aes-decrypt and its replay guard (with
   * hmac-sha256, authenticated): where commands are pushed, never an address the device only claims. Written only
   * when it changed.
   */
  noteSource(deviceid: string, address: string): Promise<void>;
  /** The source address of the device's latest such uplink, or null when it has sent none. */
  seenAddress(deviceid: string): Promise<string | null>;

  /** Operator action: forget a device's counter, or accept only numbers >= from. */
  resetReplay(deviceid: string, from?: number): Promise<void>;
  replayState(deviceid: string): Promise<ReplayState>;
}

/**
 * The storage cannot take the request now (disk full, read-only, locked by another process, connection lost).
 * The registry answers it with 503 and Retry-After; nothing of the failed write is kept.
 */
export class StorageUnavailableError extends Error {
  /** The backend's error code, e.g. SQLITE_FULL; never contains data. */
  readonly code: string;

  constructor(code: string) {
    super(`storage unavailable (${code})`);
    this.name = 'StorageUnavailableError';
    this.code = code;
  }
}

/** Seconds a client is told to wait after a 503. */
export const STORAGE_RETRY_AFTER_S = 5;
