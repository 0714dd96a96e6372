import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { usePostgres } from '@oms/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase } from './fixtures/databases.js';

const db = usePostgres();
// Real pg_dump/pg_restore runs and child processes on a loaded 2-core machine; the bound is for a stuck test.
const HEAVY = 300_000;
const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'oms-backup-cli-'));
const keyFile = join(dir, 'key');
const key = randomBytes(32).toString('base64');
const secret = `pw-${randomBytes(4).toString('hex')}`;
let url: string;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function oms(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, [cli, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, OMS_BACKUP_DIR: join(dir, 'backups'), ...env },
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  child.stderr.on('data', (d) => {
    err += d;
  });
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, out, err })));
}

beforeAll(async () => {
  await db
    .pool({ max: 1 })
    .query(
      'create table t (id int primary key, v jsonb); insert into t select g, $${}$$ from generate_series(1, 100) g',
    );
  writeFileSync(keyFile, key);
  // The test server trusts loopback, so any password connects; what matters is that none is ever printed.
  const u = new URL(db.url);
  u.password = secret;
  url = u.toString();
}, HEAVY);

describe('oms-backup', () => {
  it(
    'create, list, verify, status, prune --dry-run and restore, with --json and exit 0, never printing secrets',
    async () => {
      const all: string[] = [];
      const run = async (args: string[], expectCode = 0) => {
        const r = await oms([...args, '--url', url, '--key-file', keyFile, '--json']);
        all.push(r.out, r.err);
        expect(r.code, `${args.join(' ')}: ${r.err}`).toBe(expectCode);
        return r.out ? JSON.parse(r.out) : undefined;
      };
      const m = await run(['create']);
      expect(m.id).toMatch(/^\d{8}T/);
      expect(m.encryption.keyId).toBe('default');
      expect((await run(['list'])).map((b: { id: string }) => b.id)).toEqual([m.id]);
      expect(await run(['verify'])).toMatchObject({ id: m.id });
      expect(await run(['status', '--rpo-ms', '3600000'])).toMatchObject({
        backups: 1,
        rpoBreached: false,
        lastVerified: { id: m.id },
      });
      expect(await run(['status', '--rpo-ms', '1'], 3)).toMatchObject({ rpoBreached: true });
      const plan = await run(['prune', '--dry-run', '--keep-last', '1']);
      expect(plan).toMatchObject({ dryRun: true, keep: [{ id: m.id }], delete: [] });
      const target = await freshDatabase(db.url);
      try {
        expect(await run(['restore', m.id, '--target-url', target.url])).toEqual({
          id: m.id,
          restored: true,
        });
        const again = await oms([
          'restore',
          m.id,
          '--url',
          url,
          '--key-file',
          keyFile,
          '--target-url',
          target.url,
        ]);
        expect(again.code).toBe(1);
        expect(again.err).toMatch(/ERR_OMS_BACKUP_TARGET_NOT_EMPTY/);
        all.push(again.out, again.err);
      } finally {
        await target.drop();
      }
      const text = await oms(['list', '--url', url]);
      expect(text.out).toContain(m.id);
      all.push(text.out, text.err);
      const joined = all.join('\n');
      expect(joined).not.toContain(secret);
      expect(joined).not.toContain(key);
    },
    HEAVY,
  );

  it(
    'exit 2 for bad usage, exit 1 for a failed operation, with the error code on stderr',
    async () => {
      const none = await oms([]);
      expect(none.code).toBe(2);
      expect(none.out).toMatch(/Usage: oms-backup/);
      const unknown = await oms(['frobnicate', '--url', db.url]);
      expect(unknown.code).toBe(2);
      expect(unknown.err).toMatch(/unknown command/);
      const badFlag = await oms(['list', '--bogus']);
      expect(badFlag.code).toBe(2);
      const noUrl = await oms(['create'], { DATABASE_URL: '', OMS_BACKUP_DATABASE_URL: '' });
      expect(noUrl.code).toBe(2);
      expect(noUrl.err).toMatch(/--url/);
      const missing = await oms(['verify', '20990101T000000000Z-deadbeef', '--url', db.url]);
      expect(missing.code).toBe(1);
      expect(missing.err).toMatch(/ERR_OMS_BACKUP_NOT_FOUND/);
      const down = await oms(['create', '--url', `postgres://postgres:${secret}@127.0.0.1:1/x`]);
      expect(down.code).toBe(1);
      expect(down.err).toMatch(/ERR_OMS_BACKUP_CONNECTION/);
      expect(down.err).not.toContain(secret);
    },
    HEAVY,
  );
});
