import { invalid } from '../validate.js';

/** A connection string split into what may go on a command line and the password, which never does. */
export interface ConnInfo {
  /** The URL without the password: safe for argv and messages. */
  readonly safeUrl: string;
  readonly password: string | undefined;
  readonly database: string;
  /** The full URL, for the in-process driver only. */
  readonly url: string;
  withDatabase(name: string): ConnInfo;
}

export function parseConn(name: string, s: unknown): ConnInfo {
  if (typeof s !== 'string' || !/^postgres(ql)?:\/\//.test(s)) {
    throw invalid(
      `${name} must be a postgres:// URL such as postgres://user@host:5432/db (got ${typeof s === 'string' ? 'a string that is not one' : typeof s})`,
    );
  }
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw invalid(`${name} is not a valid postgres:// URL`);
  }
  return fromUrl(u);
}

function fromUrl(u: URL): ConnInfo {
  const full = new URL(u.href);
  const password =
    (u.password ? decodeURIComponent(u.password) : undefined) ?? u.searchParams.get('password') ?? undefined;
  const safe = new URL(u.href);
  safe.password = '';
  safe.searchParams.delete('password');
  const database =
    decodeURIComponent(u.pathname.replace(/^\//, '')) || decodeURIComponent(u.username) || 'postgres';
  return {
    safeUrl: safe.href,
    password,
    database,
    url: full.href,
    withDatabase(db) {
      const next = new URL(full.href);
      next.pathname = `/${encodeURIComponent(db)}`;
      return fromUrl(next);
    },
  };
}

/** The environment of a pg_dump/pg_restore child: the password goes here (never argv), and no prompt ever waits. */
export function toolEnv(c: ConnInfo): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.PGPASSWORD;
  if (c.password !== undefined) env.PGPASSWORD = c.password;
  return env;
}
