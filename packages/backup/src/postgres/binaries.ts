import { execFile } from 'node:child_process';
import { accessSync, constants, readdirSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { OmsBackupError } from '../errors.js';

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Debian and Ubuntu keep each major's client tools under /usr/lib/postgresql/<major>/bin; the newest wins. */
function versionedDirs(): string[] {
  try {
    return readdirSync('/usr/lib/postgresql')
      .filter((v) => /^\d+(\.\d+)?$/.test(v))
      .sort((a, b) => Number(b) - Number(a))
      .map((v) => join('/usr/lib/postgresql', v, 'bin'));
  } catch {
    return [];
  }
}

/**
 * Resolves `pg_dump`/`pg_restore`: an explicit path must exist; otherwise the newest /usr/lib/postgresql/<major>/bin,
 * then PATH.
 */
export function findTool(name: 'pg_dump' | 'pg_restore', explicit?: string): string {
  if (explicit !== undefined) {
    if (executable(explicit)) return explicit;
    throw new OmsBackupError(
      'ERR_OMS_BACKUP_BINARY_NOT_FOUND',
      `${name} was not found at ${explicit}: fix the path option or install the PostgreSQL client tools (apt-get install postgresql-client)`,
    );
  }
  const dirs = [...versionedDirs(), ...(process.env.PATH ?? '').split(delimiter).filter(Boolean)];
  for (const dir of dirs) {
    const file = join(dir, name);
    if (executable(file)) return file;
  }
  throw new OmsBackupError(
    'ERR_OMS_BACKUP_BINARY_NOT_FOUND',
    `${name} was not found under /usr/lib/postgresql/*/bin or on PATH: install the PostgreSQL client tools of your server's major version (apt-get install postgresql-client) or pass its path`,
  );
}

const majors = new Map<string, { stamp: string; major: number }>();

/**
 * The major version a tool reports (`pg_dump (PostgreSQL) 16.4` → 16), remembered per file while the file stays
 * the same (inode, size, mtime): asking costs a process start on every backup otherwise.
 */
export async function toolMajor(file: string, signal?: AbortSignal): Promise<number> {
  let stamp: string | undefined;
  try {
    const st = statSync(file);
    stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
  } catch {}
  const known = majors.get(file);
  if (stamp !== undefined && known?.stamp === stamp) return known.major;
  const major = await askMajor(file, signal);
  if (stamp !== undefined) majors.set(file, { stamp, major });
  return major;
}

function askMajor(file: string, signal?: AbortSignal): Promise<number> {
  return new Promise((resolve, reject) => {
    execFile(file, ['--version'], { timeout: 30_000, ...(signal ? { signal } : {}) }, (err, stdout) => {
      const m = /\(PostgreSQL\)\s+(\d+)/.exec(String(stdout));
      if (err || !m) {
        reject(
          new OmsBackupError(
            'ERR_OMS_BACKUP_BINARY_NOT_FOUND',
            `${file} --version did not report a PostgreSQL version: is it a pg_dump/pg_restore binary?`,
            false,
            { cause: err },
          ),
        );
      } else resolve(Number(m[1]));
    });
  });
}
