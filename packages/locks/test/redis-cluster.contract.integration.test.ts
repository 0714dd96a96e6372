import { useRedisCluster } from '@oms/testkit';
import { redisLocks } from '../src/redis/index.js';
import { lockContract } from './contract.js';

const cluster = useRedisCluster({ masters: 3 });
let probe: ReturnType<typeof cluster.client> | undefined;
lockContract(
  'Redis Cluster',
  (opts) => redisLocks({ ...opts, redis: cluster.client(), prefix: cluster.prefix }),
  () => {
    probe ??= cluster.client();
    return probe.get(`${cluster.prefix}{probe}`);
  },
);
