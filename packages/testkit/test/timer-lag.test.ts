import { describe, expect, it } from 'vitest';
import { timerLag } from '../src/timer-lag.js';

const busy = (ms: number) => {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // hold the event loop, as a loaded machine or a long GC would
  }
};

describe('timerLag', () => {
  it('counts a blocked event loop as lag', async () => {
    const lag = timerLag();
    await new Promise((r) => setTimeout(r, 20));
    busy(150);
    await new Promise((r) => setTimeout(r, 20));
    lag.stop();
    expect(lag.total()).toBeGreaterThanOrEqual(140);
  });

  it('counts a stall still in progress at stop()', () => {
    const lag = timerLag();
    busy(80);
    lag.stop();
    expect(lag.total()).toBeGreaterThanOrEqual(70);
  });

  it('current() counts a stall in progress without stopping the sampler', async () => {
    const lag = timerLag();
    busy(80);
    expect(lag.current()).toBeGreaterThanOrEqual(70);
    await new Promise((r) => setTimeout(r, 20));
    busy(60);
    await new Promise((r) => setTimeout(r, 20));
    expect(lag.current()).toBeGreaterThanOrEqual(120);
    lag.stop();
  });
});
