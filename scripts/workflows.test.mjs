import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from './packages.mjs';

const dir = join(repoRoot, '.github', 'workflows');
const workflows = readdirSync(dir).filter((f) => f.endsWith('.yml'));
const validator = join(repoRoot, 'node_modules', '.bin', 'action-validator');

test('there is a CI and a release workflow', () => {
  assert.deepEqual(workflows.sort(), ['ci.yml', 'release.yml']);
});

for (const file of workflows) {
  const text = readFileSync(join(dir, file), 'utf8');

  test(`${file} validates against the GitHub Actions schema`, () => {
    // action-validator exits non-zero and prints the schema errors on an invalid file.
    execFileSync(validator, [join(dir, file)], { stdio: 'pipe' });
  });

  test(`${file} grants nothing at the top level and pins every action by commit`, () => {
    assert.match(text, /^permissions: \{\}$/m);
    const uses = [...text.matchAll(/uses: (\S+)/g)].map((m) => m[1]);
    assert.ok(uses.length > 0);
    for (const u of uses) assert.match(u, /^[\w.-]+\/[\w.-]+@[0-9a-f]{40}$/, `${u} is not pinned by SHA`);
  });
}

test('only the release job may mint an OIDC token, for npm provenance', () => {
  for (const file of workflows) {
    const text = readFileSync(join(dir, file), 'utf8');
    const grants = text.match(/id-token: write/g) ?? [];
    assert.equal(grants.length, file === 'release.yml' ? 1 : 0, file);
  }
  assert.match(readFileSync(join(dir, 'release.yml'), 'utf8'), /NPM_CONFIG_PROVENANCE: "true"/);
});

test('an invalid workflow is refused, so the validation above can fail', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'oms-workflow-'));
  try {
    const bad = join(tmp, 'bad.yml');
    writeFileSync(bad, 'name: x\non: push\njobs:\n  a:\n    runs-on: 3\n    stepz: []\n');
    assert.throws(() => execFileSync(validator, [bad], { stdio: 'pipe' }));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
