export { redisLocks } from './redis-locks.js';
export type { RedisLike, RedisLocksOptions, RedisSubscriberLike } from './types.js';
