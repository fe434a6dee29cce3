/** The wire format: envelopes (key/IV, Salted__, sealed with a MAC), message types, the plaintexts inside, MQTT topics. */
export * from './envelope';
export * from './plaintext';
export * from './topics';
