import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { pathToFileURL } from 'node:url';

/** How a script run by {@link runAlone} ended. */
export interface AloneRun {
  /** Exit code; `13` means Node quit with a top-level await unsettled. `null` when killed. */
  code: number | null;
  /** `SIGKILL` when the script outlived `killAfterMs` (something kept it alive). */
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The last line of stdout parsed as JSON, or `undefined`. */
  out: unknown;
}

export interface RunAloneOptions {
  /** ES module source to run. Each `imports` entry is in scope as a namespace import. */
  body: string;
  /** Namespace name -> module URL, absolute path or specifier: `{ breaker: new URL('../dist/index.js', import.meta.url) }`. */
  imports?: Record<string, string | URL>;
  env?: Record<string, string>;
  /** A script still alive after this is killed: a ref'd background timer is a failure too. Default 60 s. */
  killAfterMs?: number;
  /** Sees stdout as it arrives, for tests that act when the script reaches a point. */
  onStdout?: (all: string) => void;
}

/**
 * Runs an ES module in a fresh `node` with nothing else alive, the way a CLI, a batch job or an exec probe runs
 * a package: it proves an awaited call keeps the process alive until it settles (exit 0, not 13) and that no
 * background timer keeps it alive afterwards. `print(v)` in the body writes one JSON line, read back as `out`.
 *
 * @example
 * const r = await runAlone({
 *   imports: { breaker: new URL('../dist/index.js', import.meta.url) },
 *   body: 'await breaker.retry({ maxAttempts: 2 }).execute(() => 1); print("ok");',
 * });
 * expect(r.code).toBe(0);
 */
export function runAlone(o: RunAloneOptions): Promise<AloneRun> {
  const dir = mkdtempSync(join(tmpdir(), 'oms-run-alone-'));
  const file = join(dir, 'script.mjs');
  const imports = Object.entries(o.imports ?? {}).map(([name, at]) => {
    // An absolute path becomes a file URL; a specifier (node:fs, a package name) stays as it is.
    const url = at instanceof URL ? at.href : isAbsolute(at) ? pathToFileURL(at).href : at;
    return `import * as ${name} from ${JSON.stringify(url)};`;
  });
  writeFileSync(
    file,
    [...imports, 'const print = (v) => process.stdout.write(JSON.stringify(v) + "\\n");', o.body, ''].join(
      '\n',
    ),
  );
  return new Promise<AloneRun>((resolve, reject) => {
    const child = spawn(process.execPath, [file], {
      env: { ...process.env, ...o.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
      o.onStdout?.(stdout);
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const killer = setTimeout(() => child.kill('SIGKILL'), o.killAfterMs ?? 60_000);
    child.on('error', (e) => {
      clearTimeout(killer);
      rmSync(dir, { recursive: true, force: true });
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(killer);
      rmSync(dir, { recursive: true, force: true });
      const last = stdout.trim().split('\n').at(-1);
      let out: unknown;
      try {
        out = last ? JSON.parse(last) : undefined;
      } catch {
        out = undefined;
      }
      resolve({ code, signal, stdout, stderr, out });
    });
  });
}

/**
 * A failure message for a run that did not end cleanly: exit code, signal and stderr.
 *
 * @example
 * expect(r.code, explainRun(r)).toBe(0);
 */
export function explainRun(r: AloneRun): string {
  const how = r.signal ? `killed by ${r.signal}: the script never exited` : `exit code ${r.code}`;
  return `${how}${r.code === 13 ? ' (13: Node quit with a top-level await unsettled)' : ''}; stderr: ${r.stderr.trim()}`;
}
