import { createHash } from 'node:crypto';
import { OmsBackupError } from './errors.js';
import type { ArtifactFile, BackupStorage, Manifest } from './types.js';

/** The manifest's file name inside a backup; its presence is what makes a backup exist. */
export const MANIFEST = 'manifest.json';

async function* once(b: Uint8Array): AsyncGenerator<Uint8Array> {
  yield b;
}

export async function readAll(src: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of src) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

const compactIso = (ms: number) => new Date(ms).toISOString().replace(/[-:.]/g, '');

/** A sortable, unique backup id: the compact ISO start time and 4 random bytes. */
export const newId = (startedMs: number, random: Buffer): string =>
  `${compactIso(startedMs)}-${random.toString('hex')}`;

/** When a backup with this id started (ids begin with a compact ISO time), or undefined for a foreign key. */
export function idTime(id: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z-/.exec(id);
  if (!m) return undefined;
  const t = Date.parse(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.${m[7]}Z`);
  return Number.isNaN(t) ? undefined : t;
}

/** The manifest's `sha256`: the archive file's own, or for several files the SHA-256 of their `name sha256` lines. */
export function archiveSha(files: ArtifactFile[]): string {
  if (files.length === 1) return (files[0] as ArtifactFile).sha256;
  return createHash('sha256')
    .update(files.map((f) => `${f.name} ${f.sha256}\n`).join(''))
    .digest('hex');
}

export function parseManifest(id: string, raw: Buffer): Manifest {
  let m: Manifest;
  try {
    m = JSON.parse(raw.toString('utf8')) as Manifest;
  } catch (e) {
    throw new OmsBackupError(
      'ERR_OMS_BACKUP_CORRUPT',
      `the manifest of backup ${id} is not valid JSON`,
      false,
      {
        cause: e,
      },
    );
  }
  if (m?.version !== 1 || m.id !== id || !Array.isArray(m.files) || !Array.isArray(m.tables)) {
    throw new OmsBackupError(
      'ERR_OMS_BACKUP_CORRUPT',
      `the manifest of backup ${id} is not a version 1 @oms/backup manifest for this id`,
    );
  }
  return m;
}

export function writeManifest(
  storage: BackupStorage,
  m: Manifest,
  signal?: AbortSignal,
): Promise<{ bytes: number }> {
  return storage.put(
    `${m.id}/${MANIFEST}`,
    once(Buffer.from(`${JSON.stringify(m, null, 2)}\n`)),
    signal ? { signal } : {},
  );
}

/** The manifest goes first, so a half-deleted backup is never listed as complete. */
export async function removeBackup(storage: BackupStorage, id: string): Promise<void> {
  const keys = await storage.list(`${id}/`);
  const ordered = [
    ...keys.filter((k) => k.endsWith(`/${MANIFEST}`)),
    ...keys.filter((k) => !k.endsWith(`/${MANIFEST}`)),
  ];
  for (const k of ordered) await storage.delete(k);
}
