import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

// The child processes the tour starts (the payments service and app instances): spawned with piped output
// kept in a ring buffer, waited on through real events (a printed line, /readyz = 200), and always killed.

const LOG_LINES = 400;
const children = new Set<ChildProcess>();
const pids: number[] = [];

/** Every pid this process spawned (for a test that checks none is left running). */
export function spawnedPids(): number[] {
  return [...pids];
}

/** Kills every child still alive, at once (SIGKILL); safe to call from an 'exit' handler. */
export function killAll(): void {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
  children.clear();
}
process.once('exit', killAll);

/** A free loopback port (racy by nature: startApp retries on EADDRINUSE). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  at: number;
}

/** One spawned process with its output. */
export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  /** The last lines of stdout and stderr, in order. */
  readonly lines: string[];
  readonly exited: Promise<Exit>;
  readonly spawnedAt: number;
  /** Resolves to the first line `match` accepts (also among the lines already seen); rejects on exit. */
  waitForLine(match: (line: string) => boolean, timeoutMs: number, what: string): Promise<string>;
  alive(): boolean;
  /** The last n lines, for an error message. */
  tail(n?: number): string;
}

export function spawnProc(name: string, args: string[], env: NodeJS.ProcessEnv, signal?: AbortSignal): Proc {
  const spawnedAt = performance.now();
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  if (child.pid !== undefined) pids.push(child.pid);
  const lines: string[] = [];
  const waiters = new Set<(line: string | null) => void>();
  const push = (line: string) => {
    lines.push(line);
    if (lines.length > LOG_LINES) lines.shift();
    for (const w of waiters) w(line);
  };
  for (const stream of [child.stdout, child.stderr]) {
    let buf = '';
    stream?.setEncoding('utf8');
    stream?.on('data', (d: string) => {
      buf += d;
      const parts = buf.split('\n');
      buf = parts.pop() ?? '';
      for (const p of parts) if (p.trim()) push(p);
    });
    stream?.on('end', () => {
      if (buf.trim()) push(buf);
      buf = '';
    });
  }
  const exited = new Promise<Exit>((resolve) => {
    child.once('error', (e) => {
      push(`spawn error: ${e.message}`);
      resolve({ code: null, signal: null, at: performance.now() });
    });
    child.once('exit', (code, sig) => {
      children.delete(child);
      // let the pipes flush their last lines before waiters give up
      setImmediate(() => {
        for (const w of waiters) w(null);
        resolve({ code, signal: sig, at: performance.now() });
      });
    });
  });
  const onAbort = () => child.kill('SIGKILL');
  signal?.addEventListener('abort', onAbort, { once: true });
  void exited.then(() => signal?.removeEventListener('abort', onAbort));
  const tail = (n = 15) => lines.slice(-n).join('\n');
  return {
    name,
    child,
    lines,
    exited,
    spawnedAt,
    alive: () => child.exitCode === null && child.signalCode === null,
    tail,
    waitForLine(match, timeoutMs, what) {
      const seen = lines.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(w);
          reject(new Error(`${name}: no ${what} within ${timeoutMs} ms; last output:\n${tail()}`));
        }, timeoutMs);
        const w = (line: string | null) => {
          if (line === null) {
            clearTimeout(timer);
            waiters.delete(w);
            reject(new Error(`${name} exited before ${what}; last output:\n${tail()}`));
          } else if (match(line)) {
            clearTimeout(timer);
            waiters.delete(w);
            resolve(line);
          }
        };
        waiters.add(w);
        if (!(child.exitCode === null && child.signalCode === null)) w(null);
      });
    },
  };
}

// built: this file is dist/demo/processes.js; from source (tests): src/demo/processes.ts, and the built
// entry points are still the ones to run
const distRoot = /\/src\/demo\/[^/]+$/.test(import.meta.url) ? '../../dist/' : '../';
const dist = (rel: string) => fileURLToPath(new URL(distRoot + rel, import.meta.url));
/** dist/main.js and dist/payments/main.js. */
export const APP_MAIN = dist('main.js');
export const PAYMENTS_MAIN = dist('payments/main.js');

export function parseJsonLine(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const v = JSON.parse(line) as unknown;
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export interface Payments {
  proc: Proc;
  url: string;
}

/** Starts `node dist/payments/main.js --port 0` and resolves once it prints its url. */
export async function startPayments(signal?: AbortSignal): Promise<Payments> {
  const proc = spawnProc('payments', [PAYMENTS_MAIN, '--port', '0'], { ...process.env }, signal);
  const line = await proc.waitForLine((l) => parseJsonLine(l)?.msg === 'listening', 15_000, 'listening line');
  return { proc, url: String(parseJsonLine(line)?.url) };
}

export interface AppInstance {
  name: string;
  proc: Proc;
  url: string;
  port: number;
  /** ms from spawn to the first /readyz = 200. */
  readyMs: number;
  /** The parsed start line naming the backends, if the app printed one. */
  startLine?: Record<string, unknown>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Spawns `node dist/main.js` with `env` on a free port and resolves once /readyz answers 200, timing spawn to
 * ready. Retries on another port when the first one was taken in the meantime.
 */
export async function startApp(
  name: string,
  env: Record<string, string>,
  {
    timeoutMs = 60_000,
    pollMs = 20,
    signal,
  }: { timeoutMs?: number; pollMs?: number; signal?: AbortSignal } = {},
): Promise<AppInstance> {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const proc = spawnProc(
      name,
      [APP_MAIN],
      { ...process.env, ...env, PORT: String(port), HOST: '127.0.0.1' },
      signal,
    );
    const url = `http://127.0.0.1:${port}`;
    const deadline = performance.now() + timeoutMs;
    let readyMs: number | undefined;
    // Probes go through the rate limits like any request, so don't spend them while the process is still
    // starting: wait for its "listening" line (when it logs at info), then poll.
    const level = env.LOG_LEVEL ?? process.env.LOG_LEVEL ?? 'info';
    if (['info', 'debug', 'trace'].includes(level)) {
      await proc
        .waitForLine((l) => parseJsonLine(l)?.msg === 'listening', timeoutMs, 'listening line')
        .catch(() => {});
    }
    while (proc.alive() && performance.now() < deadline) {
      try {
        const r = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2_000) });
        await r.arrayBuffer();
        if (r.status === 200) {
          readyMs = performance.now() - proc.spawnedAt;
          break;
        }
      } catch {
        // not listening yet
      }
      await sleep(pollMs);
    }
    if (readyMs !== undefined) {
      const startLine = proc.lines.map(parseJsonLine).find((l) => l && ('backends' in l || 'db' in l));
      return { name, proc, url, port, readyMs, ...(startLine ? { startLine } : {}) };
    }
    if (proc.alive()) {
      proc.child.kill('SIGKILL');
      await proc.exited;
      throw new Error(`${name}: /readyz not 200 within ${timeoutMs} ms; last output:\n${proc.tail()}`);
    }
    await proc.exited;
    if (attempt < 2 && /EADDRINUSE/.test(proc.tail(40))) continue;
    throw new Error(`${name} exited before /readyz = 200; last output:\n${proc.tail()}`);
  }
}

/** SIGTERM, then the exit; SIGKILL after `timeoutMs`. */
export async function terminate(proc: Proc, timeoutMs = 20_000): Promise<Exit & { killed: boolean }> {
  if (!proc.alive()) return { ...(await proc.exited), killed: false };
  const t0 = performance.now();
  proc.child.kill('SIGTERM');
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    proc.child.kill('SIGKILL');
  }, timeoutMs);
  const exit = await proc.exited;
  clearTimeout(timer);
  return { ...exit, at: exit.at - t0, killed };
}
