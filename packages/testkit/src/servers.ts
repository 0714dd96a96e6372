export { findBinary } from './binaries.js';
export { isTestkitError, TestkitError, type TestkitErrorCode } from './errors.js';
export { type PostgresServer, startPostgres } from './postgres-server.js';
export {
  type RedisClusterServer,
  type RedisServer,
  rawRedisCommand,
  startRedis,
  startRedisCluster,
} from './redis-server.js';
export { pidsMentioning, testkitRoot } from './tmp.js';
export type { Clock, FaultHandle } from './types.js';
