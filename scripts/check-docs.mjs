#!/usr/bin/env node
// Fails on a public export without JSDoc or without an @example in it: every name a package's "exports" offer
// is followed to its declaration in src/, and that declaration's doc comment must carry both a description and
// an @example block. Types count too: a user reads an interface's docs as often as a function's.
// Usage: node scripts/check-docs.mjs <package dir> [...] | --all
import { existsSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { isMain, packageArgs, readPackage } from './packages.mjs';

/** The source entry behind each public subpath: dist/x/index.d.ts is built from src/x/index.ts. */
export function sourceEntries(pkgDir, pkg = readPackage(pkgDir)) {
  return Object.entries(pkg.exports ?? {})
    .filter(([sub, target]) => target !== null && sub !== './package.json' && !sub.includes('*'))
    .map(([sub, target]) => {
      const types = typeof target === 'string' ? target : target.types;
      const src = types.replace(/^\.\/dist\//, 'src/').replace(/\.d\.ts$/, '.ts');
      return { sub, file: join(pkgDir, src) };
    })
    .filter((e) => existsSync(e.file));
}

/** `{ name, subpath, where }` for every export whose declaration lacks a description or an @example. */
export function undocumented(pkgDir) {
  pkgDir = resolve(pkgDir);
  const entries = sourceEntries(pkgDir);
  const program = ts.createProgram(
    entries.map((e) => e.file),
    {
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      noEmit: true,
      skipLibCheck: true,
    },
  );
  const checker = program.getTypeChecker();
  const missing = [];
  for (const { sub, file } of entries) {
    const sf = program.getSourceFile(file);
    const mod = sf && checker.getSymbolAtLocation(sf);
    if (!mod) continue;
    for (const exported of checker.getExportsOfModule(mod)) {
      const target = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
      const decls = target.declarations ?? [];
      const documented = decls.some((d) => {
        const docs = ts.getJSDocCommentsAndTags(d).filter(ts.isJSDoc);
        const text = docs
          .map((j) => ts.getTextOfJSDocComment(j.comment) ?? '')
          .join('')
          .trim();
        const example = ts.getJSDocTags(d).some((t) => t.tagName.text === 'example');
        return text.length > 0 && example;
      });
      if (!documented) {
        const d = decls[0];
        const where = d
          ? `${relative(pkgDir, d.getSourceFile().fileName)}:${d.getSourceFile().getLineAndCharacterOfPosition(d.getStart()).line + 1}`
          : '(no declaration)';
        missing.push({ name: exported.name, subpath: sub, where });
      }
    }
  }
  return missing;
}

if (isMain(import.meta.url)) {
  const dirs = packageArgs('check-docs.mjs <package dir> [...] | --all');
  let failed = false;
  for (const dir of dirs) {
    const { name } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    const missing = undocumented(dir);
    for (const m of missing)
      console.error(
        `${name}: ${m.name} (${m.subpath}) at ${m.where} has no JSDoc description with an @example`,
      );
    if (missing.length) failed = true;
    else console.log(`${name}: every export has JSDoc with an @example`);
  }
  process.exit(failed ? 1 : 0);
}
