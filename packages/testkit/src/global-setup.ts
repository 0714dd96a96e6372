import type { TestProject } from 'vitest/node';
import { type PostgresServer, startPostgres } from './postgres-server.js';
import { type RedisServer, startRedis } from './redis-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    omsTestkit: { postgresUrl?: string; redisUrl?: string };
  }
}

/**
 * Vitest global setup: one throwaway PostgreSQL and one Redis for the whole run (each test file then gets
 * its own database and key prefix), unless `OMS_TEST_DATABASE_URL` / `OMS_TEST_REDIS_URL` point at
 * existing servers. `OMS_TESTKIT_SERVICES` (set by `omsTestConfig({ services })`) limits what starts.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const services = (process.env.OMS_TESTKIT_SERVICES ?? 'postgres,redis').split(',');
  const [pg, redis] = await Promise.all([
    services.includes('postgres') && !process.env.OMS_TEST_DATABASE_URL ? startPostgres() : undefined,
    services.includes('redis') && !process.env.OMS_TEST_REDIS_URL ? startRedis() : undefined,
  ] as [Promise<PostgresServer | undefined> | undefined, Promise<RedisServer | undefined> | undefined]);
  project.provide('omsTestkit', {
    postgresUrl: process.env.OMS_TEST_DATABASE_URL ?? pg?.url,
    redisUrl: process.env.OMS_TEST_REDIS_URL ?? redis?.url,
  });
  return async () => {
    await Promise.all([pg?.stop(), redis?.stop()]);
  };
}
