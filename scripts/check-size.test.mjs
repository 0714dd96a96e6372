import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkFile, MAX_FILE_LINES, MAX_FUNCTION_LINES } from './check-size.mjs';

const body = (n) => Array.from({ length: n }, (_, i) => `  const v${i} = ${i};`).join('\n');
const fn = (name, lines) => `export function ${name}() {\n${body(lines - 2)}\n}\n`;

test('a function at the limit passes and one line more fails, with its name and length', () => {
  assert.deepEqual(checkFile('a.ts', fn('ok', MAX_FUNCTION_LINES)).problems, []);
  const { problems } = checkFile('a.ts', fn('tooLong', MAX_FUNCTION_LINES + 1));
  assert.equal(problems.length, 1);
  assert.match(problems[0], /^a\.ts:1 tooLong: 81 lines/);
});

test('a closure counts whole: methods of the object a factory returns are part of the factory', () => {
  const half = Math.floor(MAX_FUNCTION_LINES / 2);
  const text = `export const make = () => {\n  return {\n    a() {\n${body(half)}\n    },\n    b() {\n${body(half)}\n    },\n  };\n};\n`;
  const { problems } = checkFile('f.ts', text);
  assert.equal(problems.length, 1);
  assert.match(problems[0], /f\.ts:1 make:/);
});

test('a `// size:` reason on the line above excuses a function and is reported', () => {
  const r = checkFile(
    's.ts',
    `// size: the Lua script is one literal\n${fn('script', MAX_FUNCTION_LINES + 5)}`,
  );
  assert.deepEqual(r.problems, []);
  assert.equal(r.excused.length, 1);
  assert.match(r.excused[0], /the Lua script is one literal/);
});

test('files over the line limit fail, except types.ts', () => {
  const long = `${body(MAX_FILE_LINES + 1)}\n`;
  assert.match(checkFile('src/big.ts', long).problems[0] ?? '', /451 lines \(max 450\)/);
  assert.deepEqual(checkFile('src/types.ts', long).problems, []);
  assert.deepEqual(checkFile('src/at-limit.ts', `${body(MAX_FILE_LINES)}\n`).problems, []);
});
