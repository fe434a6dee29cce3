/**
 * The replay guard's decision for one uplink: the key version it was sealed under must be one the device may use
 * (checked first, so a retired or revoked key cannot even advance the counter), then its SEQN must pass the replay
 * window; the first accepted message under a rekey's pending version makes that version the device's.
 */
import type { DeviceStore, KeyCheck, ReplayPersist, UplinkVerdict } from './store/types';

export type { UplinkVerdict };

export async function admitUplink(
  store: DeviceStore,
  deviceid: string,
  seq: number,
  window: number,
  persist: ReplayPersist,
  keyver?: number,
): Promise<UplinkVerdict> {
  // A shared backend decides all of it in one transaction (PostgresStore).
  if (store.admit) return store.admit(deviceid, seq, window, persist, keyver);
  let check: KeyCheck = 'current';
  if (keyver !== undefined) {
    check = await store.checkKey(deviceid, keyver);
    if (check === 'refused') return { accepted: false, reason: 'key-version' };
  }
  const result = await store.checkReplay(deviceid, seq, window, persist);
  if (result.accepted && check === 'pending') await store.promoteKey(deviceid, keyver as number);
  return result;
}
