import { usePostgres } from '@oms/testkit';
import { beforeAll } from 'vitest';
import { postgresLocks } from '../src/postgres/index.js';
import { lockContract } from './contract.js';

const db = usePostgres();
beforeAll(async () => {
  await postgresLocks({ pool: db.pool({ max: 2 }), strategy: 'advisory' }).migrate();
});
lockContract('PostgreSQL advisory', (opts) =>
  postgresLocks({ ...opts, pool: db.pool({ max: 6 }), strategy: 'advisory' }),
);
