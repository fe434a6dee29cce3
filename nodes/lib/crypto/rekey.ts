/**
 * The rekey's Diffie–Hellman step and the wrapping of the keys it makes.
 *
 * A rekey moves a device from key version v to v+1. The server's rekey command carries an ephemeral X25519 public
 * key `S`; the device answers with its own, `D`, in the `epk` field of its first uplinks under v+1. Both compute
 *
 *   K(v+1) = HKDF-SHA256(ikm = X25519(s, D) = X25519(d, S), salt = K(v),
 *                        info = "esp-e2ee v1 rekey" ‖ 0x00 ‖ UTF-8 device id ‖ uint32be(v+1) ‖ S ‖ D, length 16)
 *
 * as the Signal ratchet's root step does (the old root key as the salt, the DH output as the key material): someone
 * who holds K(v) and records the whole rekey lacks both private scalars, so cannot compute the shared secret; and
 * someone who only breaks the DH lacks K(v). The public keys in `info` bind the key to this very exchange.
 *
 * Keys that are not a pure function of the master key are kept at rest wrapped with AES-256 key wrap (RFC 3394,
 * deterministic, with its own integrity check) under a key-encryption key derived from the master for each device,
 * version and purpose, so a wrapped value is worthless without the master and cannot be moved to another row.
 */
import * as crypto from 'node:crypto';
import { E2eeError } from '../common';
import { deviceKeyInfo } from './key-info';

export const HKDF_INFO_REKEY = 'esp-e2ee v1 rekey';
export const HKDF_INFO_WRAP = 'esp-e2ee v1 wrap';
export const X25519_BYTES = 32;

// DER prefixes of a raw X25519 key (RFC 8410): PKCS#8 private, SubjectPublicKeyInfo public.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');
/** RFC 3394's default initial value. */
const KW_IV = Buffer.from('a6a6a6a6a6a6a6a6', 'hex');

/** What a wrapped value is: the device's key of a version, or the server's X25519 secret of a pending rekey. */
export type WrapPurpose = 'key' | 'secret';

export interface X25519Pair {
  secret: Buffer;
  public: Buffer;
}

function privateKey(secret: Buffer): crypto.KeyObject {
  if (secret.length !== X25519_BYTES) throw new E2eeError('bad-key');
  return crypto.createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, secret]), format: 'der', type: 'pkcs8' });
}

function publicKey(raw: Buffer): crypto.KeyObject {
  if (raw.length !== X25519_BYTES) throw new E2eeError('bad-payload');
  return crypto.createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

/** A fresh X25519 key pair (32 raw bytes each). */
export function x25519Pair(): X25519Pair {
  const { privateKey: sk, publicKey: pk } = crypto.generateKeyPairSync('x25519');
  return { secret: sk.export({ format: 'der', type: 'pkcs8' }).subarray(PKCS8_PREFIX.length), public: pk.export({ format: 'der', type: 'spki' }).subarray(SPKI_PREFIX.length) };
}

/** The public key of a raw X25519 secret. */
export function x25519Public(secret: Buffer): Buffer {
  return crypto.createPublicKey(privateKey(secret)).export({ format: 'der', type: 'spki' }).subarray(SPKI_PREFIX.length);
}

/** X25519(secret, peer); throws for a peer key that gives the all-zero secret (a small-order point). */
export function x25519(secret: Buffer, peer: Buffer): Buffer {
  try {
    return crypto.diffieHellman({ privateKey: privateKey(secret), publicKey: publicKey(peer) });
  } catch {
    // OpenSSL refuses an all-zero shared secret (RFC 7748 §6.1): the message cannot be opened, said as every
    // other failure to open one is.
    throw new E2eeError('decrypt-failed');
  }
}

/** K(v+1) from the shared secret, the old key and the two public keys (see the top of this file). */
export function rekeyKey(shared: Buffer, oldKey: Buffer, deviceId: string, version: number, serverPublic: Buffer, devicePublic: Buffer): Buffer {
  const info = Buffer.concat([deviceKeyInfo(deviceId, version, HKDF_INFO_REKEY), serverPublic, devicePublic]);
  return Buffer.from(crypto.hkdfSync('sha256', shared, oldKey, info, 16));
}

/** The key-encryption key of one device, version and purpose under the master. */
function wrappingKey(master: Buffer, deviceId: string, version: number, purpose: WrapPurpose): Buffer {
  const info = Buffer.concat([deviceKeyInfo(deviceId, version, HKDF_INFO_WRAP), Buffer.from(purpose, 'latin1')]);
  return Buffer.from(crypto.hkdfSync('sha256', master, Buffer.alloc(0), info, 32));
}

/** AES-256 key wrap of a 16- or 32-byte value, as base64 (what the store keeps). */
export function wrapKey(master: Buffer, deviceId: string, version: number, purpose: WrapPurpose, value: Buffer): string {
  const c = crypto.createCipheriv('id-aes256-wrap', wrappingKey(master, deviceId, version, purpose), KW_IV);
  return Buffer.concat([c.update(value), c.final()]).toString('base64');
}

/**
 * Unwraps what wrapKey made for the same device, version and purpose. Anything else (another master, a row copied
 * from another device) throws `decrypt-failed`: the message under that key cannot be opened.
 */
export function unwrapKey(master: Buffer, deviceId: string, version: number, purpose: WrapPurpose, wrapped: string): Buffer {
  try {
    const d = crypto.createDecipheriv('id-aes256-wrap', wrappingKey(master, deviceId, version, purpose), KW_IV);
    return Buffer.concat([d.update(Buffer.from(wrapped, 'base64')), d.final()]);
  } catch {
    throw new E2eeError('decrypt-failed');
  }
}
