import { pathToFileURL } from 'node:url';
import type { FromWorker, ToWorker } from './worker-protocol.js';
import type { WorkerContext } from './workers.js';

// The child side of forkWorkers: load the module, run its default export, report the result over IPC.
const send = (m: FromWorker) => new Promise<void>((r) => process.send?.(m, undefined, {}, () => r()));
let go: (() => void) | undefined;
const goPromise = new Promise<void>((r) => {
  go = r;
});
const listeners = new Set<(data: unknown) => void>();
// The parent may write before the module subscribes (it loads asynchronously); keep those messages for the
// first listener instead of dropping them.
const early: unknown[] = [];

process.on('message', async (m: ToWorker) => {
  if (m.type === 'go') return go?.();
  if (m.type === 'message') {
    if (listeners.size === 0) early.push(m.data);
    for (const l of listeners) l(m.data);
    return;
  }
  if (m.type !== 'init') return;
  try {
    const mod = await import(pathToFileURL(m.modulePath).href);
    const fn = mod.default as (input: unknown, ctx: WorkerContext) => unknown;
    if (typeof fn !== 'function') throw new Error(`${m.modulePath} has no default export function`);
    const ctx: WorkerContext = {
      index: m.index,
      n: m.n,
      ready: async () => {
        await send({ type: 'ready' });
        await goPromise;
      },
      send: (data) => send({ type: 'message', data }),
      onMessage: (fn) => {
        listeners.add(fn);
        for (const data of early.splice(0)) fn(data);
        return () => listeners.delete(fn);
      },
    };
    const value = await fn(m.input, ctx);
    await send({ type: 'result', value });
    process.exit(0);
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    await send({
      type: 'error',
      message: err.message,
      stack: err.stack,
      code: (err as { code?: string }).code,
    });
    process.exit(1);
  }
});
