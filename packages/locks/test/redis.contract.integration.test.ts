import { useRedis } from '@oms/testkit';
import { redisLocks } from '../src/redis/index.js';
import { lockContract } from './contract.js';

const redis = useRedis();
lockContract('Redis', (opts) => redisLocks({ ...opts, redis: redis.client(), prefix: redis.prefix }));
