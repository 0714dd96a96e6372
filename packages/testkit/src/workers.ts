import { type ChildProcess, fork } from 'node:child_process';
import { isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TestkitError } from './errors.js';
import type { FromWorker, ToWorker } from './worker-protocol.js';

/** What a worker module's default export receives besides its input. */
export interface WorkerContext {
  /** 0-based index of this worker. */
  readonly index: number;
  /** How many workers the group has. */
  readonly n: number;
  /** A barrier: resolves once every worker of the group has called `ready()`, so load starts together. */
  ready(): Promise<void>;
  /** Sends a progress message to the parent (`group.on('message', …)`). */
  send(data: unknown): Promise<void>;
  /** Receives messages the parent sends with `group.send(i, data)`; ones that arrived before the first listener are delivered to it. */
  onMessage(fn: (data: unknown) => void): () => void;
}

/** A worker module: `export default async function (input, ctx) { … return result }`. */
export type WorkerModule<I, R> = (input: I, ctx: WorkerContext) => R | Promise<R>;

export type WorkerOutcome<R> =
  | { ok: true; value: R }
  | { ok: false; error: Error; signal?: NodeJS.Signals | null; exitCode?: number | null };

export interface WorkerOptions {
  /** Kill every worker and reject after this long. Default 120 s. */
  timeoutMs?: number;
  /** Extra environment for the children (merged over the parent's). */
  env?: NodeJS.ProcessEnv;
}

/** A running group of child processes, for tests that need to kill or talk to one of them. */
export interface WorkerGroup<R> {
  readonly pids: readonly number[];
  /** Settles once every worker has finished, failed or been killed. Never rejects. */
  readonly outcomes: Promise<WorkerOutcome<R>[]>;
  kill(index: number, signal?: NodeJS.Signals): void;
  send(index: number, data: unknown): void;
  on(event: 'message', fn: (index: number, data: unknown) => void): () => void;
}

/** A child may die between our check and the write; its exit is reported through `outcomes`, not here. */
function post(child: ChildProcess, m: ToWorker): void {
  if (child.connected) child.send(m, (err) => void err);
}

const entry = fileURLToPath(new URL('./worker-entry.js', import.meta.url));
// Worker modules are usually TypeScript test fixtures; tsx lets a plain Node child import them.
const tsx = import.meta.resolve('tsx');

/**
 * Forks `n` real child processes that each run `modulePath`'s default export with `input`, and gives
 * handles to kill or message them. Children that call `ctx.ready()` start together.
 *
 * @example
 * const group = spawnWorkers(3, new URL('./holder.ts', import.meta.url).pathname, { key: 'k' });
 * group.kill(0, 'SIGKILL');
 * const outcomes = await group.outcomes;
 */
export function spawnWorkers<I, R>(
  n: number,
  modulePath: string,
  input: I,
  opts: WorkerOptions = {},
): WorkerGroup<R> {
  if (!Number.isInteger(n) || n < 1)
    throw new TestkitError('ERR_OMS_TESTKIT_WORKER', `n must be an integer >= 1 (got ${n})`);
  if (!isAbsolute(modulePath)) {
    throw new TestkitError('ERR_OMS_TESTKIT_WORKER', `modulePath must be absolute (got ${modulePath})`);
  }
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const children: ChildProcess[] = [];
  const listeners = new Set<(index: number, data: unknown) => void>();
  let readyCount = 0;
  let doneCount = 0;
  let timedOut = false;

  const maybeGo = () => {
    // Finished workers count as ready so one that never calls ready() cannot block the rest.
    if (readyCount + doneCount < n) return;
    for (const c of children) post(c, { type: 'go' });
  };

  const outcomes = Array.from({ length: n }, (_, index) => {
    const stderr: string[] = [];
    const child = fork(entry, [], {
      execArgv: ['--import', tsx],
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
      serialization: 'advanced',
    });
    children.push(child);
    child.stderr?.on('data', (d: Buffer) => {
      stderr.push(d.toString());
      if (stderr.length > 50) stderr.shift();
    });
    return new Promise<WorkerOutcome<R>>((resolve) => {
      let settled: WorkerOutcome<R> | undefined;
      child.on('message', (m: FromWorker) => {
        if (m.type === 'ready') {
          readyCount++;
          maybeGo();
        } else if (m.type === 'message') {
          for (const l of listeners) l(index, m.data);
        } else if (m.type === 'result') {
          settled = { ok: true, value: m.value as R };
        } else if (m.type === 'error') {
          const error = Object.assign(new Error(`worker ${index}: ${m.message}`), { code: m.code });
          if (m.stack) error.stack = m.stack;
          settled = { ok: false, error };
        }
      });
      child.once('exit', (exitCode, signal) => {
        doneCount++;
        maybeGo();
        resolve(
          settled ?? {
            ok: false,
            exitCode,
            signal,
            error: new TestkitError(
              'ERR_OMS_TESTKIT_WORKER',
              timedOut
                ? `worker ${index} timed out after ${timeoutMs} ms and was killed. stderr:\n${stderr.join('')}`
                : `worker ${index} exited (${signal ?? `code ${exitCode}`}) without a result. stderr:\n${stderr.join('')}`,
            ),
          },
        );
      });
      post(child, { type: 'init', modulePath, input, index, n });
    });
  });

  const timer = setTimeout(() => {
    timedOut = true;
    for (const c of children) c.kill('SIGKILL');
  }, timeoutMs);
  timer.unref();
  const all = Promise.all(outcomes).finally(() => clearTimeout(timer));

  return {
    pids: children.map((c) => c.pid ?? -1),
    outcomes: all,
    kill: (i, signal = 'SIGKILL') => {
      children[i]?.kill(signal);
    },
    send: (i, data) => {
      const c = children[i];
      if (c) post(c, { type: 'message', data });
    },
    on: (_event, fn) => {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
  };
}

/**
 * Runs `n` real child processes of `modulePath` and resolves to their results, in index order. Rejects
 * with the first failure (its message and the child's stderr) once every child has stopped.
 *
 * @example
 * // worker.ts: export default async (input, ctx) => { await ctx.ready(); return doWork(input); }
 * const results = await forkWorkers(4, new URL('./worker.ts', import.meta.url).pathname, { ms: 3000 });
 */
export async function forkWorkers<I, R>(
  n: number,
  modulePath: string,
  input: I,
  opts?: WorkerOptions,
): Promise<R[]> {
  const outcomes = await spawnWorkers<I, R>(n, modulePath, input, opts).outcomes;
  const failed = outcomes.find((o) => !o.ok);
  if (failed && !failed.ok) throw failed.error;
  return outcomes.map((o) => (o as { value: R }).value);
}
