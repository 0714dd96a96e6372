import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { healthRegistry } from '../src/index.js';
import { expectHealthJson, timerLag } from './helpers.js';

describe('a check that never settles (real clock)', () => {
  it('report() returns fail within timeoutMs + 20 ms and never has more than one run in flight', async () => {
    const registry = healthRegistry({ service: 'orders', version: '1', processChecks: false });
    let inFlight = 0;
    let maxInFlight = 0;
    registry.register({
      name: 'db:responseTime',
      kinds: ['readiness'],
      critical: true,
      timeoutMs: 100,
      check: () => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        return new Promise(() => {});
      },
    });
    for (let i = 0; i < 3; i++) {
      const lag = timerLag();
      const t0 = performance.now();
      const reports = await Promise.all(Array.from({ length: 10 }, () => registry.report('readiness')));
      const elapsed = performance.now() - t0;
      lag.stop();
      // allow for the time this loaded machine did not run our event loop, and nothing else
      expect(
        elapsed,
        `report() took ${elapsed} ms (event loop stalled ${lag.total()} ms)`,
      ).toBeLessThanOrEqual(100 + 20 + lag.total());
      for (const r of reports) {
        expect(r.status).toBe('fail');
        expect(r.body.checks['db:responseTime']?.[0]?.output).toMatch(/^timed out after 100 ms/);
        expectHealthJson(r.body);
      }
    }
    expect(maxInFlight).toBe(1);
    await registry.close();
  });
});
