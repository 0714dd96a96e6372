export { type RedisBreakerStore, redisBreakerStore } from './store.js';
export type {
  RedisBreakerStoreEvents,
  RedisBreakerStoreOptions,
  RedisScriptClient,
  RedisSubscriber,
  StoreMode,
} from './types.js';
