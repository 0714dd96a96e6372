import { usePostgres } from '@oms/testkit';
import { beforeAll } from 'vitest';
import { postgresLocks } from '../src/postgres/index.js';
import { lockContract } from './contract.js';

const db = usePostgres();
let probe: ReturnType<typeof db.pool> | undefined;
beforeAll(async () => {
  await postgresLocks({ pool: db.pool({ max: 2 }), strategy: 'advisory' }).migrate();
});
lockContract(
  'PostgreSQL advisory',
  (opts) => postgresLocks({ ...opts, pool: db.pool({ max: 6 }), strategy: 'advisory' }),
  () => {
    probe ??= db.pool({ max: 1 });
    return probe.query('select 1');
  },
);
