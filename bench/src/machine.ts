import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { Redis } from 'ioredis';
import pg from 'pg';

export interface Machine {
  cores: number;
  cpu: string;
  memoryGiB: number;
  loadAverage1m: number;
  node: string;
  redis: string;
  postgres: string;
  date: string;
}

/** What the numbers were measured on; shared machines are noisy, so the load average travels with them. */
export async function describeMachine(redisUrl: string, postgresUrl: string): Promise<Machine> {
  const redis = new Redis(redisUrl, { lazyConnect: true });
  await redis.connect();
  const info = await redis.info('server');
  redis.disconnect();
  const client = new pg.Client(postgresUrl);
  await client.connect();
  const { rows } = await client.query('show server_version');
  await client.end();
  return {
    cores: availableParallelism(),
    cpu: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    loadAverage1m: Number(loadavg()[0]?.toFixed(2)),
    node: process.version,
    redis: /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown',
    postgres: String(rows[0]?.server_version ?? 'unknown'),
    date: new Date().toISOString(),
  };
}
