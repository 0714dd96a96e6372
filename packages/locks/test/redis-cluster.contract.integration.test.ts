import { useRedisCluster } from '@oms/testkit';
import { redisLocks } from '../src/redis/index.js';
import { lockContract } from './contract.js';

const cluster = useRedisCluster({ masters: 3 });
lockContract('Redis Cluster', (opts) =>
  redisLocks({ ...opts, redis: cluster.client(), prefix: cluster.prefix }),
);
