import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { PGlite } from '@electric-sql/pglite';

/** Where the embedded database of a DATA_DIR lives. */
export const pgliteDir = (dataDir: string): string => join(dataDir, 'pg');

/**
 * Opens the embedded database of `dataDir` (`<dataDir>/pg`, created on first run). It imports nothing but
 * PGlite, so the process entry can start it before it loads the rest of the app: opening compiles PGlite's
 * WebAssembly and reads its files, which then overlaps with loading the app's modules.
 *
 * @example
 * const pglite = await openPglite('./.data');
 */
export async function openPglite(dataDir: string): Promise<PGlite> {
  const dir = pgliteDir(dataDir);
  await mkdir(dir, { recursive: true });
  const { PGlite } = await import('@electric-sql/pglite');
  return PGlite.create(dir);
}
