/**
 * The wire format: which payload shapes carry a ciphertext, and how a key
 * turns them into plaintext and back.
 *
 *  - key/IV form:  {"iv": b64(16 bytes), "data": b64(ciphertext)[, "mac": b64(32 bytes)][, "kv": key version]
 *                  [, "epk": b64(32 bytes), the device's X25519 public key of a rekey]}
 *                  or a base64 ciphertext string with the IV in msg.iv
 *  - passphrase:   b64("Salted__" ‖ salt[8] ‖ ciphertext), AES-256-CBC,
 *                  key and IV from EVP_BytesToKey(MD5, 1 iteration)
 */
import {
  IV_SIZE,
  SALTED_MAGIC,
  SALT_SIZE,
  aesCbcDecrypt,
  aesCbcEncrypt,
  computeMac,
  evpBytesToKey,
  randomIv,
  randomSalt,
  verifyMac,
} from '../crypto';
import { X25519_BYTES, decodeBase64 } from '../crypto';
import { E2eeError } from '../common';
import type { KeyMaterial } from '../crypto';

export const DEFAULT_MAX_BYTES = 64 * 1024;

/**
 * What a message is, authenticated as the first byte of the MAC input: uplinks (device to server) have the high bit
 * clear, downlinks have it set. The receiver computes the MAC with the type it expects, so nothing on the wire says
 * it and nothing can be swapped.
 */
export const MESSAGE_TYPES = { reading: 0x01, register: 0x02, poll: 0x03, command: 0x81, config: 0x82 } as const;
export type MessageType = keyof typeof MESSAGE_TYPES;
export const MESSAGE_TYPE_NAMES = Object.keys(MESSAGE_TYPES) as MessageType[];

/** The largest key version (it travels as a JSON number and in HKDF info as 4 bytes). */
const MAX_KV = 0xffffffff;

export interface KeyIvEnvelope {
  readonly form: 'keyiv';
  readonly iv: Buffer;
  readonly ciphertext: Buffer;
  readonly mac?: Buffer;
  /** The version of the per-device key it was sealed with (absent: 0). */
  readonly kv?: number;
  /** The device's X25519 public key, sent with its first messages under the version a rekey made. */
  readonly epk?: Buffer;
}

export interface SaltedEnvelope {
  readonly form: 'salted';
  readonly salt: Buffer;
  readonly ciphertext: Buffer;
}

export type Envelope = KeyIvEnvelope | SaltedEnvelope;

/** The object the key/IV form travels as. */
export interface WireObject {
  iv: string;
  data: string;
  mac?: string;
  kv?: number;
  epk?: string;
}

export interface ParseOptions {
  /** msg.iv: the IV for a bare base64 ciphertext string. */
  iv?: unknown;
  /** msg.mac: the MAC for a bare base64 ciphertext string. */
  mac?: unknown;
  /** Largest accepted encoded size in characters. */
  maxBytes?: number;
}

function decodeIv(value: unknown): Buffer {
  let iv: Buffer;
  if (Buffer.isBuffer(value)) iv = value;
  else if (typeof value === 'string') {
    try {
      iv = decodeBase64(value);
    } catch {
      throw new E2eeError('bad-iv');
    }
  } else throw new E2eeError('bad-iv');
  if (iv.length !== IV_SIZE) throw new E2eeError('bad-iv');
  return iv;
}

function decodeMac(value: unknown): Buffer | undefined {
  if (value === undefined || value === null) return undefined;
  if (Buffer.isBuffer(value)) return value;
  if (typeof value !== 'string') throw new E2eeError('bad-payload');
  return decodeBase64(value);
}

function encodedSize(payload: string | Record<string, unknown>): number {
  if (typeof payload === 'string') return payload.length;
  let size = 0;
  for (const field of ['iv', 'data', 'mac']) {
    const value = payload[field];
    if (typeof value === 'string') size += value.length;
    else if (Buffer.isBuffer(value)) size += value.length;
  }
  return size;
}

function parseObject(obj: Record<string, unknown>): KeyIvEnvelope {
  if (typeof obj.data !== 'string' || obj.iv === undefined) throw new E2eeError('bad-payload');
  const iv = decodeIv(obj.iv);
  const ciphertext = decodeBase64(obj.data);
  let kv: number | undefined;
  if (obj.kv !== undefined) {
    if (typeof obj.kv !== 'number' || !Number.isInteger(obj.kv) || obj.kv < 0 || obj.kv > MAX_KV) throw new E2eeError('bad-payload');
    kv = obj.kv;
  }
  let epk: Buffer | undefined;
  if (obj.epk !== undefined) {
    // Not MACed: it is an input of the key the MAC is checked with, so another value gives another key.
    if (typeof obj.epk !== 'string') throw new E2eeError('bad-payload');
    epk = decodeBase64(obj.epk);
    if (epk.length !== X25519_BYTES) throw new E2eeError('bad-payload');
  }
  return { form: 'keyiv', iv, ciphertext, mac: decodeMac(obj.mac), kv, ...(epk ? { epk } : {}) };
}

/**
 * Recognises the payload shape. Throws `bad-payload`, `bad-base64`, `bad-iv`
 * or `too-large`; none of these depend on the key.
 */
export function parseEnvelope(payload: unknown, options: ParseOptions = {}): Envelope {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  // A raw request body (an http in node that skips body parsing) is read as text.
  if (Buffer.isBuffer(payload)) {
    if (payload.length > maxBytes) throw new E2eeError('too-large', { max: maxBytes });
    payload = payload.toString('utf8');
  }
  if (typeof payload === 'string') {
    if (payload.length > maxBytes) throw new E2eeError('too-large', { max: maxBytes });
    const text = payload.trim();
    // A JSON text of the object form, as an http in node gives for text/plain bodies.
    if (text.startsWith('{')) {
      let obj: unknown;
      try {
        obj = JSON.parse(text);
      } catch {
        throw new E2eeError('bad-payload');
      }
      if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw new E2eeError('bad-payload');
      return parseObject(obj as Record<string, unknown>);
    }
    const bytes = decodeBase64(text);
    if (bytes.length >= SALTED_MAGIC.length + SALT_SIZE && bytes.subarray(0, SALTED_MAGIC.length).equals(SALTED_MAGIC)) {
      return {
        form: 'salted',
        salt: bytes.subarray(SALTED_MAGIC.length, SALTED_MAGIC.length + SALT_SIZE),
        ciphertext: bytes.subarray(SALTED_MAGIC.length + SALT_SIZE),
      };
    }
    if (options.iv === undefined || options.iv === null) throw new E2eeError('bad-iv');
    return { form: 'keyiv', iv: decodeIv(options.iv), ciphertext: bytes, mac: decodeMac(options.mac) };
  }
  if (payload !== null && typeof payload === 'object' && !Array.isArray(payload)) {
    const obj = payload as Record<string, unknown>;
    if (encodedSize(obj) > maxBytes) throw new E2eeError('too-large', { max: maxBytes });
    return parseObject(obj);
  }
  throw new E2eeError('bad-payload');
}

/**
 * Decrypts an envelope. Every failure from here on (MAC, padding, a wrong
 * key) is the single error `decrypt-failed`, except a form that does not fit
 * the key type, which depends only on configuration.
 */
export function decryptEnvelope(key: KeyMaterial, envelope: Envelope, deviceId = '', type: MessageType = 'reading'): Buffer {
  if (key.kind === 'passphrase') {
    if (envelope.form !== 'salted') throw new E2eeError('form-mismatch');
    const { key: aesKey, iv } = evpBytesToKey(key.passphrase, envelope.salt);
    return guard(() => aesCbcDecrypt(aesKey, iv, envelope.ciphertext));
  }
  if (envelope.form !== 'keyiv') throw new E2eeError('form-mismatch');
  if (key.macKey) {
    // Encrypt-then-MAC: the MAC is checked, in constant time, before the padding is looked at.
    const expected = computeMac(key.macKey, MESSAGE_TYPES[type], deviceId, envelope.iv, envelope.ciphertext);
    if (!verifyMac(expected, envelope.mac)) throw new E2eeError('decrypt-failed');
  }
  return guard(() => key.decrypt(envelope.iv, envelope.ciphertext));
}

function guard(fn: () => Buffer): Buffer {
  try {
    return fn();
  } catch {
    throw new E2eeError('decrypt-failed');
  }
}

export interface SealOptions {
  /** What the message is (bound into the MAC); default `reading`. */
  type?: MessageType;
  /** A fixed IV (tests and interop only). */
  fixedIv?: Buffer;
  /** The per-device key version, written as `kv`. */
  kv?: number;
  /** The device's X25519 public key of a rekey, written as `epk` (devices, until the server has it). */
  epk?: Buffer;
}

/** Encrypts bytes for the wire: a WireObject for byte keys, the OpenSSL salted string for passphrases. */
export function encryptToWire(key: KeyMaterial, plaintext: Buffer, deviceId = '', options: SealOptions = {}): WireObject | string {
  if (key.kind === 'passphrase') {
    const salt = randomSalt();
    const { key: aesKey, iv } = evpBytesToKey(key.passphrase, salt);
    const ciphertext = aesCbcEncrypt(aesKey, iv, plaintext);
    return Buffer.concat([SALTED_MAGIC, salt, ciphertext]).toString('base64');
  }
  const iv = options.fixedIv ?? randomIv();
  const ciphertext = aesCbcEncrypt(key.encKey, iv, plaintext);
  const wire: WireObject = { iv: iv.toString('base64'), data: ciphertext.toString('base64') };
  if (key.macKey) wire.mac = computeMac(key.macKey, MESSAGE_TYPES[options.type ?? 'reading'], deviceId, iv, ciphertext).toString('base64');
  if (options.kv !== undefined) wire.kv = options.kv;
  if (options.epk !== undefined) wire.epk = options.epk.toString('base64');
  return wire;
}

/**
 * The length of the JSON text of a sealed key/IV object for a plaintext of `plainLength` bytes (with a MAC, and
 * `kv` when given): what a device must be able to receive.
 */
export function sealedLength(plainLength: number, kv?: number): number {
  // {"iv":"<24>","data":"<data>","mac":"<44>"[,"kv":<kv>]}
  return 28 + 24 + sealedDataLength(plainLength) + 44 + (kv === undefined ? 0 : 6 + String(kv).length);
}

/** The length of the base64 `data` of a plaintext of `plainLength` bytes (PKCS#7 always adds 1..16 bytes). */
export function sealedDataLength(plainLength: number): number {
  return Math.ceil(((Math.floor(plainLength / 16) + 1) * 16) / 3) * 4;
}

/** Parses a fixed IV setting: 32 hex digits. */
export function parseFixedIv(text: string): Buffer {
  if (!/^[0-9a-fA-F]{32}$/.test(text)) throw new E2eeError('bad-fixed-iv');
  return Buffer.from(text, 'hex');
}
