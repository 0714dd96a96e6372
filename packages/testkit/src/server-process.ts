import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { TestkitError } from './errors.js';

export interface RunAs {
  uid: number;
  gid: number;
}

const live = new Set<ServerProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Synchronous last resort for a normal exit that skipped teardown (a crashed hook, a bail-out).
  process.on('exit', () => {
    for (const p of live) p.killSync();
  });
}

/** Every descendant of `root`, from /proc (Linux). Parents come before their children. */
function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      // the command name may hold spaces and parentheses; fields resume after the last ')'
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(e));
      children.set(ppid, list);
    } catch {
      // exited while we looked
    }
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length) {
    for (const c of children.get(queue.shift() as number) ?? []) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

/**
 * One server process in its own process group. The group matters: PostgreSQL forks a process per
 * connection, and pause/kill must reach all of them, not only the postmaster.
 *
 * The child is started through `setpriv --pdeathsig SIGKILL`, so the kernel kills it when the process
 * that started it dies, even by SIGKILL. That is what keeps a crashed test run from leaving orphans.
 */
export class ServerProcess {
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #paused = false;
  readonly logFile: string;

  constructor(
    readonly name: string,
    readonly dir: string,
    private readonly bin: string,
    private readonly args: string[],
    private readonly runAs?: RunAs,
  ) {
    this.logFile = join(dir, `${name}.log`);
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  start(): void {
    if (this.running) return;
    installExitHook();
    const log = openSync(this.logFile, 'a');
    let cmd = this.bin;
    let argv = this.args;
    if (SETPRIV) {
      const who = this.runAs
        ? ['--reuid', String(this.runAs.uid), '--regid', String(this.runAs.gid), '--init-groups']
        : [];
      cmd = SETPRIV;
      argv = [...who, '--pdeathsig', 'SIGKILL', '--', this.bin, ...this.args];
    } else if (this.runAs) {
      closeSync(log);
      throw new TestkitError(
        'ERR_OMS_TESTKIT_MISSING_BINARY',
        `@oms/testkit: 'setpriv' was not found; it is needed to run ${this.name} as an unprivileged user. Install the 'util-linux' package.`,
      );
    }
    const child = spawn(cmd, argv, { cwd: this.dir, detached: true, stdio: ['ignore', log, log] });
    closeSync(log);
    this.#child = child;
    this.#paused = false;
    live.add(this);
    this.#exited = new Promise((resolve) => {
      child.once('exit', () => {
        live.delete(this);
        resolve();
      });
      child.once('error', () => {
        live.delete(this);
        resolve();
      });
    });
  }

  /** The last lines the server wrote, for error messages. */
  logTail(lines = 20): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /**
   * Signals the server and every descendant. A process group is not enough: PostgreSQL backends call
   * setsid(), so they leave the postmaster's group, and SIGSTOP on the postmaster alone would leave
   * open connections answering.
   */
  #signalGroup(sig: NodeJS.Signals): void {
    const pid = this.#child?.pid;
    if (pid === undefined || !this.running) return;
    const targets = [pid, ...descendants(pid)];
    // On resume, wake children before the parent; otherwise stop the parent first so it forks nothing new.
    if (sig === 'SIGCONT') targets.reverse();
    for (const p of targets) {
      try {
        process.kill(p, sig);
      } catch {
        // already gone
      }
    }
  }

  /** SIGKILL to the whole group; resolves once the server process has exited. */
  async kill(): Promise<void> {
    this.#signalGroup('SIGKILL');
    await this.#exited;
    this.#paused = false;
  }

  /** A graceful stop (`sig`, then SIGKILL after `graceMs`). */
  async stop(sig: NodeJS.Signals = 'SIGTERM', graceMs = 5_000): Promise<void> {
    if (!this.running) return;
    if (this.#paused) this.#signalGroup('SIGCONT');
    this.#signalGroup(sig);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((r) => {
      timer = setTimeout(() => r(true), graceMs);
      timer.unref();
    });
    const forced = await Promise.race([this.#exited.then(() => false), timedOut]);
    clearTimeout(timer);
    if (forced) await this.kill();
    this.#paused = false;
  }

  /** SIGSTOP to the whole group: connections stay open but nothing answers, like a hung host. */
  pause(): void {
    this.#signalGroup('SIGSTOP');
    this.#paused = true;
  }

  resume(): void {
    this.#signalGroup('SIGCONT');
    this.#paused = false;
  }

  /** For the exit hook only: nothing asynchronous runs after 'exit'. */
  killSync(): void {
    this.#signalGroup('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Stops the server and deletes its directory. */
  async destroy(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Polls `probe` until it resolves true, the process dies, or `timeoutMs` passes. */
export async function waitUntilReady(
  proc: ServerProcess,
  probe: () => Promise<boolean>,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (!proc.running) {
      throw new TestkitError(
        'ERR_OMS_TESTKIT_SERVER_START',
        `@oms/testkit: ${proc.name} exited during startup. Its log (${proc.logFile}) ends with:\n${proc.logTail()}`,
      );
    }
    try {
      if (await probe()) return;
    } catch (e) {
      lastError = e;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await proc.kill();
  throw new TestkitError(
    'ERR_OMS_TESTKIT_SERVER_START',
    `@oms/testkit: ${proc.name} did not become ready within ${timeoutMs} ms. Log tail:\n${proc.logTail()}`,
    { cause: lastError },
  );
}
