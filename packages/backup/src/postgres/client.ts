import type pg from 'pg';
import { abortError, OmsBackupError } from '../errors.js';
import type { ConnInfo } from './conninfo.js';

/** A quoted SQL identifier. */
export const quoteIdent = (s: string): string => `"${s.replace(/"/g, '""')}"`;

async function connect(c: ConnInfo, signal: AbortSignal): Promise<pg.Client> {
  let mod: typeof import('pg');
  try {
    mod = await import('pg');
  } catch (e) {
    throw new OmsBackupError(
      'ERR_OMS_BACKUP_MISSING_PEER',
      "postgresSource needs the 'pg' package: npm i pg",
      false,
      { cause: e },
    );
  }
  const Client = (mod.default ?? mod).Client;
  const client = new Client({ connectionString: c.url, connectionTimeoutMillis: 30_000 });
  client.on('error', () => {});
  const onAbort = () => void client.end().catch(() => {});
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    await client.connect();
  } catch (e) {
    await client.end().catch(() => {});
    if (signal.aborted) throw abortError(signal, 'connecting');
    throw new OmsBackupError(
      'ERR_OMS_BACKUP_CONNECTION',
      `cannot connect to ${c.safeUrl}: ${(e as Error).message}. Check host, port, database, user and password (PGPASSWORD or ~/.pgpass)`,
      true,
      { cause: e },
    );
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
  return client;
}

/** Runs `fn` on a fresh connection; aborting the signal ends the connection, which fails the query. */
export async function withClient<T>(
  c: ConnInfo,
  signal: AbortSignal,
  fn: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = await connect(c, signal);
  const onAbort = () => void client.end().catch(() => {});
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await fn(client);
  } catch (e) {
    if (signal.aborted) throw abortError(signal, 'the query');
    throw e;
  } finally {
    signal.removeEventListener('abort', onAbort);
    await client.end().catch(() => {});
  }
}
