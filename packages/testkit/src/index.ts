export { type FakeClock, fakeClock } from './clock.js';
export { type AloneRun, explainRun, type RunAloneOptions, runAlone } from './run-alone.js';
export * from './servers.js';
export { type TimerLag, timerLag } from './timer-lag.js';
export { until } from './until.js';
export {
  type PostgresHandle,
  type RedisClusterHandle,
  type RedisHandle,
  usePostgres,
  useRedis,
  useRedisCluster,
} from './use.js';
export {
  forkWorkers,
  spawnWorkers,
  type WorkerContext,
  type WorkerGroup,
  type WorkerModule,
  type WorkerOptions,
  type WorkerOutcome,
} from './workers.js';
