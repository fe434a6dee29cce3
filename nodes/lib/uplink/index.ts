/** Admitting an uplink: the key version it came under, the replay window over its SEQN, the ack it carries. */
export * from './replay-window';
export * from './admit';
export * from './ack';
