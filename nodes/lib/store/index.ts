export * from './types';
export * from './group-commit';
export { SqliteStore, MIGRATIONS, REPLAY_CACHE_MAX, BUSY_TIMEOUT_MS, PRUNE_BATCH } from './sqlite';
export { PostgresStore, PG_MIGRATIONS, PG_PRUNE_BATCH, DEFAULT_POOL_SIZE, pgStorageError, describeConnection, parseBackend } from './postgresql';
