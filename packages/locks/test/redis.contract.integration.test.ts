import { useRedis } from '@oms/testkit';
import { redisLocks } from '../src/redis/index.js';
import { lockContract } from './contract.js';

const redis = useRedis();
let ping: ReturnType<typeof redis.client> | undefined;
lockContract(
  'Redis',
  (opts) => redisLocks({ ...opts, redis: redis.client(), prefix: redis.prefix }),
  () => {
    ping ??= redis.client();
    return ping.ping();
  },
);
