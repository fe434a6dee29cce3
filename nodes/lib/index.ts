export * from './errors';
export * from './base64';
export * from './crypto';
export * from './key';
export * from './plaintext';
export * from './wire';
export * from './funnel';
