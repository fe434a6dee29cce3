/**
 * Turns an aes-key configuration (format, secret, auth mode) into key material.
 */
import { CbcDecryptor, createCbcDecryptor, deriveAuthKeys } from './aes';
import { decodeBase64 } from './base64';
import { E2eeError } from '../common';

export const KEY_FORMATS = ['hex', 'base64', 'passphrase'] as const;
export const AUTH_MODES = ['none', 'hmac-sha256'] as const;
export type KeyFormat = (typeof KEY_FORMATS)[number];
export type AuthMode = (typeof AUTH_MODES)[number];

export interface ByteKey {
  readonly kind: 'bytes';
  readonly auth: AuthMode;
  /** The key AES uses: the configured key (auth none) or its HKDF-derived encryption key. */
  readonly encKey: Buffer;
  /** Present only in hmac-sha256 mode. */
  readonly macKey?: Buffer;
  /** Decrypts with encKey; built once per key. */
  readonly decrypt: CbcDecryptor;
}

export interface PassphraseKey {
  readonly kind: 'passphrase';
  readonly auth: 'none';
  readonly passphrase: Buffer;
}

export type KeyMaterial = ByteKey | PassphraseKey;

const HEX_RE = /^(?:[0-9a-fA-F]{2})+$/;

/** Parses the raw key bytes of a hex or base64 key; throws `bad-key` on a wrong size or encoding. */
export function parseKeyBytes(format: 'hex' | 'base64', secret: string): Buffer {
  const text = secret.trim();
  let bytes: Buffer;
  if (format === 'hex') {
    if (!HEX_RE.test(text)) throw new E2eeError('bad-key');
    bytes = Buffer.from(text, 'hex');
  } else {
    try {
      bytes = decodeBase64(text);
    } catch {
      throw new E2eeError('bad-key');
    }
  }
  if (bytes.length !== 16 && bytes.length !== 24 && bytes.length !== 32) throw new E2eeError('bad-key');
  return bytes;
}

/** The key material of raw key bytes in an auth mode: in hmac-sha256 mode the encryption and MAC keys are derived. */
export function byteKeyMaterial(raw: Buffer, auth: AuthMode): ByteKey {
  if (auth === 'hmac-sha256') {
    const { encKey, macKey } = deriveAuthKeys(raw);
    return { kind: 'bytes', auth, encKey, macKey, decrypt: createCbcDecryptor(encKey) };
  }
  return { kind: 'bytes', auth: 'none', encKey: raw, decrypt: createCbcDecryptor(raw) };
}

export function parseKey(format: unknown, secret: unknown, auth: unknown = 'none'): KeyMaterial {
  if (typeof secret !== 'string' || secret.length === 0) throw new E2eeError('no-key');
  if (!AUTH_MODES.includes(auth as AuthMode)) throw new E2eeError('bad-key-format');
  switch (format) {
    case 'hex':
    case 'base64':
      return byteKeyMaterial(parseKeyBytes(format, secret), auth as AuthMode);
    case 'passphrase':
      // The OpenSSL salted string has nowhere to carry a MAC, so passphrase keys are crypto-js mode only.
      if (auth !== 'none') throw new E2eeError('passphrase-auth');
      return { kind: 'passphrase', auth: 'none', passphrase: Buffer.from(secret, 'utf8') };
    default:
      throw new E2eeError('bad-key-format');
  }
}
