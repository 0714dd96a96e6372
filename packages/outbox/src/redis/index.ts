export { parseStreamEntry, redisStreamsPublisher } from './streams-publisher.js';
export type { RedisStreamsLike, RedisStreamsPublisherOptions } from './types.js';
