import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { usePostgres, useRedis } from '@oms/testkit';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import type { Lease, Locks } from '../src/index.js';
import { postgresLocks } from '../src/postgres/index.js';
import { redisLocks } from '../src/redis/index.js';

// An awaited acquire keeps a bare script alive until it settles (its wait timer is ref'd), while a held
// lease's heartbeat does not (it is background work). Each case runs the built package in a child process
// with nothing else alive: Node exits with code 13 when a top-level await is left unsettled.
// a child's node start and imports are slow on a loaded machine; the guard below only catches a hang
vi.setConfig({ testTimeout: 120_000 });
const script = fileURLToPath(new URL('./fixtures/awaited-wait.mjs', import.meta.url));
const redis = useRedis();
const db = usePostgres();

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  result: { outcome: string; waitedMs: number; token?: string } | undefined;
  stderr: string;
}

function run(
  backend: string,
  scenario: 'timeout' | 'handoff',
  env: Record<string, string> = {},
  onWaiting: () => void = () => {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, backend, scenario], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('{"waiting":true}')) onWaiting();
    });
    child.stderr.on('data', (d) => (stderr += d));
    // a script kept alive by a ref'd background timer would never exit: that is a failure too
    const kill = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(kill);
      const line = out
        .trim()
        .split('\n')
        .filter((l) => l && !l.includes('"waiting"'))
        .at(-1);
      resolve({ code, signal, result: line ? JSON.parse(line) : undefined, stderr });
    });
  });
}

const explain = (r: Run) =>
  `exit ${r.code} (${r.signal ?? 'no signal'}), stdout result ${JSON.stringify(r.result)}, stderr: ${r.stderr}`;

describe('an awaited acquire in a script with nothing else alive (memory)', () => {
  it('rejects with ERR_OMS_LOCKS_TIMEOUT after waitMs and exits 0, not 13', async () => {
    const r = await run('memory', 'timeout');
    expect(r.result?.outcome, explain(r)).toBe('ERR_OMS_LOCKS_TIMEOUT');
    expect(r.result?.waitedMs).toBeGreaterThanOrEqual(290);
    expect(r.code, explain(r)).toBe(0);
  });

  it('resolves once the holder releases on a timer, and a held lease does not keep the script alive', async () => {
    const r = await run('memory', 'handoff');
    expect(r.result?.outcome, explain(r)).toBe('granted');
    expect(r.code, explain(r)).toBe(0);
  });
});

let n = 0;
const servers: [string, () => { locks: Locks; env: Record<string, string> }][] = [
  [
    'redis',
    () => ({
      locks: redisLocks({ redis: redis.client(), prefix: redis.prefix }),
      env: { OMS_URL: redis.url, OMS_PREFIX: redis.prefix },
    }),
  ],
  [
    'lease',
    () => ({
      locks: postgresLocks({ pool: db.pool({ max: 2 }), strategy: 'lease' }),
      env: { OMS_URL: db.url },
    }),
  ],
  [
    'advisory',
    () => ({
      locks: postgresLocks({ pool: db.pool({ max: 2 }), strategy: 'advisory' }),
      env: { OMS_URL: db.url },
    }),
  ],
];

beforeAll(async () => {
  await postgresLocks({ pool: db.pool({ max: 1 }), strategy: 'lease' }).migrate();
});

describe.each(servers)('an awaited acquire in a script with nothing else alive (%s)', (backend, make) => {
  it('rejects with ERR_OMS_LOCKS_TIMEOUT after waitMs and exits 0, not 13', async () => {
    const { locks, env } = make();
    const key = `awaited:${backend}:${++n}`;
    const held = await locks.acquire(key);
    try {
      const r = await run(backend, 'timeout', { ...env, OMS_KEY: key });
      expect(r.result?.outcome, explain(r)).toBe('ERR_OMS_LOCKS_TIMEOUT');
      expect(r.code, explain(r)).toBe(0);
    } finally {
      await held.release();
      await locks.close();
    }
  });

  it('resolves once the holder (another process) releases, and exits 0', async () => {
    const { locks, env } = make();
    const key = `awaited:${backend}:${++n}`;
    const held: Lease = await locks.acquire(key);
    try {
      // released as soon as the child reports that its acquire is waiting
      const r = await run(backend, 'handoff', { ...env, OMS_KEY: key }, () => void held.release());
      expect(r.result?.outcome, explain(r)).toBe('granted');
      expect(BigInt(r.result?.token ?? 0)).toBeGreaterThan(held.fencingToken);
      expect(r.code, explain(r)).toBe(0);
    } finally {
      await held.release();
      await locks.close();
    }
  });
});
