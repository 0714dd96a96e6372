import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { until } from '@oms/testkit';
import { afterAll, describe, expect, it } from 'vitest';

// `pnpm demo` as users run it: the built tour in its own process, embedded (no DATABASE_URL/REDIS_URL), with a
// fresh DATA_DIR. It must exit 0, every step must have behaved, and it must leave no process behind.

const TOUR = fileURLToPath(new URL('../dist/demo/tour.js', import.meta.url));
const STEPS = [
  'start the payments service',
  'start the app (node dist/main.js)',
  'create an order (Idempotency-Key)',
  'replay the same Idempotency-Key',
  'pay the order',
  'RBAC: token, ownership, roles',
  'X-Request-Id and traceparent',
  'payments down: the breaker trips',
  'payments up: the breaker recovers',
  'rate limit: a 429 and its headers',
  'maintenance freeze: 423',
  'outbox -> inbox: exactly once',
  'backup: create and verify',
  'audit chain verifies',
  '/health excerpt',
  '/metrics excerpt',
  'graceful shutdown (SIGTERM)',
];

const dir = mkdtempSync(join(tmpdir(), 'oms-ref-demo-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Report {
  ok: boolean;
  instances: number;
  pids: number[];
  rows: { n: number; step: string; ok: boolean; result: string; details: string[] }[];
}

describe('pnpm demo (embedded)', () => {
  it('walks every step, prints the table, exits 0 and leaves no process behind', {
    timeout: 240_000,
  }, async () => {
    if (!existsSync(TOUR)) throw new Error(`${TOUR} is missing: build the app before testing`);
    const report = join(dir, 'report.json');
    const env = { ...process.env };
    delete env.DATABASE_URL;
    delete env.REDIS_URL;
    const child = spawn(process.execPath, [TOUR, '--fresh', '--report', report], {
      env: { ...env, OMS_DEMO_TIMEOUT_MS: '220000' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d;
    });
    child.stderr.on('data', (d: Buffer) => {
      out += d;
    });
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code, out).toBe(0);
    const r = JSON.parse(readFileSync(report, 'utf8')) as Report;
    expect(r.ok).toBe(true);
    expect(r.rows.map((x) => x.step)).toEqual(STEPS);
    expect(r.rows.filter((x) => !x.ok)).toEqual([]);
    // the printed table has one numbered row per step, each marked ok, and the verdict line
    for (const [i, step] of STEPS.entries()) {
      expect(out).toMatch(
        new RegExp(`^ +${i + 1} +${step.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} .* ok$`, 'm'),
      );
    }
    expect(out).toContain(`all ${STEPS.length} steps behaved as expected`);
    // what the rows say, for the features the acceptance names
    const row = (name: string) => r.rows.find((x) => x.step === name)!;
    expect(row('start the app (node dist/main.js)').details.join(' ')).toContain('database=pglite');
    expect(row('rate limit: a 429 and its headers').details.join('\n')).toMatch(
      /RateLimit-Policy: .*"route"/,
    );
    expect(row('graceful shutdown (SIGTERM)').result).toMatch(/exit 0/);
    // nothing the tour started is still running
    expect(r.pids.length).toBeGreaterThanOrEqual(2);
    const alive = () =>
      r.pids.filter((pid) => {
        try {
          process.kill(pid, 0);
          return true;
        } catch {
          return false;
        }
      });
    // a child killed at the very end may still be a zombie for a moment, until init reaps it
    await until(() => alive().length === 0, {
      timeoutMs: 10_000,
      what: 'the tour children to be gone',
    }).catch(() => {});
    expect(alive(), 'processes the tour left running').toEqual([]);
  });
});
