#!/usr/bin/env node
// Fails on a source file over 450 lines (types.ts excepted: it is the package's public vocabulary, read by
// section) or a function over 80 lines, in each published package's src/. Big closures are where concerns mix:
// a factory returning an object of methods counts as one function, so splitting it is the fix, not hiding it.
// A function that must be long (a Lua script built in place, say) carries `// size: <why>` on the line above it;
// the reason is printed, so it stays visible.
// Usage: node scripts/check-size.mjs <package dir> [...] | --all
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import ts from 'typescript';
import { isMain, packageArgs, repoRoot } from './packages.mjs';

export const MAX_FILE_LINES = 450;
export const MAX_FUNCTION_LINES = 80;

function sourceFiles(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts') && !name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const FUNCTION_KINDS = new Set([
  ts.SyntaxKind.FunctionDeclaration,
  ts.SyntaxKind.FunctionExpression,
  ts.SyntaxKind.ArrowFunction,
  ts.SyntaxKind.MethodDeclaration,
  ts.SyntaxKind.Constructor,
  ts.SyntaxKind.GetAccessor,
  ts.SyntaxKind.SetAccessor,
]);

function functionName(node) {
  if (node.name) return node.name.getText();
  if (node.kind === ts.SyntaxKind.Constructor) return 'constructor';
  const parent = node.parent;
  if (
    parent &&
    (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent))
  )
    return parent.name.getText();
  return '(anonymous)';
}

/** The `// size: why` on the line above `node`, or undefined. */
function sizeReason(sf, node) {
  const line = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
  const lines = sf.text.split('\n');
  // the comment may sit above the statement that holds the function (`const f = () => …`)
  for (let l = line - 1; l >= Math.max(0, line - 2); l--) {
    const m = /^\s*\/\/ size: (.+)$/.exec(lines[l] ?? '');
    if (m) return m[1];
  }
  return undefined;
}

/** `{ problems, excused }` for one source file. */
export function checkFile(file, text = readFileSync(file, 'utf8')) {
  const problems = [];
  const excused = [];
  const lineCount = text.endsWith('\n') ? text.split('\n').length - 1 : text.split('\n').length;
  if (basename(file) !== 'types.ts' && lineCount > MAX_FILE_LINES)
    problems.push(`${file}: ${lineCount} lines (max ${MAX_FILE_LINES})`);
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const visit = (node) => {
    if (FUNCTION_KINDS.has(node.kind) && node.body) {
      const start = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
      const end = sf.getLineAndCharacterOfPosition(node.getEnd()).line;
      const length = end - start + 1;
      if (length > MAX_FUNCTION_LINES) {
        const where = `${file}:${start + 1} ${functionName(node)}: ${length} lines`;
        const why = sizeReason(sf, node);
        if (why) excused.push(`${where} (${why})`);
        else problems.push(`${where} (max ${MAX_FUNCTION_LINES})`);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return { problems, excused };
}

/** Every problem and excuse across the packages' src/ folders. */
export function checkPackages(dirs) {
  const problems = [];
  const excused = [];
  for (const dir of dirs) {
    for (const file of sourceFiles(join(dir, 'src'))) {
      const r = checkFile(relative(repoRoot, file), readFileSync(file, 'utf8'));
      problems.push(...r.problems);
      excused.push(...r.excused);
    }
  }
  return { problems, excused };
}

if (isMain(import.meta.url)) {
  const { problems, excused } = checkPackages(
    packageArgs('node scripts/check-size.mjs <package dir> [...] | --all'),
  );
  for (const e of excused) console.log(`long by design: ${e}`);
  for (const p of problems) console.error(p);
  if (problems.length) {
    console.error(
      `${problems.length} over the size limits: split by concern, or mark a function that must be long with \`// size: <why>\``,
    );
    process.exit(1);
  }
  console.log('every source file and function is within the size limits');
}
