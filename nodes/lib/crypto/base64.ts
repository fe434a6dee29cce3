import { E2eeError } from '../common';

// Standard alphabet with optional padding. Whitespace is not accepted: the
// firmware and crypto-js never emit it, and tolerating it would make two
// different strings decode to the same bytes.
const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function isBase64(text: string): boolean {
  return BASE64_RE.test(text);
}

/** Strict base64 decode: throws `bad-base64` instead of silently skipping bad characters like Buffer.from does. */
export function decodeBase64(text: string): Buffer {
  if (!isBase64(text)) throw new E2eeError('bad-base64');
  return Buffer.from(text, 'base64');
}
