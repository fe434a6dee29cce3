/**
 * Plaintext handling around the cipher: the NUL terminator the original Node
 * client appends, the base64 wrapping of the original blog firmware, and the
 * shape of the decrypted result.
 */
import { isBase64 } from '../crypto';
import { E2eeError } from '../common';

export const PLAINTEXT_IN_MODES = ['utf8', 'base64', 'auto'] as const;
export const PLAINTEXT_OUT_MODES = ['utf8', 'base64'] as const;
export const OUTPUT_MODES = ['auto', 'string', 'buffer'] as const;
export type PlaintextInMode = (typeof PLAINTEXT_IN_MODES)[number];
export type PlaintextOutMode = (typeof PLAINTEXT_OUT_MODES)[number];
export type OutputMode = (typeof OUTPUT_MODES)[number];

/** Drops trailing NUL bytes (C-string terminators). */
export function stripNul(bytes: Buffer): Buffer {
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === 0) end--;
  return end === bytes.length ? bytes : bytes.subarray(0, end);
}

/**
 * Parses text as JSON when it is a JSON object or array. Scalars ("42",
 * "true") stay text: treating them as JSON would make `auto` unwrap plain
 * words that happen to be valid base64.
 */
export function parseJsonContainer(text: string): { ok: true; value: unknown } | { ok: false } {
  const first = text.trimStart()[0];
  if (first !== '{' && first !== '[') return { ok: false };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false };
  }
}

/**
 * The inner base64 of the blog firmware's plaintext. Its encoder can leave out the final `=` padding (the
 * seed's Node server, Buffer.from, accepted that), so missing padding is restored; a length that no base64
 * text can have (4n + 1) and every character outside the standard alphabet are still refused.
 */
function unwrapBase64(bytes: Buffer): Buffer | undefined {
  let text = bytes.toString('latin1').trim();
  if (text.length % 4 === 2) text += '==';
  else if (text.length % 4 === 3) text += '=';
  if (text.length === 0 || !isBase64(text)) return undefined;
  return stripNul(Buffer.from(text, 'base64'));
}

export interface Plaintext {
  bytes: Buffer;
  /** Set when the bytes were already parsed as a JSON container while unwrapping. */
  json?: { value: unknown };
}

/** Applies the `plaintext` mode of aes-decrypt to the decrypted bytes. */
export function unwrapPlaintext(raw: Buffer, mode: PlaintextInMode): Plaintext {
  const bytes = stripNul(raw);
  if (mode === 'utf8') return { bytes };
  if (mode === 'base64') {
    const inner = unwrapBase64(bytes);
    // The cipher step succeeded, but a wrong key can still yield valid padding
    // by chance: report it as the same decrypt failure as everything else.
    if (!inner) throw new E2eeError('decrypt-failed');
    return { bytes: inner };
  }
  const direct = parseJsonContainer(bytes.toString('utf8'));
  if (direct.ok) return { bytes, json: { value: direct.value } };
  const inner = unwrapBase64(bytes);
  if (inner) {
    const wrapped = parseJsonContainer(inner.toString('utf8'));
    if (wrapped.ok) return { bytes: inner, json: { value: wrapped.value } };
  }
  return { bytes };
}

/** Shapes the plaintext as the `output` mode of aes-decrypt asks. */
export function formatOutput(plain: Plaintext, output: OutputMode): unknown {
  if (output === 'buffer') return plain.bytes;
  const text = plain.bytes.toString('utf8');
  if (output === 'string') return text;
  if (plain.json) return plain.json.value;
  const parsed = parseJsonContainer(text);
  return parsed.ok ? parsed.value : text;
}

/** Serialises msg.payload for aes-encrypt: Buffers as they are, strings as UTF-8, anything else as JSON. */
export function payloadToBytes(payload: unknown): Buffer {
  if (Buffer.isBuffer(payload)) return payload;
  if (typeof payload === 'string') return Buffer.from(payload, 'utf8');
  if (payload === undefined) throw new E2eeError('bad-plaintext');
  const json = JSON.stringify(payload);
  if (json === undefined) throw new E2eeError('bad-plaintext');
  return Buffer.from(json, 'utf8');
}

/** Applies the `plaintext` mode of aes-encrypt: `base64` wraps the bytes as the blog firmware did. */
export function wrapPlaintext(bytes: Buffer, mode: PlaintextOutMode): Buffer {
  return mode === 'base64' ? Buffer.from(bytes.toString('base64'), 'latin1') : bytes;
}
