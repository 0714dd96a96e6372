#!/usr/bin/env node
// Type-checks every README code block (```ts) and every JSDoc @example of a published package against its
// built output, the way a user would compile them: strict, exactOptionalPropertyTypes, and both nodenext and
// bundler resolution. The package imports itself by name (self-reference through its "exports"), so what is
// checked is what the tarball offers, not the sources.
// - A snippet with no import statement gets one that names every export of the package's entry points, so a
//   short @example need not repeat them; anything else it uses must be imported or declared in the snippet.
// - A README block tagged ```ts no-check is skipped (and counted), for the rare block that is not code to run.
// Usage: node scripts/check-examples.mjs <package dir> [...] | --all (every published package)
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { isMain, ownSources, packageArgs } from './packages.mjs';

/** README blocks: `{ code, line, skip }`, line being the 1-based line of the first code line. */
export function readmeBlocks(text) {
  const blocks = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(ts|typescript)\b(.*)$/.exec(lines[i]);
    if (!open) continue;
    const indent = open[1].length;
    const start = i + 1;
    let j = start;
    while (j < lines.length && !/^\s*```\s*$/.test(lines[j])) j++;
    blocks.push({
      code: lines
        .slice(start, j)
        .map((l) => l.slice(Math.min(indent, l.length - l.trimStart().length)))
        .join('\n'),
      line: start + 1,
      skip: /\bno-check\b/.test(open[3]),
    });
    i = j;
  }
  return blocks;
}

/** JSDoc @example bodies of one source file: `{ code, line }`. */
export function jsdocExamples(text) {
  const out = [];
  const re = /\/\*\*([\s\S]*?)\*\//g;
  for (const m of text.matchAll(re)) {
    const commentLine = text.slice(0, m.index).split('\n').length;
    const lines = m[1].split('\n').map((l) => l.replace(/^\s*\* ?/, ''));
    for (let i = 0; i < lines.length; i++) {
      if (!/^@example\b/.test(lines[i])) continue;
      const first = lines[i].replace(/^@example\s*/, '');
      const body = first ? [first] : [];
      let j = i + 1;
      while (j < lines.length && !/^@\w+/.test(lines[j])) body.push(lines[j++]);
      const code = body
        .filter((l) => !/^```/.test(l.trim()))
        .join('\n')
        .trim();
      if (code) out.push({ code, line: commentLine + i + 1 });
      i = j - 1;
    }
  }
  return out;
}

const hasImport = (code) => /^\s*import\s/m.test(code);

/** Names a snippet declares at its top level; the automatic import must not shadow them. */
function declaredNames(code) {
  const sf = ts.createSourceFile('snippet.ts', code, ts.ScriptTarget.ES2022, false, ts.ScriptKind.TS);
  const names = new Set();
  const bind = (n) => {
    if (ts.isIdentifier(n)) names.add(n.text);
    else for (const el of n.elements ?? []) if (!ts.isOmittedExpression(el)) bind(el.name);
  };
  for (const st of sf.statements) {
    if (ts.isVariableStatement(st)) for (const d of st.declarationList.declarations) bind(d.name);
    else if (st.name && ts.isIdentifier(st.name)) names.add(st.name.text);
  }
  return names;
}

/** Every name exported by the package's entry points, each with the specifier to import it from. */
function exportedNames(pkgDir, pkg) {
  const specs = Object.entries(pkg.exports ?? {})
    .filter(([sub, target]) => target !== null && sub !== './package.json' && !sub.includes('*'))
    .map(([sub, target]) => ({
      spec: sub === '.' ? pkg.name : `${pkg.name}/${sub.slice(2)}`,
      types: join(pkgDir, typeof target === 'string' ? target : target.types),
    }))
    .filter((e) => e.types.endsWith('.d.ts') && existsSync(e.types));
  const program = ts.createProgram(
    specs.map((e) => e.types),
    { noEmit: true, skipLibCheck: true },
  );
  const checker = program.getTypeChecker();
  const seen = new Map();
  for (const e of specs) {
    const sf = program.getSourceFile(e.types);
    const sym = sf && checker.getSymbolAtLocation(sf);
    if (!sym) continue;
    for (const x of checker.getExportsOfModule(sym)) {
      if (x.name !== 'default' && !seen.has(x.name)) seen.set(x.name, e.spec);
    }
  }
  return seen;
}

function prelude(names, own) {
  const bySpec = new Map();
  for (const [name, spec] of names) {
    if (!own.has(name)) bySpec.set(spec, [...(bySpec.get(spec) ?? []), name]);
  }
  return [...bySpec].map(([spec, list]) => `import { ${list.join(', ')} } from '${spec}';`).join('\n');
}

const MODES = {
  nodenext: { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext },
  bundler: { module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler },
};

/** Problems as `{ where, message }`, plus how many snippets were checked and skipped. */
export function checkExamples(pkgDir) {
  pkgDir = resolve(pkgDir);
  const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
  const snippets = [];
  let skipped = 0;
  const readme = join(pkgDir, 'README.md');
  if (existsSync(readme)) {
    readmeBlocks(readFileSync(readme, 'utf8')).forEach((b, i) => {
      if (b.skip) skipped++;
      else snippets.push({ ...b, origin: `README.md:${b.line} (block ${i + 1})` });
    });
  }
  if (existsSync(join(pkgDir, 'src'))) {
    for (const file of ownSources(join(pkgDir, 'src'))) {
      for (const ex of jsdocExamples(readFileSync(file, 'utf8'))) {
        snippets.push({ ...ex, origin: `${relative(pkgDir, file)}:${ex.line} (@example)` });
      }
    }
  }
  const names = exportedNames(pkgDir, pkg);
  // Inside the package, so its name resolves to itself; one directory per run, so runs never clash.
  const work = mkdtempSync(join(pkgDir, '.examples-'));
  const origins = new Map();
  snippets.forEach((s, i) => {
    const file = join(work, `e${i}.ts`);
    const pre = hasImport(s.code) ? '' : `${prelude(names, declaredNames(s.code))}\n`;
    writeFileSync(file, `${pre}${s.code}\nexport {};\n`);
    origins.set(file, { origin: s.origin, offset: pre ? pre.split('\n').length - 1 : 0 });
  });
  // One problem reported in both resolution modes is one problem: key it by place and message.
  const found = new Map();
  try {
    for (const [mode, resolution] of Object.entries(MODES)) {
      const program = ts.createProgram([...origins.keys()], {
        ...resolution,
        target: ts.ScriptTarget.ES2022,
        lib: ['lib.es2023.d.ts'],
        types: ['node'],
        strict: true,
        exactOptionalPropertyTypes: true,
        noUncheckedIndexedAccess: true,
        skipLibCheck: true,
        noEmit: true,
      });
      for (const d of ts.getPreEmitDiagnostics(program)) {
        const message = ts.flattenDiagnosticMessageText(d.messageText, '\n');
        const at = d.file && origins.get(resolve(d.file.fileName));
        const line =
          at && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line - at.offset : 0;
        const where = at ? `${at.origin} line ${line + 1}` : '(program)';
        const key = `${where}\0TS${d.code}: ${message}`;
        found.set(key, [...(found.get(key) ?? []), mode]);
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const problems = [...found].map(([key, modes]) => {
    const [where, message] = key.split('\0');
    return { where: `${where} (${modes.join(', ')})`, message };
  });
  return { problems, checked: snippets.length, skipped };
}

if (isMain(import.meta.url)) {
  const dirs = packageArgs('check-examples.mjs <package dir> [...] | --all');
  let failed = false;
  for (const dir of dirs) {
    const { name } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    const { problems, checked, skipped } = checkExamples(dir);
    for (const p of problems) console.error(`${name}: ${p.where}: ${p.message}`);
    if (problems.length > 0) failed = true;
    else
      console.log(
        `${name}: ${checked} examples compile (nodenext and bundler)${skipped ? `, ${skipped} marked no-check` : ''}`,
      );
  }
  process.exit(failed ? 1 : 0);
}
