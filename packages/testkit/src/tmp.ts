import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Every server the testkit starts lives under this root, so `pgrep -f oms-testkit` finds any survivor. */
export function testkitRoot(): string {
  return process.env.OMS_TESTKIT_TMPDIR ?? join(tmpdir(), 'oms-testkit');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Pids of processes whose command line mentions `needle` (read from /proc, Linux only). */
export function pidsMentioning(needle: string): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmd.includes(needle)) out.push(pid);
    } catch {
      // the process exited while we looked
    }
  }
  return out;
}

let swept = false;

/**
 * Removes what a crashed run left behind: directories whose owner process is gone, and any server still
 * running from them. Parent-death signals make survivors unlikely; this is the second line of defence.
 */
export function sweepStale(): void {
  if (swept) return;
  swept = true;
  const root = testkitRoot();
  if (!existsSync(root)) return;
  for (const name of readdirSync(root)) {
    const dir = join(root, name);
    let owner = 0;
    try {
      owner = Number(readFileSync(join(dir, 'owner.pid'), 'utf8'));
    } catch {
      // no owner file: a directory being created right now, or not ours; leave it
      continue;
    }
    if (owner > 0 && alive(owner)) continue;
    for (const pid of pidsMentioning(dir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A fresh directory under the testkit root, stamped with this process as its owner. */
export function makeServerDir(kind: string): string {
  const root = testkitRoot();
  mkdirSync(root, { recursive: true, mode: 0o755 });
  sweepStale();
  const dir = mkdtempSync(join(root, `${kind}-`));
  writeFileSync(join(dir, 'owner.pid'), String(process.pid));
  return dir;
}

const exitDirs = new Set<string>();

/** Deletes `dir` when this process exits normally (a crash leaves it to `sweepStale`). */
export function removeOnExit(dir: string): void {
  if (exitDirs.size === 0) {
    process.on('exit', () => {
      for (const d of exitDirs) rmSync(d, { recursive: true, force: true });
    });
  }
  exitDirs.add(dir);
}
