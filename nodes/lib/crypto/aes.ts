/**
 * Cryptographic primitives, all on node:crypto (native OpenSSL).
 *
 * Wire-compatible with crypto-js: AES-CBC with PKCS#7, and the OpenSSL
 * `Salted__` passphrase format (EVP_BytesToKey, MD5, one iteration,
 * AES-256-CBC). Authenticated mode adds HKDF-SHA256 key separation and
 * HMAC-SHA256 encrypt-then-MAC.
 */
import * as crypto from 'node:crypto';
import { E2eeError } from '../common';

export const BLOCK_SIZE = 16;
export const IV_SIZE = 16;
export const MAC_SIZE = 32;
export const SALT_SIZE = 8;
export const SALTED_MAGIC = Buffer.from('Salted__', 'latin1');

/** HKDF labels (the `info` parameter); the firmware uses the same strings. */
export const HKDF_SALT = Buffer.alloc(0);
export const HKDF_INFO_ENC = 'esp-e2ee v1 enc';
export const HKDF_INFO_MAC = 'esp-e2ee v1 mac';

function cipherName(key: Buffer): string {
  switch (key.length) {
    case 16: return 'aes-128-cbc';
    case 24: return 'aes-192-cbc';
    case 32: return 'aes-256-cbc';
    default: throw new E2eeError('bad-key');
  }
}

/** Appends a PKCS#7 pad: 1..16 bytes, a whole block when the input is block-aligned. */
export function pkcs7Pad(data: Buffer): Buffer {
  const n = BLOCK_SIZE - (data.length % BLOCK_SIZE);
  return Buffer.concat([data, Buffer.alloc(n, n)]);
}

/**
 * Strict PKCS#7 check. The pad length must be 1..16 and every pad byte must
 * equal it. The check looks at all 16 trailing bytes whatever the pad length,
 * so its running time does not depend on where it fails.
 */
export function pkcs7Unpad(data: Buffer): Buffer {
  if (data.length === 0 || data.length % BLOCK_SIZE !== 0) throw new E2eeError('decrypt-failed');
  const n = data[data.length - 1];
  let bad = (n === 0 ? 1 : 0) | (n > BLOCK_SIZE ? 1 : 0);
  for (let i = 1; i <= BLOCK_SIZE; i++) {
    const inPad = i <= n ? 1 : 0;
    bad |= inPad & (data[data.length - i] !== n ? 1 : 0);
  }
  if (bad) throw new E2eeError('decrypt-failed');
  return data.subarray(0, data.length - n);
}

export function aesCbcEncrypt(key: Buffer, iv: Buffer, plaintext: Buffer): Buffer {
  if (iv.length !== IV_SIZE) throw new E2eeError('bad-iv');
  const cipher = crypto.createCipheriv(cipherName(key), key, iv);
  return Buffer.concat([cipher.update(plaintext), cipher.final()]);
}

/** AES-CBC decrypt with a strict PKCS#7 check; any failure is `decrypt-failed`. */
export function aesCbcDecrypt(key: Buffer, iv: Buffer, ciphertext: Buffer): Buffer {
  if (iv.length !== IV_SIZE) throw new E2eeError('bad-iv');
  if (ciphertext.length === 0 || ciphertext.length % BLOCK_SIZE !== 0) throw new E2eeError('decrypt-failed');
  const decipher = crypto.createDecipheriv(cipherName(key), key, iv);
  decipher.setAutoPadding(false);
  const padded = Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  return pkcs7Unpad(padded);
}

// One-shot hashing (Node >= 20.12) is several times cheaper than a Hash object for short inputs.
const md5: (data: Buffer) => Buffer =
  typeof crypto.hash === 'function'
    ? (data) => crypto.hash('md5', data, 'buffer')
    : (data) => crypto.createHash('md5').update(data).digest();

/**
 * A reusable AES-CBC decryptor for one key. CBC decryption is block-wise
 * independent: P[i] = AES-ECB-decrypt(C[i]) XOR C[i-1] (C[-1] = IV). So one
 * native ECB context, with its key schedule, serves every message; a fresh
 * createDecipheriv per message costs more than the decryption itself. The
 * ECB context never sees padding (it is off, and final() is never called), so
 * update() returns every block at once and the context stays usable.
 */
export type CbcDecryptor = (iv: Buffer, ciphertext: Buffer) => Buffer;

export function createCbcDecryptor(key: Buffer): CbcDecryptor {
  const ecb = crypto.createDecipheriv(cipherName(key).replace('-cbc', '-ecb'), key, null);
  ecb.setAutoPadding(false);
  return (iv, ciphertext) => {
    if (iv.length !== IV_SIZE) throw new E2eeError('bad-iv');
    if (ciphertext.length === 0 || ciphertext.length % BLOCK_SIZE !== 0) throw new E2eeError('decrypt-failed');
    const out = ecb.update(ciphertext);
    if (out.length !== ciphertext.length) throw new E2eeError('decrypt-failed');
    for (let i = 0; i < BLOCK_SIZE; i++) out[i] ^= iv[i];
    for (let i = BLOCK_SIZE; i < out.length; i++) out[i] ^= ciphertext[i - BLOCK_SIZE];
    return pkcs7Unpad(out);
  };
}

/** OpenSSL EVP_BytesToKey with MD5 and one iteration, as crypto-js and `openssl enc -md md5` use. */
export function evpBytesToKey(password: Buffer, salt: Buffer, keyLen = 32, ivLen = IV_SIZE): { key: Buffer; iv: Buffer } {
  const out = Buffer.alloc(keyLen + ivLen);
  let prev = md5(Buffer.concat([password, salt]));
  let filled = prev.copy(out, 0);
  while (filled < out.length) {
    prev = md5(Buffer.concat([prev, password, salt]));
    filled += prev.copy(out, filled);
  }
  return { key: out.subarray(0, keyLen), iv: out.subarray(keyLen) };
}

export interface AuthKeys {
  encKey: Buffer;
  macKey: Buffer;
}

/** Splits a configured key into an encryption key (same length, same AES variant) and a 32-byte MAC key. */
export function deriveAuthKeys(masterKey: Buffer): AuthKeys {
  cipherName(masterKey);
  const encKey = Buffer.from(crypto.hkdfSync('sha256', masterKey, HKDF_SALT, HKDF_INFO_ENC, masterKey.length));
  const macKey = Buffer.from(crypto.hkdfSync('sha256', masterKey, HKDF_SALT, HKDF_INFO_MAC, MAC_SIZE));
  return { encKey, macKey };
}

/** The maximum device id length that fits the one-byte length prefix of the MAC input. */
export const MAX_DEVICEID_BYTES = 255;

/**
 * HMAC-SHA256 over the message type as one byte ‖ len(deviceid) as one byte ‖ deviceid (UTF-8) ‖ iv ‖ ciphertext.
 * The type byte carries the direction in its high bit (see MESSAGE_TYPES in wire.ts), so an uplink never verifies
 * as a downlink, nor a message of one type as another.
 */
export function computeMac(macKey: Buffer, type: number, deviceId: string, iv: Buffer, ciphertext: Buffer): Buffer {
  const id = Buffer.from(deviceId, 'utf8');
  if (id.length > MAX_DEVICEID_BYTES) throw new E2eeError('bad-deviceid', { max: MAX_DEVICEID_BYTES });
  return crypto.createHmac('sha256', macKey).update(Buffer.from([type, id.length])).update(id).update(iv).update(ciphertext).digest();
}

/** Constant-time MAC check. A MAC of the wrong length is simply a mismatch. */
export function verifyMac(expected: Buffer, received: Buffer | undefined): boolean {
  if (!received || received.length !== expected.length) {
    // Still spend the comparison so the failure path costs about the same.
    crypto.timingSafeEqual(expected, expected);
    return false;
  }
  return crypto.timingSafeEqual(expected, received);
}

/**
 * Compares a presented secret (an operator's bearer token) with the expected
 * one in constant time: both are hashed first, so neither their contents nor
 * their lengths leak through timing.
 */
export function secretsEqual(presented: string, expected: string): boolean {
  const a = crypto.createHash('sha256').update(presented, 'utf8').digest();
  const b = crypto.createHash('sha256').update(expected, 'utf8').digest();
  return crypto.timingSafeEqual(a, b) && expected.length > 0;
}

/** The token of an `Authorization: Bearer <token>` header, or undefined. */
export function bearerToken(header: unknown): string | undefined {
  if (typeof header !== 'string') return undefined;
  const m = /^Bearer[ ]+([^\s]+)\s*$/i.exec(header);
  return m ? m[1] : undefined;
}

/**
 * Random bytes from the CSPRNG, drawn 4 KiB at a time: one system call for 256 IVs instead of one each.
 * Every byte is handed out once (copied out, the pool is never reused) and the pool is refilled, not
 * recycled.
 */
const RANDOM_POOL_SIZE = 4096;
let randomPool = Buffer.alloc(0);
let randomOffset = 0;

function pooledRandom(size: number): Buffer {
  if (randomOffset + size > randomPool.length) {
    randomPool = crypto.randomBytes(RANDOM_POOL_SIZE);
    randomOffset = 0;
  }
  const out = Buffer.from(randomPool.subarray(randomOffset, randomOffset + size));
  randomPool.fill(0, randomOffset, randomOffset + size);
  randomOffset += size;
  return out;
}

export function randomIv(): Buffer {
  return pooledRandom(IV_SIZE);
}

export function randomSalt(): Buffer {
  return pooledRandom(SALT_SIZE);
}
