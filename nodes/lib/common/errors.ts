/**
 * Errors raised by the pure library. Each carries a `code` that names a key
 * in the message catalog (`e2ee.errors.<code>`), so the node glue can show a
 * translated text. The library never puts key material, plaintext or padding
 * details into an error: every failure after the cipher step is the single
 * code `decrypt-failed`, so no flow built on these nodes can become a padding
 * or MAC oracle.
 */
export type ErrorCode =
  | 'decrypt-failed'
  | 'bad-payload'
  | 'bad-base64'
  | 'bad-iv'
  | 'too-large'
  | 'no-key'
  | 'bad-key'
  | 'bad-key-format'
  | 'passphrase-auth'
  | 'bad-deviceid'
  | 'bad-plaintext'
  | 'bad-fixed-iv'
  | 'form-mismatch'
  | 'no-store'
  | 'no-deviceid'
  | 'bad-key-version'
  | 'bad-scope'
  | 'no-rekey'
  | 'bad-mqtt-prefix';

export class E2eeError extends Error {
  readonly code: ErrorCode;
  /** Optional catalog parameters; never secrets. */
  readonly params: Record<string, string | number>;

  constructor(code: ErrorCode, params: Record<string, string | number> = {}) {
    super(code);
    this.name = 'E2eeError';
    this.code = code;
    this.params = params;
  }
}

export function isE2eeError(err: unknown): err is E2eeError {
  return err instanceof E2eeError;
}
