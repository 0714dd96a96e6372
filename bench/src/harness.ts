/** Everything a suite gets from the harness: servers it may use (throwaway unless OMS_BENCH_* URLs are set). */
export interface BenchEnv {
  redisUrl: string;
  postgresUrl: string;
}

/** One measured case. `fn` is one iteration; `ops` says how many operations an iteration performs. */
export interface BenchCase {
  /** Unique within the suite; ratios refer to it. */
  name: string;
  fn: () => unknown;
  /** Operations per iteration (64 when fn runs 64 calls concurrently). Default 1. */
  ops?: number;
  /**
   * The case talks to the suite's Redis at `env.redisUrl`: after the timed runs the harness runs it alone once more
   * and records the server's CPU and commands per op (`redisUsecPerOp`, `redisCallsPerOp`, see redis-cost.ts).
   */
  redis?: boolean;
}

/**
 * A ratio of two cases' median time per op, computed within each run and reported as the median over runs,
 * so both sides always share the machine's state. With `subtract`, both sides are first reduced by that case
 * (overhead over a bare call). `goal` is a comparison such as '<= 0.8' or '>= 1.6'.
 */
export interface Ratio {
  name: string;
  numerator: string;
  denominator: string;
  subtract?: string;
  goal?: string;
  /**
   * What is compared: client time per op (default), or `'redisUsec'`, the Redis server's CPU per op of two
   * `redis: true` cases (measured once, after the timed runs, so the ratio has one run).
   */
  of?: 'time' | 'redisUsec';
}

/**
 * A figure that is not a time per operation (peak memory, CPU seconds, a start-up time), measured by the suite
 * itself after the timed runs and published next to them. `goal` reads as for a ratio ('<= 100').
 */
export interface Metric {
  name: string;
  value: number;
  unit: string;
  goal?: string;
}

export interface Suite<C> {
  name: string;
  setup(env: BenchEnv): Promise<C>;
  cases(ctx: C): BenchCase[];
  ratios?: Ratio[];
  /** Runs after the timed runs, before teardown. */
  metrics?(ctx: C): Promise<Metric[]>;
  teardown?(ctx: C): Promise<void>;
}

/**
 * Declares a suite; `bench/suites/<name>.ts` default-exports it and `pnpm bench [name]` runs it.
 *
 * @example
 * export default defineSuite({
 *   name: 'floors',
 *   setup: async (env) => ({ redis: new Redis(env.redisUrl) }),
 *   cases: ({ redis }) => [{ name: 'ping', fn: () => redis.ping() }],
 *   teardown: async ({ redis }) => void redis.disconnect(),
 * });
 */
export function defineSuite<C>(suite: Suite<C>): Suite<C> {
  return suite;
}

/** Parses '<= 0.8' / '>= 1.6' and says whether `value` meets it. */
export function meetsGoal(value: number, goal: string | undefined): boolean | undefined {
  if (!goal) return undefined;
  const m = /^\s*(<=|>=|<|>)\s*([\d.]+)\s*$/.exec(goal);
  if (!m) throw new Error(`unreadable goal '${goal}': use '<= x' or '>= x'`);
  const target = Number(m[2]);
  switch (m[1]) {
    case '<=':
      return value <= target;
    case '>=':
      return value >= target;
    case '<':
      return value < target;
    default:
      return value > target;
  }
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}
