/**
 * Per-device keys (an aes-key with scope "per-device"): the configured secret is a master key that never leaves
 * the server, and each device holds only its own key,
 *
 *   K_device = HKDF-SHA256(ikm = master, salt = empty, info = "esp-e2ee v1 device" ‖ 0x00 ‖ UTF-8 device id ‖
 *              uint32 big-endian key version, length 16)
 *
 * on which the usual derivation of the encryption and MAC keys runs (see key.ts). A flash dump of one device then
 * yields that device's key only. Derived keys are cached, at most `max` of them (least recently used go first).
 */
import * as crypto from 'node:crypto';
import { MAX_DEVICEID_BYTES } from './aes';
import { E2eeError } from '../common';
import { AuthMode, KeyMaterial, byteKeyMaterial } from './key';

export const HKDF_INFO_DEVICE = 'esp-e2ee v1 device';
/** Device keys are AES-128 keys, whatever the size of the master. */
export const DEVICE_KEY_BYTES = 16;
/** The largest key version (it travels as 4 bytes). */
export const MAX_KEY_VERSION = 0xffffffff;
/** Derived keys kept in memory per aes-key. */
export const DEVICE_KEY_CACHE_MAX = 10_000;

function checkVersion(version: number): void {
  if (!Number.isInteger(version) || version < 0 || version > MAX_KEY_VERSION) throw new E2eeError('bad-key-version');
}

/** The HKDF info of a device key: label ‖ 0x00 ‖ device id ‖ uint32be(version). */
export function deviceKeyInfo(deviceId: string, version: number): Buffer {
  checkVersion(version);
  const id = Buffer.from(deviceId, 'utf8');
  if (id.length === 0) throw new E2eeError('no-deviceid');
  if (id.length > MAX_DEVICEID_BYTES) throw new E2eeError('bad-deviceid', { max: MAX_DEVICEID_BYTES });
  const v = Buffer.alloc(4);
  v.writeUInt32BE(version);
  return Buffer.concat([Buffer.from(HKDF_INFO_DEVICE, 'latin1'), Buffer.from([0]), id, v]);
}

/** A device's 16-byte key under a master key. */
export function deriveDeviceKey(master: Buffer, deviceId: string, version = 0): Buffer {
  return Buffer.from(crypto.hkdfSync('sha256', master, Buffer.alloc(0), deviceKeyInfo(deviceId, version), DEVICE_KEY_BYTES));
}

/** The key material of every device under one master key, derived on demand and cached. */
export class DeviceKeyring {
  private readonly cache = new Map<string, KeyMaterial>();

  constructor(private readonly master: Buffer, readonly auth: AuthMode, private readonly max = DEVICE_KEY_CACHE_MAX) {}

  /** A device's own key (for its secrets.h); the master itself never leaves the keyring. */
  deviceKey(deviceId: string, version = 0): Buffer {
    return deriveDeviceKey(this.master, deviceId, version);
  }

  /** The key material of `deviceId` at key `version`; throws no-deviceid for a message without a device id. */
  material(deviceId: string, version = 0): KeyMaterial {
    const cacheKey = `${version}\u0000${deviceId}`;
    let m = this.cache.get(cacheKey);
    if (m) {
      // Most recently used last (a Map iterates in insertion order).
      this.cache.delete(cacheKey);
    } else {
      m = byteKeyMaterial(deriveDeviceKey(this.master, deviceId, version), this.auth);
      if (this.cache.size >= this.max) this.cache.delete(this.cache.keys().next().value as string);
    }
    this.cache.set(cacheKey, m);
    return m;
  }

  get cached(): number {
    return this.cache.size;
  }
}

/**
 * A rekey command as the device-registry's rekey action makes it, `{"rekey": {"kv": n}, "SEQN": m}`, with the
 * device's key of version n added as 32 hex digits (`"key"`); any other payload unchanged. Only the crypto nodes
 * call this, right before sealing, so the new key never travels through a flow.
 */
export function withRekeyKey(payload: unknown, keyring: DeviceKeyring, deviceId: string): unknown {
  const rekey = (payload as { rekey?: { kv?: unknown; key?: unknown } } | null)?.rekey;
  if (!rekey || typeof rekey !== 'object' || rekey.key !== undefined || typeof rekey.kv !== 'number') return payload;
  return { ...(payload as object), rekey: { kv: rekey.kv, key: keyring.deviceKey(deviceId, rekey.kv).toString('hex') } };
}
