import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, rmdir, stat, unlink } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { abortError, OmsBackupError } from './errors.js';
import type { BackupStorage } from './types.js';
import { invalid } from './validate.js';

const TMP = '.tmp-';

function storageError(what: string, e: unknown): OmsBackupError {
  if (e instanceof OmsBackupError) return e;
  const code = (e as { code?: string }).code ?? 'unknown error';
  return new OmsBackupError(
    'ERR_OMS_BACKUP_STORAGE',
    `${what} failed (${code}): check that the directory exists, is writable and has free space`,
    code === 'ENOSPC' || code === 'EBUSY',
    { cause: e },
  );
}

/** fsync of a directory makes a rename durable; some file systems refuse it, which loses nothing more. */
async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r').catch(() => undefined);
  if (!fh) return;
  await fh.sync().catch(() => {});
  await fh.close();
}

/** Temp file, fsync, rename, fsync of the directory: `file` is either absent or complete. */
async function putFile(
  root: string,
  file: string,
  key: string,
  body: AsyncIterable<Uint8Array>,
  opts: { signal?: AbortSignal },
): Promise<{ bytes: number }> {
  const tmp = `${file}${TMP}${randomBytes(6).toString('hex')}`;
  let bytes = 0;
  try {
    await mkdir(dirname(file), { recursive: true });
  } catch (e) {
    throw storageError(`creating ${dirname(file)}`, e);
  }
  const fh = await open(tmp, 'wx').catch((e: unknown) => {
    throw storageError(`writing ${tmp}`, e);
  });
  try {
    for await (const chunk of body) {
      if (opts.signal?.aborted) throw abortError(opts.signal, `writing ${key}`);
      await fh.write(chunk);
      bytes += chunk.byteLength;
    }
    if (opts.signal?.aborted) throw abortError(opts.signal, `writing ${key}`);
    await fh.sync();
    await fh.close();
    await rename(tmp, file);
  } catch (e) {
    await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    // A directory made for this key alone goes too; one holding other files stays (rmdir refuses).
    if (dirname(file) !== root) await rmdir(dirname(file)).catch(() => {});
    throw e instanceof OmsBackupError || !(e as { code?: string }).code
      ? e
      : storageError(`writing ${key}`, e);
  }
  await syncDir(dirname(file));
  return { bytes };
}

/** Every complete file under root whose key starts with `prefix`, sorted; temp files never show. */
async function listKeys(root: string, prefix: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') return;
      throw storageError(`listing ${d}`, e);
    }
    for (const ent of entries) {
      const p = join(d, ent.name);
      if (ent.isDirectory()) await walk(p);
      else if (ent.isFile() && !ent.name.includes(TMP)) {
        const key = relative(root, p).split(sep).join('/');
        if (key.startsWith(prefix)) out.push(key);
      }
    }
  };
  await walk(root);
  return out.sort();
}

/** Removes temp files older than `olderThanMs` (interrupted writes) and the directories they leave empty. */
async function sweepTemps(root: string, olderThanMs: number): Promise<number> {
  let removed = 0;
  const cutoff = Date.now() - olderThanMs;
  const walk = async (d: string): Promise<void> => {
    const entries = await readdir(d, { withFileTypes: true }).catch(() => []);
    for (const ent of entries) {
      const p = join(d, ent.name);
      if (ent.isDirectory()) await walk(p);
      else if (ent.name.includes(TMP)) {
        const s = await stat(p).catch(() => undefined);
        if (
          s &&
          s.mtimeMs < cutoff &&
          (await unlink(p).then(
            () => true,
            () => false,
          ))
        )
          removed++;
      }
    }
    if (d !== root) await rmdir(d).catch(() => {});
  };
  await walk(root);
  return removed;
}

/**
 * Stores backups in a local directory (`<dir>/<id>/…`). Every file is written to a temp name, fsynced, renamed
 * into place and the directory fsynced, so a crash leaves either nothing or a complete file; temp files never
 * show in `list`.
 *
 * @example
 * import { fileStorage } from '@oms/backup';
 * const storage = fileStorage('/var/backups/app');
 */
export function fileStorage(dir: string): BackupStorage {
  if (typeof dir !== 'string' || dir.length === 0) {
    throw invalid(`fileStorage(dir) needs a directory path (got ${JSON.stringify(dir)})`);
  }
  const root = resolve(dir);
  const pathOf = (key: string): string => {
    const p = resolve(root, key);
    if (
      typeof key !== 'string' ||
      key.length === 0 ||
      key.includes(TMP) ||
      !p.startsWith(root + sep) ||
      key.split('/').some((s) => s === '' || s === '.' || s === '..')
    ) {
      throw invalid(`storage key must be a relative path inside the directory (got ${JSON.stringify(key)})`);
    }
    return p;
  };

  return {
    put: async (key, body, opts = {}) => putFile(root, pathOf(key), key, body, opts),

    async get(key, opts = {}) {
      const file = pathOf(key);
      try {
        const s = await stat(file);
        if (!s.isFile()) throw Object.assign(new Error('not a file'), { code: 'ENOENT' });
      } catch (e) {
        if ((e as { code?: string }).code === 'ENOENT') {
          throw new OmsBackupError('ERR_OMS_BACKUP_NOT_FOUND', `${key} is not in ${root}`, false, {
            cause: e,
          });
        }
        throw storageError(`reading ${key}`, e);
      }
      return createReadStream(file, {
        highWaterMark: 256 * 1024,
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
    },

    list: (prefix) => listKeys(root, prefix),

    sweep: (olderThanMs) => sweepTemps(root, olderThanMs),

    async delete(key) {
      const file = pathOf(key);
      await rm(file, { force: true }).catch((e: unknown) => {
        throw storageError(`deleting ${key}`, e);
      });
      // Drop the backup's directory once it is empty; a non-empty one stays.
      const parent = dirname(file);
      if (parent !== root) await rmdir(parent).catch(() => {});
    },
  };
}
