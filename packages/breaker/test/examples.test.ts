import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

// The repository's checkers, the same ones `pnpm check` runs (plain .mjs scripts, typed here).
const scripts = new URL('../../../scripts/', import.meta.url).href;
const { checkExamples } = (await import(`${scripts}check-examples.mjs`)) as {
  checkExamples(dir: string): { problems: { where: string; message: string }[]; checked: number };
};
const { checkReadme } = (await import(`${scripts}check-readmes.mjs`)) as {
  checkReadme(dir: string): string[];
};

const pkgDir = fileURLToPath(new URL('..', import.meta.url));

describe('what a user copies compiles as they write it', () => {
  it('every README block and @example compiles against the built package (strict, exactOptionalPropertyTypes, nodenext and bundler)', () => {
    const { problems, checked } = checkExamples(pkgDir);
    expect(checked).toBeGreaterThan(50);
    expect(problems.map((p) => `${p.where}: ${p.message}`)).toEqual([]);
  }, 120_000);

  it('the README carries no hand-copied figure, no link outside the package and no DESIGN.md citation', () => {
    expect(checkReadme(pkgDir)).toEqual([]);
  });

  it("a fallback's value stays in the pipeline's result type under a user's strict settings", () => {
    const file = fileURLToPath(new URL('./fixtures/fallback-types.ts', import.meta.url));
    const program = ts.createProgram([file], {
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      lib: ['lib.es2023.d.ts'],
      types: ['node'],
      strict: true,
      exactOptionalPropertyTypes: true,
      noUncheckedIndexedAccess: true,
      skipLibCheck: true,
      noEmit: true,
    });
    const mine = ts
      .getPreEmitDiagnostics(program)
      .filter((d) => d.file?.fileName === file)
      .map((d) => {
        const line =
          d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line + 1 : 0;
        return `line ${line}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
      });
    expect(mine).toEqual([]);
  }, 120_000);
});
