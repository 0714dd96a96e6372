import { fileURLToPath } from 'node:url';
import { forkWorkers, usePostgres, useRedis, useRedisCluster } from '@oms/testkit';
import { beforeAll, describe, expect, it } from 'vitest';
import { postgresLocks } from '../src/postgres/index.js';
import type { BackendSpec } from './fixtures/backends.js';
import type { MutexInput } from './fixtures/mutex-worker.js';

const PROCESSES = 8;
const ACQUISITIONS = 500;
const KEYS = ['k0', 'k1', 'k2', 'k3'];
const worker = fileURLToPath(new URL('./fixtures/mutex-worker.ts', import.meta.url));

const db = usePostgres();
const redis = useRedis();
const cluster = useRedisCluster({ masters: 3 });

interface Row {
  key: string;
  token: bigint;
  start: bigint;
  end: bigint;
  mode: 'exclusive' | 'shared';
}

beforeAll(async () => {
  const pool = db.pool({ max: 2 });
  await pool.query(`create table mutex_records (
    run text not null, worker int not null, key text not null, token bigint not null,
    start_ns bigint not null, end_ns bigint not null, mode text not null)`);
  await postgresLocks({ pool, strategy: 'lease' }).migrate();
});

const specs: [string, () => BackendSpec][] = [
  ['Redis', () => ({ kind: 'redis', url: redis.url, prefix: `${redis.prefix}mx:` })],
  [
    'Redis Cluster',
    () => ({ kind: 'cluster', startupNodes: [...cluster.startupNodes], prefix: `${cluster.prefix}mx:` }),
  ],
  ['PostgreSQL advisory', () => ({ kind: 'advisory', url: db.url })],
  ['PostgreSQL lease', () => ({ kind: 'lease', url: db.url })],
];

// fair: true grants through other scripts and functions, so exclusion is proven for it too (fewer rounds)
type Variant = [name: string, spec: () => BackendSpec, fair: boolean, acquisitions: number];
const FAIR_ACQUISITIONS = 100;
const variants: Variant[] = [
  ...specs.map(([name, spec]): Variant => [name, spec, false, ACQUISITIONS]),
  ...specs.map(([name, spec]): Variant => [`${name} (fair)`, spec, true, FAIR_ACQUISITIONS]),
];

describe.each(variants)('mutual exclusion across real processes on %s', (name, spec, fair, acquisitions) => {
  it(`${PROCESSES} processes x ${acquisitions} acquisitions over ${KEYS.length} keys: no overlap, fenced, readers share`, {
    timeout: 240_000,
  }, async () => {
    const run = name;
    const input: MutexInput = {
      spec: spec(),
      recordsUrl: db.url,
      run,
      keys: KEYS.map((k) => `${name}:${k}`),
      acquisitions,
      sharedRatio: 0.5,
      fair,
    };
    const counts = await forkWorkers<MutexInput, number>(PROCESSES, worker, input, { timeoutMs: 220_000 });
    expect(counts).toEqual(Array(PROCESSES).fill(acquisitions));
    const { rows } = await db
      .pool({ max: 1 })
      .query(
        'select key, token::text, start_ns::text as start, end_ns::text as "end", mode from mutex_records where run = $1',
        [run],
      );
    expect(rows).toHaveLength(PROCESSES * acquisitions);
    const byKey = new Map<string, Row[]>();
    for (const r of rows) {
      const row: Row = {
        key: r.key,
        token: BigInt(r.token),
        start: BigInt(r.start),
        end: BigInt(r.end),
        mode: r.mode,
      };
      byKey.set(row.key, [...(byKey.get(row.key) ?? []), row]);
    }
    let readerOverlaps = 0;
    for (const [key, list] of byKey) {
      list.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
      expect(new Set(list.map((r) => r.token)).size, `duplicate fencing tokens on ${key}`).toBe(list.length);
      for (let i = 0; i < list.length; i++) {
        const a = list[i]!;
        for (let j = i + 1; j < list.length; j++) {
          const b = list[j]!;
          const overlap = b.start <= a.end;
          if (overlap) {
            if (a.mode === 'exclusive' || b.mode === 'exclusive') {
              throw new Error(
                `${key}: ${a.mode} [${a.start}, ${a.end}] overlaps ${b.mode} [${b.start}, ${b.end}]`,
              );
            }
            readerOverlaps++;
          } else if (a.token >= b.token && (a.mode === 'exclusive' || b.mode === 'exclusive')) {
            throw new Error(`${key}: token ${a.token} (ended ${a.end}) not below later holder's ${b.token}`);
          }
        }
      }
    }
    expect(readerOverlaps, 'readers never overlapped: shared mode did not share').toBeGreaterThan(0);
  });
});
