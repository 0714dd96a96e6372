import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fileStorage } from '../src/index.js';

const root = mkdtempSync(join(tmpdir(), 'oms-backup-fs-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(root, `s${++n}`);

async function* chunks(...parts: string[]) {
  for (const p of parts) yield Buffer.from(p);
}
async function text(src: AsyncIterable<Uint8Array>) {
  const parts: Buffer[] = [];
  for await (const c of src) parts.push(Buffer.from(c));
  return Buffer.concat(parts).toString();
}

describe('fileStorage', () => {
  it('stores, lists, streams back and deletes keys', async () => {
    const dir = fresh();
    const s = fileStorage(dir);
    expect(await s.put('b1/archive.dump', chunks('hello ', 'world'))).toEqual({ bytes: 11 });
    await s.put('b1/manifest.json', chunks('{}'));
    await s.put('b2/archive.dump', chunks('x'));
    expect(await s.list('')).toEqual(['b1/archive.dump', 'b1/manifest.json', 'b2/archive.dump']);
    expect(await s.list('b1/')).toEqual(['b1/archive.dump', 'b1/manifest.json']);
    expect(await text(await s.get('b1/archive.dump'))).toBe('hello world');
    await s.delete('b2/archive.dump');
    expect(existsSync(join(dir, 'b2'))).toBe(false);
    await expect(s.get('b2/archive.dump')).rejects.toMatchObject({ code: 'ERR_OMS_BACKUP_NOT_FOUND' });
  });

  it('a write that fails midway leaves neither the key nor a temp file, and an existing key untouched', async () => {
    const dir = fresh();
    const s = fileStorage(dir);
    await s.put('b/archive.dump', chunks('old'));
    async function* failing() {
      yield Buffer.from('partial');
      throw new Error('source died');
    }
    await expect(s.put('b/archive.dump', failing())).rejects.toThrow('source died');
    await expect(s.put('c/archive.dump', failing())).rejects.toThrow('source died');
    expect(readFileSync(join(dir, 'b/archive.dump'), 'utf8')).toBe('old');
    expect(readdirSync(dir, { recursive: true })).toEqual(['b', 'b/archive.dump']);
  });

  it('an aborted write is rejected and leaves nothing', async () => {
    const dir = fresh();
    const s = fileStorage(dir);
    const ac = new AbortController();
    async function* slow() {
      yield Buffer.from('a');
      ac.abort();
      yield Buffer.from('b');
    }
    await expect(s.put('b/archive.dump', slow(), { signal: ac.signal })).rejects.toMatchObject({
      code: 'ERR_OMS_BACKUP_ABORTED',
    });
    expect(await s.list('')).toEqual([]);
    expect(existsSync(join(dir, 'b'))).toBe(false);
  });

  it('refuses keys that leave the directory', async () => {
    const s = fileStorage(fresh());
    for (const key of ['../x', '/etc/passwd', 'a/../../x', '', 'a//b', 'a/.tmp-1']) {
      await expect(s.put(key, chunks('x'))).rejects.toMatchObject({ code: 'ERR_OMS_BACKUP_INVALID_OPTION' });
    }
  });
});
