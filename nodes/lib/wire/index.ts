/** The wire format: envelopes (key/IV, Salted__, sealed with a MAC), message types, and the plaintexts inside. */
export * from './envelope';
export * from './plaintext';
