export * from './types';
export * from './group-commit';
export { SqliteStore, MIGRATIONS, BUSY_TIMEOUT_MS, PRUNE_BATCH, DURABILITIES, parseDurability } from './sqlite';
export type { Durability } from './sqlite';
export { REPLAY_CACHE_MAX } from './replay-states';
export { PostgresStore, PG_MIGRATIONS, PG_PRUNE_BATCH, DEFAULT_POOL_SIZE, SOURCE_REFRESH_MS, pgStorageError, describeConnection, parseBackend } from './postgresql';
