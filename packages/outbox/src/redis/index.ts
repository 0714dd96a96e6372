export {
  type RedisStreamsConsumer,
  type RedisStreamsConsumerEvents,
  type RedisStreamsConsumerOptions,
  redisStreamsConsumer,
} from './streams-consumer.js';
export { parseStreamEntry, redisStreamsPublisher } from './streams-publisher.js';
export type { RedisStreamsLike, RedisStreamsPublisherOptions } from './types.js';
