import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { findBinary } from './binaries.js';
import { TestkitError } from './errors.js';
import { freePort } from './ports.js';
import { ServerProcess, waitUntilReady } from './server-process.js';
import { makeServerDir } from './tmp.js';
import type { FaultHandle } from './types.js';

const run = promisify(execFile);

/** A Redis server the testkit started and owns. */
export interface RedisServer extends FaultHandle {
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly dir: string;
  /** Stop the server and delete its directory. */
  stop(): Promise<void>;
}

/** A Redis Cluster of masters only, each an owned `RedisServer`. */
export interface RedisClusterServer extends FaultHandle {
  readonly nodes: readonly RedisServer[];
  /** Seed addresses for `new Cluster(startupNodes)`. */
  readonly startupNodes: readonly { host: string; port: number }[];
  stop(): Promise<void>;
}

/** Sends one inline command over a raw socket; enough for readiness checks without a client library. */
export function rawRedisCommand(port: number, command: string, timeoutMs = 1_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: '127.0.0.1', port });
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`redis on ${port} did not answer '${command}' within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(`${command}\r\n`));
    sock.on('data', (d) => {
      buf += d;
      // bulk replies start with $<len>; wait for the whole payload
      const m = /^\$(\d+)\r\n/.exec(buf);
      if (m && buf.length < m[0].length + Number(m[1]) + 2) return;
      if (!buf.endsWith('\r\n')) return;
      clearTimeout(timer);
      sock.end();
      resolve(buf);
    });
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

async function startOne(kind: string, extraConf: string[]): Promise<RedisServer> {
  const bin = findBinary('redis-server');
  const dir = makeServerDir(kind);
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const conf = join(dir, 'redis.conf');
    writeFileSync(
      conf,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        'protected-mode no',
        'save ""',
        'appendonly no',
        `dir ${dir}`,
        'daemonize no',
        // Redis rewrites its process title; keep the config path in it so `pgrep -f <tempdir>` finds it.
        'proc-title-template "{title} {listen-addr} {server-mode} {config-file}"',
        ...extraConf,
        '',
      ].join('\n'),
    );
    const proc = new ServerProcess('redis-server', dir, bin, [conf]);
    proc.start();
    const probe = async () => (await rawRedisCommand(port, 'PING')).startsWith('+PONG');
    try {
      await waitUntilReady(proc, probe);
    } catch (e) {
      if (attempt < 3 && /Address already in use/i.test(proc.logTail())) continue;
      await proc.destroy();
      throw e;
    }
    return {
      url: `redis://127.0.0.1:${port}`,
      host: '127.0.0.1',
      port,
      dir,
      kill: () => proc.kill(),
      restart: async () => {
        await proc.stop('SIGTERM');
        proc.start();
        await waitUntilReady(proc, probe);
      },
      pause: () => proc.pause(),
      resume: () => proc.resume(),
      stop: () => proc.destroy(),
    };
  }
}

/**
 * Starts a throwaway Redis on a free loopback port. Nothing is persisted, so `restart()` comes back empty,
 * like a crashed cache node.
 *
 * @example
 * const server = await startRedis();
 * const redis = new Redis(server.url);
 */
export function startRedis(): Promise<RedisServer> {
  return startOne('redis', []);
}

/**
 * Starts `masters` Redis nodes with cluster mode on and joins them with `redis-cli --cluster create`
 * (no replicas). Resolves once every node reports `cluster_state:ok`.
 *
 * @example
 * const cluster = await startRedisCluster({ masters: 3 });
 * const redis = new Cluster(cluster.startupNodes);
 */
export async function startRedisCluster({
  masters = 3,
}: {
  masters?: number;
} = {}): Promise<RedisClusterServer> {
  if (!Number.isInteger(masters) || masters < 3) {
    throw new TestkitError(
      'ERR_OMS_TESTKIT_SERVER_START',
      `a Redis Cluster needs at least 3 masters (got ${masters})`,
    );
  }
  const cli = findBinary('redis-cli');
  const nodes: RedisServer[] = [];
  try {
    for (let i = 0; i < masters; i++) {
      nodes.push(
        await startOne('redis-cluster', [
          'cluster-enabled yes',
          'cluster-config-file nodes.conf',
          'cluster-node-timeout 3000',
          // with no replicas, a killed master must not take the whole cluster's writes down with it
          'cluster-require-full-coverage no',
        ]),
      );
    }
    await run(cli, [
      '--cluster',
      'create',
      ...nodes.map((n) => `127.0.0.1:${n.port}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    await waitForClusterOk(nodes, masters);
  } catch (e) {
    await Promise.all(nodes.map((n) => n.stop()));
    throw e;
  }
  return {
    nodes,
    startupNodes: nodes.map((n) => ({ host: n.host, port: n.port })),
    kill: async () => {
      await Promise.all(nodes.map((n) => n.kill()));
    },
    restart: async () => {
      await Promise.all(nodes.map((n) => n.restart()));
      await waitForClusterOk(nodes, masters);
    },
    pause: () => {
      for (const n of nodes) n.pause();
    },
    resume: () => {
      for (const n of nodes) n.resume();
    },
    stop: async () => {
      await Promise.all(nodes.map((n) => n.stop()));
    },
  };
}

async function waitForClusterOk(nodes: RedisServer[], masters: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const infos = await Promise.all(
      nodes.map((n) => rawRedisCommand(n.port, 'CLUSTER INFO').catch(() => '')),
    );
    if (infos.every((i) => i.includes('cluster_state:ok') && i.includes(`cluster_known_nodes:${masters}`)))
      return;
    if (Date.now() > deadline) {
      throw new TestkitError(
        'ERR_OMS_TESTKIT_SERVER_START',
        `@oms/testkit: the Redis Cluster did not reach cluster_state:ok within ${timeoutMs} ms`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
