export { advisoryKey, type PostgresLocks, postgresLocks } from './postgres-locks.js';
export { LOCKS_MIGRATION_SQL } from './sql.js';
export type { PgClientLike, PgPoolLike, PgResult, PostgresLocksOptions } from './types.js';
