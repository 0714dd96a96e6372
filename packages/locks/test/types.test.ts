import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

// Type tests: files under test/types compile the way a user's project does (strict,
// exactOptionalPropertyTypes, nodenext), so a structural type that only fits a lax config fails here.
const file = (name: string) => fileURLToPath(new URL(`./types/${name}`, import.meta.url));

function diagnostics(files: string[]): string[] {
  const program = ts.createProgram(files, {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ['lib.es2023.d.ts'],
    types: ['node'],
    strict: true,
    exactOptionalPropertyTypes: true,
    noUncheckedIndexedAccess: true,
    skipLibCheck: true,
    noEmit: true,
  });
  return ts
    .getPreEmitDiagnostics(program)
    .map(
      (d) =>
        `${d.file?.fileName ?? ''}: TS${d.code}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`,
    );
}

describe('types under exactOptionalPropertyTypes', () => {
  it('a pg.Pool is a PgPoolLike and a pg.PoolClient is a PgClientLike', { timeout: 300_000 }, () => {
    expect(diagnostics([file('pg-structural.ts')])).toEqual([]);
  });
});
