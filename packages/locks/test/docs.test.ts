import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

// What a user reads must be what they can use: every README block and every @example compiles against the
// built package as a user compiles it (strict, exactOptionalPropertyTypes, nodenext and bundler), and the
// README carries no hand-copied figure, no link outside the tarball and no citation of internal docs.
const pkgDir = fileURLToPath(new URL('..', import.meta.url));
const script = (name: string) =>
  pathToFileURL(fileURLToPath(new URL(`../../../scripts/${name}`, import.meta.url))).href;

describe('published docs', () => {
  it('every README block and @example compiles as a user writes it', { timeout: 600_000 }, async () => {
    const { checkExamples } = (await import(script('check-examples.mjs'))) as {
      checkExamples(dir: string): { problems: { where: string; message: string }[]; checked: number };
    };
    const { problems, checked } = checkExamples(pkgDir);
    expect(problems.map((p) => `${p.where}: ${p.message}`)).toEqual([]);
    expect(checked).toBeGreaterThan(20);
  });

  it('the README has no speed figure, relative link out of the package or DESIGN.md citation', async () => {
    const { checkReadme } = (await import(script('check-readmes.mjs'))) as {
      checkReadme(dir: string): string[];
    };
    expect(checkReadme(pkgDir)).toEqual([]);
  });
});
