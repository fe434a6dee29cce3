/** The primitives: AES-CBC with PKCS#7, HMAC-SHA256, HKDF, base64, key material, and the per-device keyring. */
export * from './base64';
export * from './aes';
export * from './key';
export * from './device-keys';
export * from './rekey';
export * from './broker';
