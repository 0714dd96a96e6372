import { type ChildProcess, spawn } from 'node:child_process';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { abortError, type BackupErrorCode, OmsBackupError } from '../errors.js';

/** A running pg_dump/pg_restore: its stdout, and `done`, which settles once it exited. */
export interface ToolRun {
  readonly child: ChildProcess;
  readonly stdout: Readable | null;
  readonly done: Promise<void>;
  kill(): void;
}

const TAIL = 4096;

/** Keeps the last 4 KB of stderr for the error message, without the lines `onLine` takes as progress. */
function tail(child: ChildProcess, onLine?: (line: string) => boolean): () => string {
  let kept = '';
  let partial = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => {
    if (!onLine) {
      kept = (kept + d).slice(-TAIL);
      return;
    }
    const lines = (partial + d).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) if (!onLine(line)) kept = `${kept}${line}\n`.slice(-TAIL);
  });
  return () => kept + partial;
}

/**
 * Spawns a client tool. Abort kills it (SIGTERM, then SIGKILL after 2 s); a non-zero exit rejects with `code`
 * and the tail of stderr, which never holds the password because the password is never on argv.
 */
export function runTool(
  file: string,
  args: string[],
  o: {
    env: NodeJS.ProcessEnv;
    signal: AbortSignal;
    code: BackupErrorCode;
    stdin?: AsyncIterable<Uint8Array>;
    stdout?: boolean;
    /** Hears each complete line of stderr (`--verbose` progress); true keeps it out of the error message. */
    onLine?: (line: string) => boolean;
  },
): ToolRun {
  const child = spawn(file, args, {
    env: o.env,
    stdio: [o.stdin ? 'pipe' : 'ignore', o.stdout ? 'pipe' : 'ignore', 'pipe'],
  });
  const stderr = tail(child, o.onLine);
  let escalate: ReturnType<typeof setTimeout> | undefined;
  const kill = () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    escalate ??= setTimeout(() => child.kill('SIGKILL'), 2_000);
  };
  const onAbort = () => kill();
  o.signal.addEventListener('abort', onAbort, { once: true });
  const name = file.split('/').pop() ?? file;
  const done = new Promise<void>((resolve, reject) => {
    child.once('error', (e) =>
      reject(
        new OmsBackupError(
          'ERR_OMS_BACKUP_BINARY_NOT_FOUND',
          `${name} could not start: ${e.message}`,
          false,
          { cause: e },
        ),
      ),
    );
    child.once('close', (exit, sig) => {
      if (escalate) clearTimeout(escalate);
      o.signal.removeEventListener('abort', onAbort);
      if (o.signal.aborted) reject(abortError(o.signal, name));
      else if (exit === 0) resolve();
      else {
        const why = stderr().trim().split('\n').slice(-3).join(' | ') || `exit ${exit ?? sig}`;
        reject(new OmsBackupError(o.code, `${name} failed: ${why}`, o.code === 'ERR_OMS_BACKUP_DUMP_FAILED'));
      }
    });
  });
  let feedError: unknown;
  if (o.stdin && child.stdin) {
    // A tool that exits early closes its stdin (EPIPE); its exit status then says why.
    pipeline(Readable.from(o.stdin), child.stdin).catch((e: unknown) => {
      feedError = e;
      kill();
    });
  }
  const settled = done.then(
    () => {
      if (feedError) throw o.signal.aborted ? abortError(o.signal, name) : feedError;
    },
    (e: unknown) => {
      if (o.signal.aborted) throw abortError(o.signal, name);
      // An input stream that failed (a chunk that did not authenticate) is the real cause, not the killed tool.
      if (feedError && (feedError as { code?: string }).code !== 'EPIPE') throw feedError;
      throw e;
    },
  );
  return { child, stdout: child.stdout, done: settled, kill };
}
