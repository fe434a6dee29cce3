/**
 * Per-device keys (an aes-key with scope "per-device"): the configured secret is a master key that never leaves
 * the server, and each device holds only its own key,
 *
 *   K_device = HKDF-SHA256(ikm = master, salt = empty, info = "esp-e2ee v1 device" ‖ 0x00 ‖ UTF-8 device id ‖
 *              uint32 big-endian key version, length 16)
 *
 * on which the usual derivation of the encryption and MAC keys runs (see key.ts). A flash dump of one device then
 * yields that device's key only.
 */
import * as crypto from 'node:crypto';
import { E2eeError } from '../common';
import { AuthMode, KeyMaterial, byteKeyMaterial } from './key';
import { HKDF_INFO_ENC, HKDF_INFO_MAC, MAC_SIZE, createCbcDecryptor } from './aes';
import { DEVICE_KEY_BYTES, deviceKeyInfo } from './key-info';
import { rekeyKey, unwrapKey, wrapKey, x25519, x25519Pair, x25519Public } from './rekey';

export { HKDF_INFO_DEVICE, DEVICE_KEY_BYTES, MAX_KEY_VERSION, deviceKeyInfo } from './key-info';

/** A device's 16-byte key under a master key (node:crypto's HKDF; the keyring computes the same with HMAC steps). */
export function deriveDeviceKey(master: Buffer, deviceId: string, version = 0): Buffer {
  return Buffer.from(crypto.hkdfSync('sha256', master, Buffer.alloc(0), deviceKeyInfo(deviceId, version), DEVICE_KEY_BYTES));
}

/** HKDF-SHA256's extract step (RFC 5869): the pseudorandom key of ikm under salt (empty: 32 zero bytes). */
function hkdfExtract(ikm: Buffer, salt: Buffer): Buffer {
  return crypto.createHmac('sha256', salt.length > 0 ? salt : ZERO_SALT).update(ikm).digest();
}

/** HKDF-SHA256's expand step for at most 32 bytes: one HMAC. */
function hkdfExpand32(prk: Buffer, info: Buffer | string, length: number): Buffer {
  return crypto.createHmac('sha256', prk).update(info).update(ONE).digest().subarray(0, length);
}

const ZERO_SALT = Buffer.alloc(32);
const ONE = Buffer.from([1]);

/**
 * How a known device's keys are held, as its device store keeps them (the store is the vault; see store/types.ts,
 * KeyRecord): without a vault every version derives from the master; with one, a version a rekey made comes from
 * its wrapped key, and the pending version only from the rekey's key exchange.
 */
export interface KeyVaultRecord {
  keyver: number;
  pending?: number;
  keywrap?: string;
  rekeysecret?: string;
}

export interface KeyVault {
  /** `version`: the one the message at hand is sealed under (a store may answer from memory for it; see DeviceStore). */
  keyRecord(deviceid: string, version?: number): KeyVaultRecord | undefined | Promise<KeyVaultRecord | undefined>;
  offerRekey(deviceid: string, kv: number, rekeysecret: string): Promise<string | undefined>;
}

/** The key a message opens with, and when it came from a rekey's key exchange, that key wrapped (for the store). */
export interface OpenedKey {
  material: KeyMaterial;
  /** Set only for the pending version opened with the device's `epk`: the new key, wrapped under the master. */
  keywrap?: string;
}

/**
 * The key material of every device under one master key.
 *
 * Nothing is cached per device id: every lookup derives the key again, with HKDF written as its HMAC steps over a
 * pseudorandom key extracted once from the master (four HMACs and an AES key schedule, about 15 µs). A cache made
 * the first message to an id not seen recently measurably slower (about 0.19 ms over HTTP), which told an attacker
 * which ids had been active; now a known and an unknown id cost the same work.
 */
export class DeviceKeyring {
  private readonly prk: Buffer;

  constructor(
    private readonly master: Buffer,
    readonly auth: AuthMode,
    /** Where rekeyed keys are kept (the device store); without one, every version derives from the master. */
    private readonly vault?: KeyVault | (() => KeyVault),
  ) {
    this.prk = hkdfExtract(master, Buffer.alloc(0));
  }

  /** Whether a rekey can be made: its keys need a vault. */
  get canRekey(): boolean {
    return this.vault !== undefined;
  }

  private vaultNow(): KeyVault {
    return typeof this.vault === 'function' ? this.vault() : (this.vault as KeyVault);
  }

  /** A device's own key (for its secrets.h); the master itself never leaves the keyring. */
  deviceKey(deviceId: string, version = 0): Buffer {
    return hkdfExpand32(this.prk, deviceKeyInfo(deviceId, version), DEVICE_KEY_BYTES);
  }

  /** The key material of raw key bytes, derived as crypto/key.ts does, with the same HMAC steps. */
  private materialOf(raw: Buffer): KeyMaterial {
    if (this.auth !== 'hmac-sha256') return byteKeyMaterial(raw, this.auth);
    const prk = hkdfExtract(raw, Buffer.alloc(0));
    const encKey = Buffer.from(hkdfExpand32(prk, HKDF_INFO_ENC, raw.length));
    const macKey = hkdfExpand32(prk, HKDF_INFO_MAC, MAC_SIZE);
    return { kind: 'bytes', auth: this.auth, encKey, macKey, decrypt: createCbcDecryptor(encKey) };
  }

  /** The key material of `deviceId` at key `version` under the master; throws no-deviceid without a device id. */
  material(deviceId: string, version = 0): KeyMaterial {
    return this.materialOf(this.deviceKey(deviceId, version));
  }

  /**
   * The key a message of `deviceId` under `version` opens with (with `epk`, the device's X25519 public key, when the
   * message carries one). Without a vault, or for a device the vault does not know, the master's. For a known
   * device: its current version's key (wrapped, if a rekey made it); the pending version only through the key
   * exchange with `epk`, never from the master; another version the master's (the replay guard refuses it).
   * Throws decrypt-failed when no key can be made, as for any message that does not open.
   */
  open(deviceId: string, version: number, epk?: Buffer): OpenedKey | Promise<OpenedKey> {
    if (!this.vault) return { material: this.material(deviceId, version) };
    const record = this.vaultNow().keyRecord(deviceId, version);
    return record instanceof Promise ? record.then((r) => this.openWith(r, deviceId, version, epk)) : this.openWith(record, deviceId, version, epk);
  }

  private openWith(record: KeyVaultRecord | undefined, deviceId: string, version: number, epk?: Buffer): OpenedKey {
    if (record && version === record.keyver) return { material: this.materialOf(this.currentKey(record, deviceId)) };
    if (record && version === record.pending) {
      if (!epk || !record.rekeysecret) throw new E2eeError('decrypt-failed');
      const secret = unwrapKey(this.master, deviceId, version, 'secret', record.rekeysecret);
      const key = rekeyKey(x25519(secret, epk), this.currentKey(record, deviceId), deviceId, version, x25519Public(secret), epk);
      return { material: this.materialOf(key), keywrap: wrapKey(this.master, deviceId, version, 'key', key) };
    }
    return { material: this.material(deviceId, version) };
  }

  /** The raw key of the device's current version. */
  private currentKey(record: KeyVaultRecord, deviceId: string): Buffer {
    return record.keywrap !== undefined ? unwrapKey(this.master, deviceId, record.keyver, 'key', record.keywrap) : this.deviceKey(deviceId, record.keyver);
  }

  /**
   * The server's X25519 public key for the rekey of `deviceId` pending at `version`: a fresh key pair whose secret
   * the vault keeps wrapped, or the one it kept already (a rekey command sealed again must carry the same key).
   * Throws no-rekey when no rekey is pending at that version.
   */
  async rekeyOffer(deviceId: string, version: number): Promise<Buffer> {
    if (!this.vault) throw new E2eeError('no-rekey');
    const pair = x25519Pair();
    const kept = await this.vaultNow().offerRekey(deviceId, version, wrapKey(this.master, deviceId, version, 'secret', pair.secret));
    if (kept === undefined) throw new E2eeError('no-rekey');
    return x25519Public(unwrapKey(this.master, deviceId, version, 'secret', kept));
  }
}

/**
 * A rekey command as the device-registry's rekey action makes it, `{"rekey": {"kv": n}, "SEQN": m}`, with the
 * server's X25519 public key of that rekey added as 64 hex digits (`"pub"`); any other payload unchanged. Only the
 * crypto nodes call this, right before sealing.
 */
export async function withRekeyOffer(payload: unknown, keyring: DeviceKeyring, deviceId: string): Promise<unknown> {
  const rekey = (payload as { rekey?: { kv?: unknown; pub?: unknown } } | null)?.rekey;
  if (!rekey || typeof rekey !== 'object' || rekey.pub !== undefined || typeof rekey.kv !== 'number') return payload;
  const pub = await keyring.rekeyOffer(deviceId, rekey.kv);
  return { ...(payload as object), rekey: { kv: rekey.kv, pub: pub.toString('hex') } };
}

/** Whether a payload is a rekey command still to be given its public key (withRekeyOffer). */
export function isRekeyCommand(payload: unknown): boolean {
  const rekey = (payload as { rekey?: { kv?: unknown; pub?: unknown } } | null)?.rekey;
  return !!rekey && typeof rekey === 'object' && rekey.pub === undefined && typeof rekey.kv === 'number';
}
