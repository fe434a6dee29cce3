export * from './types';
export * from './group-commit';
export { SqliteStore, MIGRATIONS, REPLAY_CACHE_MAX } from './sqlite';
