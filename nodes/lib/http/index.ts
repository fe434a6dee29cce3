/** The HTTP edge: the device and operator route table, bounded body readers, rate limits, the rejection log. */
export * from './routes';
export * from './body';
export * from './rate-limit';
export * from './rejection-log';
