export * from './types';
export * from './group-commit';
export { SqliteStore, MIGRATIONS } from './sqlite';
