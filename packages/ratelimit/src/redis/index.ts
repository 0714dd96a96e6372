export { redisStore } from './store.js';
export type { RedisLike, RedisStoreOptions } from './types.js';
