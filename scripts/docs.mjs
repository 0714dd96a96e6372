#!/usr/bin/env node
// Builds the API reference with TypeDoc: one site per published package under docs/api/<name>/, from the same
// entry points its "exports" publish, with each export's JSDoc and @example rendered. Any TypeDoc warning fails
// the build, and so does an export without JSDoc and an @example (scripts/check-docs.mjs).
// Usage: node scripts/docs.mjs [--check]   (--check validates without writing the site)
import { rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Application, LogLevel } from 'typedoc';
import { sourceEntries, undocumented } from './check-docs.mjs';
import { publishedPackages, readPackage, repoRoot } from './packages.mjs';

const check = process.argv.includes('--check');
const outRoot = join(repoRoot, 'docs', 'api');
let failed = false;
if (!check) rmSync(outRoot, { recursive: true, force: true });

for (const dir of publishedPackages()) {
  const pkg = readPackage(dir);
  const missing = undocumented(dir);
  for (const m of missing)
    console.error(
      `${pkg.name}: ${m.name} (${m.subpath}) at ${m.where} has no JSDoc description with an @example`,
    );
  if (missing.length) failed = true;

  const app = await Application.bootstrapWithPlugins({
    name: pkg.name,
    entryPoints: sourceEntries(dir).map((e) => e.file),
    tsconfig: join(dir, 'tsconfig.build.json'),
    readme: join(dir, 'README.md'),
    out: join(outRoot, basename(dir)),
    excludePrivate: true,
    excludeInternal: true,
    disableSources: true,
    treatWarningsAsErrors: true,
    logLevel: LogLevel.Warn,
    validation: { notExported: true, invalidLink: true, notDocumented: false },
    highlightLanguages: [
      'typescript',
      'ts',
      'javascript',
      'js',
      'json',
      'sh',
      'bash',
      'sql',
      'yaml',
      'http',
      'text',
    ],
  });
  const project = await app.convert();
  if (project) {
    app.validate(project);
    if (!check && app.logger.errorCount === 0 && app.logger.warningCount === 0)
      await app.generateDocs(project, app.options.getValue('out'));
  }
  if (!project || app.logger.errorCount > 0 || app.logger.warningCount > 0) {
    console.error(`${pkg.name}: TypeDoc reported problems`);
    failed = true;
  } else
    console.log(
      `${pkg.name}: ${check ? 'API reference validates' : `API reference in docs/api/${basename(dir)}/`}`,
    );
}
process.exit(failed ? 1 : 0);
