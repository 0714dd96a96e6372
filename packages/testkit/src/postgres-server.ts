import { execFile } from 'node:child_process';
import { chownSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { findBinary } from './binaries.js';
import { TestkitError } from './errors.js';
import { freePort } from './ports.js';
import { type RunAs, ServerProcess, waitUntilReady } from './server-process.js';
import { makeServerDir, removeOnExit } from './tmp.js';
import type { FaultHandle } from './types.js';

const run = promisify(execFile);

/** A PostgreSQL server the testkit started and owns. */
export interface PostgresServer extends FaultHandle {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` */
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** Stop the server and delete its data directory. */
  stop(): Promise<void>;
}

/** PostgreSQL refuses to run as root, so as root we run it as the `postgres` user. */
function unprivilegedUser(): RunAs | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (!line) {
    throw new TestkitError(
      'ERR_OMS_TESTKIT_SERVER_START',
      "@oms/testkit: running as root, PostgreSQL needs an unprivileged user and there is no 'postgres' user. Create one (useradd postgres) or set OMS_TEST_DATABASE_URL.",
    );
  }
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

async function asUser(runAs: RunAs | undefined, bin: string, args: string[]): Promise<void> {
  if (runAs) {
    await run('setpriv', [
      '--reuid',
      String(runAs.uid),
      '--regid',
      String(runAs.gid),
      '--init-groups',
      '--',
      bin,
      ...args,
    ]);
  } else {
    await run(bin, args);
  }
}

// initdb costs about a second; a process that starts several servers copies one template instead.
let template: Promise<string> | undefined;

async function templateDir(runAs: RunAs | undefined): Promise<string> {
  template ??= (async () => {
    const initdb = findBinary('initdb');
    const dir = makeServerDir('pg-template');
    removeOnExit(dir);
    const data = join(dir, 'data');
    if (runAs) chownSync(dir, runAs.uid, runAs.gid);
    await asUser(runAs, initdb, [
      '-D',
      data,
      '-U',
      'postgres',
      '-A',
      'trust',
      '-E',
      'UTF8',
      '--locale=C',
      '--no-sync',
    ]);
    return data;
  })();
  template.catch(() => {
    template = undefined;
  });
  return template;
}

async function ready(port: number): Promise<boolean> {
  const client = new pg.Client({
    host: '127.0.0.1',
    port,
    user: 'postgres',
    database: 'postgres',
    connectionTimeoutMillis: 1_000,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * Starts a throwaway PostgreSQL on a free loopback port, in a temp directory, tuned for tests
 * (no fsync). Data survives `restart()` and `kill()` + `restart()` (crash recovery runs).
 *
 * @example
 * const server = await startPostgres();
 * const client = new pg.Client(server.url);
 */
export async function startPostgres(): Promise<PostgresServer> {
  const postgres = findBinary('postgres');
  const runAs = unprivilegedUser();
  const tpl = await templateDir(runAs);
  const dir = makeServerDir('pg');
  const data = join(dir, 'data');
  const sockets = join(dir, 'sockets');
  mkdirSync(sockets);
  if (runAs) {
    chownSync(dir, runAs.uid, runAs.gid);
    chownSync(sockets, runAs.uid, runAs.gid);
  }
  await run('cp', ['-a', tpl, data]);

  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const proc = new ServerProcess(
      'postgres',
      dir,
      postgres,
      [
        '-D',
        data,
        '-p',
        String(port),
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        `unix_socket_directories=${sockets}`,
        '-c',
        'fsync=off',
        '-c',
        'full_page_writes=off',
        '-c',
        'max_connections=400',
        '-c',
        'shared_buffers=32MB',
        '-c',
        'log_min_messages=warning',
      ],
      runAs,
    );
    proc.start();
    try {
      await waitUntilReady(proc, () => ready(port));
    } catch (e) {
      // Another process may have taken the port between freePort() and bind(); try a new one.
      if (attempt < 3 && /could not bind|Address already in use/i.test(proc.logTail())) continue;
      await proc.destroy();
      throw e;
    }
    const restart = async () => {
      await proc.stop('SIGINT');
      proc.start();
      await waitUntilReady(proc, () => ready(port));
    };
    return {
      url: `postgres://postgres@127.0.0.1:${port}/postgres`,
      port,
      dir,
      kill: () => proc.kill(),
      restart,
      pause: () => proc.pause(),
      resume: () => proc.resume(),
      stop: () => proc.destroy(),
    };
  }
}
