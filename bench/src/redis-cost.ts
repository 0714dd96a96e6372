// Server-side cost of a Redis bench case. Client wall time on a shared 2-core machine swings with the neighbours;
// the server's own CPU per operation barely moves, so script designs are compared on it.
//
// CPU comes from INFO cpu (the main thread's user + sys seconds), not from the commandstats usec the issue first
// suggested: commandstats counts a command called inside a script twice (once in its own entry, once inside the
// EVALSHA's usec), so its sum overstates script-based designs, and it leaves out the read/write syscalls that a
// second top-level command costs. Commandstats still gives the calls per operation, script-internal calls included,
// which is what "no extra redis.call" is about.
import { Redis } from 'ioredis';

/** What one case costs the Redis server per operation. */
export interface RedisCost {
  /** Main-thread CPU (user + sys) in µs per operation. */
  usecPerOp: number;
  /** Commands executed per operation, counting each `redis.call` inside a script. */
  callsPerOp: number;
  /** The same calls by command name, e.g. `{ evalsha: 1, hmget: 1, hset: 1 }`. */
  calls: Record<string, number>;
}

interface Snapshot {
  cpu: number;
  calls: Map<string, number>;
}

/** Commands the measurement itself sends; they are not the case's. */
const OWN = new Set(['info']);

async function snapshot(redis: Redis): Promise<Snapshot> {
  const text = await redis.info('everything');
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(text)?.[1] ?? Number.NaN);
  const cpu = field('used_cpu_user_main_thread') + field('used_cpu_sys_main_thread');
  const calls = new Map<string, number>();
  for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(m[1] as string, Number(m[2]));
  return { cpu, calls };
}

/**
 * Runs `fn` back to back, alone, for at least `timeMs` (and 50 iterations), and returns the server's cost per op.
 * `ops` is how many operations one call of `fn` performs.
 */
export async function measureRedisCost(
  url: string,
  fn: () => unknown,
  ops: number,
  timeMs: number,
): Promise<RedisCost> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  try {
    await fn(); // warm: scripts loaded, connections up
    const before = await snapshot(redis);
    const start = performance.now();
    let iterations = 0;
    while (iterations < 50 || performance.now() - start < timeMs) {
      await fn();
      iterations++;
    }
    const after = await snapshot(redis);
    const n = iterations * ops;
    const calls: Record<string, number> = {};
    let total = 0;
    for (const [name, count] of after.calls) {
      if (OWN.has(name)) continue;
      const d = count - (before.calls.get(name) ?? 0);
      if (d <= 0) continue;
      calls[name] = Number((d / n).toFixed(3));
      total += d;
    }
    return { usecPerOp: ((after.cpu - before.cpu) * 1e6) / n, callsPerOp: total / n, calls };
  } finally {
    redis.disconnect();
  }
}
