import { fakeClock } from '@oms/testkit';
import { describe, expect, it } from 'vitest';
import {
  type BreakerPeer,
  type BreakerStore,
  type BreakerStoreLink,
  type CircuitBreakerOptions,
  circuitBreaker,
  isOmsBreakerError,
  type StateChangeEvent,
} from '../src/index.js';

const boom = () => {
  throw new Error('boom');
};
const ok = () => 'ok';

function setup(o: Partial<CircuitBreakerOptions> = {}) {
  const clock = fakeClock();
  const b = circuitBreaker({ name: 'dep', clock, ...o });
  const changes: StateChangeEvent[] = [];
  b.on('stateChange', (e) => changes.push(e));
  const fail = async (n = 1) => {
    for (let i = 0; i < n; i++) await b.execute(boom).catch(() => {});
  };
  const succeed = async (n = 1) => {
    for (let i = 0; i < n; i++) await b.execute(ok).catch(() => {});
  };
  return { clock, b, changes, fail, succeed };
}

async function rejectsOpen(p: Promise<unknown>) {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(isOmsBreakerError(e) && e.code).toBe('ERR_OMS_BREAKER_OPEN');
  return e;
}

/** An in-memory BreakerStore: two breakers attached to it behave like two instances. */
function memoryStore(): BreakerStore & { peers: Set<BreakerPeer>; probe: string | null } {
  const s = {
    peers: new Set<BreakerPeer>(),
    probe: null as string | null,
    attach(peer: BreakerPeer): BreakerStoreLink {
      s.peers.add(peer);
      return {
        trip: (openMs, trips) => {
          for (const p of s.peers) p.remoteOpen(openMs, trips);
        },
        acquireProbe: async () => {
          if (s.probe !== null && s.probe !== peer.name + String([...s.peers].indexOf(peer))) return false;
          s.probe = peer.name + String([...s.peers].indexOf(peer));
          return true;
        },
        closed: (shared) => {
          s.probe = null;
          if (shared) for (const p of s.peers) if (p !== peer) p.remoteClose();
        },
        detach: () => s.peers.delete(peer),
      };
    },
  };
  return s;
}

describe('circuitBreaker state table (fake clock)', () => {
  it('closed -> open after consecutiveFailures failures in a row (default 5)', async () => {
    const { b, changes, fail, succeed } = setup();
    await fail(4);
    await succeed();
    await fail(4);
    expect(b.state).toBe('closed');
    await fail(1);
    expect(b.state).toBe('open');
    expect(changes.map((c) => [c.from, c.to, c.reason])).toEqual([
      ['closed', 'open', 'consecutive-failures'],
    ]);
  });

  it('closed -> open when the failure rate reaches the threshold with minimumThroughput calls', async () => {
    const { b, changes, fail, succeed } = setup({
      failureRate: { threshold: 0.5, minimumThroughput: 10, window: { calls: 10 } },
    });
    await fail(5);
    await succeed(4);
    expect(b.state).toBe('closed'); // 9 calls: below minimum throughput
    await fail(1); // 6/10
    expect(b.state).toBe('open');
    expect(changes[0]?.reason).toBe('failure-rate');
  });

  it('closed -> open when the slow-call rate reaches its threshold', async () => {
    const { b, clock, changes } = setup({
      slowCall: { thresholdMs: 100, rate: 0.5, minimumThroughput: 4 },
    });
    const slow = () => b.execute(() => new Promise((r) => clock.setTimeout(() => r('late'), 150)));
    for (let i = 0; i < 2; i++) await b.execute(ok);
    const p1 = slow();
    await clock.advanceAsync(150);
    await p1;
    expect(b.state).toBe('closed'); // 1 slow of 3
    const p2 = slow();
    await clock.advanceAsync(150);
    await p2; // 2 slow of 4 = 0.5
    expect(b.state).toBe('open');
    expect(changes[0]?.reason).toBe('slow-call-rate');
  });

  it('closed stays closed on successes and on errors isFailure rejects, which count as successes', async () => {
    const { b, fail } = setup({
      consecutiveFailures: 2,
      isFailure: (e) => !(e instanceof Error && e.message === 'not found'),
    });
    await fail(1);
    await b
      .execute(() => {
        throw new Error('not found');
      })
      .catch(() => {});
    await fail(1);
    expect(b.state).toBe('closed');
    expect(b.stats().consecutiveFailures).toBe(1);
  });

  it('open rejects with ERR_OMS_BREAKER_OPEN, retryAfterMs, and a rejected event, without calling fn', async () => {
    const { b, clock, fail } = setup({ consecutiveFailures: 1, openMs: 1000 });
    const rejected: string[] = [];
    b.on('rejected', (e) => rejected.push(e.reason));
    await fail();
    clock.advance(400);
    let called = false;
    const e = await rejectsOpen(
      b.execute(() => {
        called = true;
      }),
    );
    expect(called).toBe(false);
    expect((e as { retryAfterMs: number }).retryAfterMs).toBe(600);
    expect(rejected).toEqual(['open']);
  });

  it('ERR_OMS_BREAKER_OPEN is retryable: the same call can succeed after retryAfterMs', async () => {
    const { b, clock, fail } = setup({ consecutiveFailures: 1, openMs: 1000 });
    await fail();
    const e = await rejectsOpen(b.execute(ok));
    expect(e).toMatchObject({ retryable: true, retryAfterMs: 1000 });
    clock.advance(1000);
    expect(await b.execute(ok)).toBe('ok');
  });

  it('open -> half-open once openMs has elapsed', async () => {
    const { b, clock, changes, fail } = setup({ consecutiveFailures: 1, openMs: 1000 });
    await fail();
    clock.advance(999);
    expect(b.state).toBe('open');
    clock.advance(1);
    expect(b.state).toBe('half-open');
    expect(changes.at(-1)).toMatchObject({ from: 'open', to: 'half-open', reason: 'open-elapsed' });
  });

  it('half-open -> closed after successesToClose successful probes', async () => {
    const { b, clock, changes, fail, succeed } = setup({
      consecutiveFailures: 1,
      openMs: 100,
      halfOpen: { successesToClose: 3 },
    });
    await fail();
    clock.advance(100);
    await succeed(2);
    expect(b.state).toBe('half-open');
    await succeed(1);
    expect(b.state).toBe('closed');
    expect(changes.at(-1)).toMatchObject({ from: 'half-open', to: 'closed', reason: 'probes-succeeded' });
  });

  it('half-open -> open when a probe fails', async () => {
    const { b, clock, changes, fail } = setup({ consecutiveFailures: 1, openMs: 100 });
    await fail();
    clock.advance(100);
    expect(b.state).toBe('half-open');
    await fail();
    expect(b.state).toBe('open');
    expect(changes.at(-1)).toMatchObject({ from: 'half-open', to: 'open', reason: 'probe-failed' });
  });

  it('half-open admits at most maxConcurrent probes and rejects the rest', async () => {
    const { b, clock, fail } = setup({ consecutiveFailures: 1, openMs: 100, halfOpen: { maxConcurrent: 2 } });
    await fail();
    clock.advance(100);
    const release: (() => void)[] = [];
    const probe = () => b.execute(() => new Promise<void>((r) => release.push(r)));
    const p1 = probe();
    const p2 = probe();
    await rejectsOpen(probe());
    expect(b.state).toBe('half-open');
    for (const r of release) r();
    await Promise.all([p1, p2]);
    expect(b.state).toBe('closed');
  });

  it('half-open -> open after maxWaitMs without a decision', async () => {
    const { b, clock, changes, fail } = setup({
      consecutiveFailures: 1,
      openMs: 100,
      halfOpen: { maxWaitMs: 500 },
    });
    await fail();
    clock.advance(100);
    const hung = b.execute(() => new Promise(() => {}));
    void hung;
    clock.advance(499);
    expect(b.state).toBe('half-open');
    clock.advance(1);
    expect(b.state).toBe('open');
    expect(changes.at(-1)).toMatchObject({ from: 'half-open', to: 'open', reason: 'half-open-timeout' });
  });

  it('isolate() holds it open until reset(); reset() closes from any state', async () => {
    const { b, clock, changes } = setup({ openMs: 100 });
    b.isolate();
    expect(b.state).toBe('open');
    clock.advance(1_000_000);
    expect(b.state).toBe('open');
    const rejected: string[] = [];
    b.on('rejected', (e) => rejected.push(e.reason));
    await rejectsOpen(b.execute(ok));
    expect(rejected).toEqual(['isolated']);
    b.reset();
    expect(b.state).toBe('closed');
    expect(await b.execute(ok)).toBe('ok');
    expect(changes.map((c) => c.reason)).toEqual(['isolated', 'reset']);
  });

  it('closed/half-open -> open when another instance trips (remote-open), open -> closed on remote-close', async () => {
    const store = memoryStore();
    const clock = fakeClock();
    const a = circuitBreaker({ name: 'dep', consecutiveFailures: 1, openMs: 100, clock, store });
    const b = circuitBreaker({ name: 'dep', consecutiveFailures: 1, openMs: 100, clock, store });
    const seen: StateChangeEvent[] = [];
    b.on('stateChange', (e) => seen.push(e));
    await a.execute(boom).catch(() => {});
    expect(b.state).toBe('open');
    expect(seen[0]).toMatchObject({ from: 'closed', to: 'open', reason: 'remote-open' });
    clock.advance(100);
    expect(a.state).toBe('half-open');
    expect(b.state).toBe('half-open');
    expect(await a.execute(ok)).toBe('ok'); // a holds the probe
    expect(b.state).toBe('closed');
    expect(seen.at(-1)).toMatchObject({ from: 'half-open', to: 'closed', reason: 'remote-close' });
  });

  it('only the instance holding the probe lease probes; the other rejects with probe-elsewhere', async () => {
    const store = memoryStore();
    const clock = fakeClock();
    const a = circuitBreaker({ name: 'dep', consecutiveFailures: 1, openMs: 100, clock, store });
    const b = circuitBreaker({ name: 'dep', consecutiveFailures: 1, openMs: 100, clock, store });
    await a.execute(boom).catch(() => {});
    clock.advance(100);
    let release = () => {};
    const probe = a.execute(() => new Promise<void>((r) => (release = r)));
    await Promise.resolve();
    const reasons: string[] = [];
    b.on('rejected', (e) => reasons.push(e.reason));
    await rejectsOpen(b.execute(ok));
    expect(reasons).toEqual(['probe-elsewhere']);
    release();
    await probe;
    expect(b.state).toBe('closed');
  });
});

describe('circuitBreaker state table: the remaining rows (fake clock)', () => {
  const peer = (b: unknown) => b as BreakerPeer;

  it('half-open -> open when a probe succeeds but is slow (slowCall.thresholdMs)', async () => {
    const { b, clock, changes, fail } = setup({
      consecutiveFailures: 1,
      slowCall: { thresholdMs: 50, rate: 1, minimumThroughput: 100 },
      openMs: 100,
    });
    await fail();
    clock.advance(100);
    const p = b.execute(() => new Promise((r) => clock.setTimeout(() => r('late'), 60)));
    await clock.advanceAsync(60);
    expect(await p).toBe('late');
    expect(b.state).toBe('open');
    expect(changes.at(-1)).toMatchObject({ from: 'half-open', to: 'open', reason: 'probe-failed' });
  });

  it('half-open -> open when the probe answers only after maxWaitMs, even with nobody reading the state', async () => {
    const { b, clock, changes, fail } = setup({
      consecutiveFailures: 1,
      openMs: 100,
      halfOpen: { maxWaitMs: 500 },
    });
    await fail();
    clock.advance(100);
    expect(b.state).toBe('half-open');
    const p = b.execute(() => new Promise((r) => clock.setTimeout(() => r('late'), 600)));
    await clock.advanceAsync(600);
    expect(await p).toBe('late');
    expect(changes.at(-1)).toMatchObject({ from: 'half-open', to: 'open', reason: 'half-open-timeout' });
    expect(b.state).toBe('open');
  });

  it('isolate() from half-open, and reset() from open and from half-open', async () => {
    const { b, clock, changes, fail } = setup({ consecutiveFailures: 1, openMs: 100 });
    await fail();
    b.reset(); // open -> closed
    expect(b.state).toBe('closed');
    await fail();
    clock.advance(100);
    expect(b.state).toBe('half-open');
    b.isolate(); // half-open -> open
    expect(b.state).toBe('open');
    b.reset();
    await fail();
    clock.advance(100);
    expect(b.state).toBe('half-open');
    b.reset(); // half-open -> closed
    expect(b.state).toBe('closed');
    expect(changes.map((c) => `${c.from}>${c.to}:${c.reason}`)).toEqual([
      'closed>open:consecutive-failures',
      'open>closed:reset',
      'closed>open:consecutive-failures',
      'open>half-open:open-elapsed',
      'half-open>open:isolated',
      'open>closed:reset',
      'closed>open:consecutive-failures',
      'open>half-open:open-elapsed',
      'half-open>closed:reset',
    ]);
  });

  it('half-open -> open on remote-open; open -> closed on remote-close (shared store)', async () => {
    const store = memoryStore();
    const clock = fakeClock();
    const b = circuitBreaker({ name: 'dep', consecutiveFailures: 1, openMs: 100, clock, store });
    const seen: StateChangeEvent[] = [];
    b.on('stateChange', (e) => seen.push(e));
    await b.execute(boom).catch(() => {});
    clock.advance(100);
    expect(b.state).toBe('half-open');
    peer(b).remoteOpen(1000, 2);
    expect(b.state).toBe('open');
    expect(seen.at(-1)).toMatchObject({ from: 'half-open', to: 'open', reason: 'remote-open', openMs: 1000 });
    await rejectsOpen(b.execute(ok));
    peer(b).remoteClose(); // a probe elsewhere succeeded while this instance is still open
    expect(b.state).toBe('closed');
    expect(seen.at(-1)).toMatchObject({ from: 'open', to: 'closed', reason: 'remote-close' });
    expect(await b.execute(ok)).toBe('ok');
  });

  it('a caller signal aborts the wait for the probe lease; the lease, once granted, goes to the next call', async () => {
    const clock = fakeClock();
    let grant: (v: boolean) => void = () => {};
    let asked = 0;
    const store: BreakerStore = {
      attach: (p) => ({
        trip: (openMs, trips) => p.remoteOpen(openMs, trips),
        acquireProbe: () => {
          asked++;
          return new Promise<boolean>((r) => (grant = r));
        },
        closed: () => {},
        detach: () => {},
      }),
    };
    const b = circuitBreaker({ name: 'dep', consecutiveFailures: 1, openMs: 100, clock, store });
    await b.execute(boom).catch(() => {});
    clock.advance(100);
    const ac = new AbortController();
    let ran = false;
    const waiting = b.execute(() => {
      ran = true;
    }, ac.signal);
    await Promise.resolve();
    ac.abort(new Error('caller gave up'));
    await expect(waiting).rejects.toThrow('caller gave up');
    expect(ran).toBe(false);
    grant(true);
    await new Promise((r) => setImmediate(r)); // let the store's answer land
    expect(await b.execute(ok)).toBe('ok'); // probes with the lease it already holds
    expect(asked).toBe(1);
    expect(b.state).toBe('closed');
  });

  it('a store whose acquireProbe fails lets this instance probe on its own', async () => {
    const clock = fakeClock();
    const store: BreakerStore = {
      attach: (p) => ({
        trip: (openMs, trips) => p.remoteOpen(openMs, trips),
        acquireProbe: () => Promise.reject(new Error('store down')),
        closed: () => {},
        detach: () => {},
      }),
    };
    const b = circuitBreaker({ name: 'dep', consecutiveFailures: 1, openMs: 100, clock, store });
    await b.execute(boom).catch(() => {});
    clock.advance(100);
    expect(await b.execute(ok)).toBe('ok');
    expect(b.state).toBe('closed');
  });
});

describe('circuitBreaker windows and backoff', () => {
  it('a time window forgets calls older than window.ms (bucket rollover)', async () => {
    const { b, clock, fail, succeed } = setup({
      failureRate: { threshold: 0.5, minimumThroughput: 4, window: { ms: 1000, buckets: 10 } },
    });
    await fail(3);
    clock.advance(1000); // all three fall out
    expect(b.stats().calls).toBe(0);
    await succeed(3);
    await fail(1); // 1/4
    expect(b.state).toBe('closed');
    clock.advance(500);
    await fail(2); // 3/6
    expect(b.state).toBe('open');
  });

  it('a time window keeps calls that are still inside it across buckets', async () => {
    const { b, clock, fail, succeed } = setup({
      failureRate: { threshold: 0.5, minimumThroughput: 4, window: { ms: 1000, buckets: 4 } },
    });
    await succeed(2);
    clock.advance(300);
    await fail(1);
    clock.advance(300);
    expect(b.stats()).toMatchObject({ calls: 3, failures: 1 });
    await fail(1); // 2/4
    expect(b.state).toBe('open');
  });

  it('a count window only judges the last `calls` calls', async () => {
    const { b, fail, succeed } = setup({
      failureRate: { threshold: 0.5, minimumThroughput: 4, window: { calls: 4 } },
    });
    await fail(1);
    await succeed(4); // the failure rolls out
    expect(b.stats()).toMatchObject({ calls: 4, failures: 0 });
    await fail(1);
    expect(b.state).toBe('closed'); // 1/4
    await fail(1);
    expect(b.state).toBe('open'); // 2/4
  });

  it('minimumThroughput holds the breaker closed even at a 100% failure rate', async () => {
    const { b, fail } = setup({
      failureRate: { threshold: 0.1, minimumThroughput: 20, window: { calls: 50 } },
    });
    await fail(19);
    expect(b.state).toBe('closed');
    await fail(1);
    expect(b.state).toBe('open');
  });

  it('open duration backs off on repeated trips and resets after closing', async () => {
    const { b, clock, changes, fail, succeed } = setup({
      consecutiveFailures: 1,
      openMs: { initialMs: 100, maxMs: 350, factor: 2 },
    });
    await fail();
    clock.advance(100);
    await fail(); // probe fails: 200
    clock.advance(200);
    await fail(); // 400 capped at 350
    clock.advance(349);
    expect(b.state).toBe('open');
    clock.advance(1);
    await succeed();
    expect(b.state).toBe('closed');
    await fail();
    expect(changes.filter((c) => c.to === 'open').map((c) => c.openMs)).toEqual([100, 200, 350, 100]);
  });

  it('toJSON()/restore carries an open breaker across instances (serverless)', async () => {
    const { b, clock, fail } = setup({ consecutiveFailures: 2, openMs: 1000 });
    await fail(2);
    const snap = JSON.parse(JSON.stringify(b.toJSON()));
    const b2 = circuitBreaker({ name: 'dep', consecutiveFailures: 2, openMs: 1000, clock, restore: snap });
    expect(b2.state).toBe('open');
    await rejectsOpen(b2.execute(ok));
    clock.advance(1000);
    expect(b2.state).toBe('half-open');
  });

  it('toJSON() of a breaker that closed again carries no open deadline', async () => {
    const { b, clock, fail, succeed } = setup({ consecutiveFailures: 1, openMs: 1000 });
    await fail();
    expect(b.toJSON()).toMatchObject({ state: 'open', openUntil: clock.now() + 1000 });
    clock.advance(1000);
    await succeed(); // the probe closes it
    expect(b.toJSON()).toMatchObject({ state: 'closed', openUntil: 0, trips: 0 });
    await fail();
    b.reset();
    expect(b.toJSON()).toMatchObject({ state: 'closed', openUntil: 0 });
  });

  it('toJSON()/restore carries window counts of a closed breaker', async () => {
    const { b, clock, fail } = setup({
      failureRate: { threshold: 0.5, minimumThroughput: 4, window: { ms: 1000 } },
    });
    await fail(3);
    const b2 = circuitBreaker({
      name: 'dep',
      clock,
      failureRate: { threshold: 0.5, minimumThroughput: 4, window: { ms: 1000 } },
      restore: b.toJSON(),
    });
    expect(b2.stats()).toMatchObject({ calls: 3, failures: 3 });
    await b2.execute(boom).catch(() => {});
    expect(b2.state).toBe('open');
    expect(() => b2.restore({ ...b.toJSON(), name: 'other' })).toThrow(/other/);
  });

  it('restore rejects a malformed snapshot with ERR_OMS_BREAKER_INVALID_SNAPSHOT and keeps its state', async () => {
    const { b, fail } = setup({
      consecutiveFailures: 3,
      failureRate: { threshold: 0.5, minimumThroughput: 4, window: { ms: 1000 } },
    });
    await fail(1);
    const good = b.toJSON();
    const broken = [
      { ...good, window: { kind: 'time', bucketMs: 100, buckets: null } },
      { ...good, window: { kind: 'time', bucketMs: 100, buckets: [[1, 'x', 0, 0]] } },
      { ...good, window: { kind: 'calls', size: 4, outcomes: 'oops' } },
      { ...good, state: 'open', openUntil: -1 },
      { ...good, v: 2 },
    ];
    for (const snap of broken) {
      let err: unknown;
      try {
        b.restore(snap as never);
      } catch (e) {
        err = e;
      }
      expect(isOmsBreakerError(err) && err.code, JSON.stringify(snap)).toBe(
        'ERR_OMS_BREAKER_INVALID_SNAPSHOT',
      );
    }
    expect(b.state).toBe('closed');
    expect(b.stats()).toMatchObject({ calls: 1, failures: 1, consecutiveFailures: 1 });
  });

  it('handles a synchronous throw and a non-promise return value', async () => {
    const { b } = setup({ consecutiveFailures: 2 });
    expect(await b.execute(() => 7)).toBe(7);
    await expect(b.execute(boom)).rejects.toThrow('boom');
    expect(b.stats().consecutiveFailures).toBe(1);
  });

  it('emits success and failure events with durations', async () => {
    const { b, clock } = setup();
    const seen: string[] = [];
    b.on('success', (e) => seen.push(`s:${e.durationMs}`));
    b.on('failure', (e) => seen.push(`f:${e.durationMs}:${(e.error as Error).message}`));
    const p = b.execute(() => new Promise((r) => clock.setTimeout(() => r(1), 30)));
    await clock.advanceAsync(30);
    await p;
    await b.execute(boom).catch(() => {});
    expect(seen).toEqual(['s:30', 'f:0:boom']);
  });
});
