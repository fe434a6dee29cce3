/**
 * The replay guard's decision for one uplink: the key version it was sealed under must be one the device may use
 * (checked first, so a retired or revoked key cannot even advance the counter), then its SEQN must pass the replay
 * window; the first accepted message under a rekey's pending version makes that version the device's.
 *
 * The decision needs the device's state, which the store keeps; this layer sits below the store, so it names what
 * it needs of one (UplinkLedger) and every DeviceStore provides it.
 */
import type { ReplayState } from './replay-window';

/** An accepted message's new state; `promoted`: the key version it made the device's when it completed a rekey. */
export type ReplayResult = { accepted: true; state: ReplayState; promoted?: number } | { accepted: false; reason: 'replay' | 'stale' };
/** The decision on an uplink: its replay result, or refused for the key version it was sealed under. */
export type UplinkVerdict = ReplayResult | { accepted: false; reason: 'key-version' };

/**
 * Whether a message under a per-device key version may be accepted: `current` (the device's version, or for an
 * unknown device any version at or above its revoked ones), `pending` (the version a rekey moves it to), `refused`.
 */
export type KeyCheck = 'current' | 'pending' | 'refused';

/**
 * When an accepted sequence number's new state is written:
 * - `before-send`: checkReplay resolves after the state has committed (safe in any flow);
 * - `with-next-write`: checkReplay resolves at once; the state commits in the same transaction as the
 *   device's next logReading (or, if none comes, with a following batch). Safe when the message is
 *   written to this store before anything acts on it: then a committed reading implies its state.
 */
export type ReplayPersist = 'before-send' | 'with-next-write';

/** What admitting an uplink needs of the store: the per-device key versions and the replay state. */
export interface UplinkLedger {
  /** Whether a message under key version kv may be accepted for the device. */
  checkKey(deviceid: string, kv: number): Promise<KeyCheck>;
  /**
   * The first accepted message under the pending version: it becomes the device's version, the old is refused, and
   * `keywrap` (the new key wrapped under the master, as the rekey's key exchange made it) becomes its key.
   */
  promoteKey(deviceid: string, kv: number, keywrap?: string): Promise<void>;
  /**
   * Atomic check-and-advance of a device's sequence number. With persist
   * `before-send` (the default) an accepted number resolves only after the
   * new state has committed; see ReplayPersist for `with-next-write`.
   */
  checkReplay(deviceid: string, seq: number, window: number, persist?: ReplayPersist): Promise<ReplayResult>;
  /**
   * Optional: the whole uplink decision (key version, replay window, promotion of a pending version) in one step,
   * for a backend where the three separate calls would each cost a round trip. admitUplink uses it when present;
   * it must decide exactly as checkKey, checkReplay and promoteKey in that order would.
   */
  admit?(deviceid: string, seq: number, window: number, persist: ReplayPersist, keyver?: number, keywrap?: string): Promise<UplinkVerdict>;
}

export async function admitUplink(
  store: UplinkLedger,
  deviceid: string,
  seq: number,
  window: number,
  persist: ReplayPersist,
  keyver?: number,
  keywrap?: string,
): Promise<UplinkVerdict> {
  // A shared backend decides all of it in one transaction (PostgresStore).
  if (store.admit) return store.admit(deviceid, seq, window, persist, keyver, keywrap);
  let check: KeyCheck = 'current';
  if (keyver !== undefined) {
    check = await store.checkKey(deviceid, keyver);
    if (check === 'refused') return { accepted: false, reason: 'key-version' };
  }
  const result = await store.checkReplay(deviceid, seq, window, persist);
  if (result.accepted && check === 'pending') {
    await store.promoteKey(deviceid, keyver as number, keywrap);
    return { ...result, promoted: keyver as number };
  }
  return result;
}
