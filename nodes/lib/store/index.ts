export * from './types';
export * from './group-commit';
export { SqliteStore, MIGRATIONS, REPLAY_CACHE_MAX, BUSY_TIMEOUT_MS, PRUNE_BATCH } from './sqlite';
