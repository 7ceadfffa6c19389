// `npm run build` (and `prepare`, which `npm ci` runs): compiles the TypeScript under the source directories to
// CommonJS under dist/ with swc, and bundles the workflow code once with the SDK's bundler, so the CLI starts from
// JavaScript and a worker starts without webpack (config/prebuilt.ts decides at run time whether dist/ is fresh).
// Type checking stays with `tsc` in `npm test`. Without the dev dependencies (`npm ci --omit=dev`) it builds nothing
// and the code runs from the sources through tsx.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
// Built beside dist/ and swapped in at the end, so a CLI starting meanwhile sees the old build or the new, whole.
const next = `${dist}.next-${process.pid}`;
let swc;
try {
  swc = require('@swc/core');
} catch {
  console.log('build: @swc/core is not installed (dev dependencies omitted); the CLI runs from the TypeScript sources');
  process.exit(0);
}

const { sourceDirs } = JSON.parse(fs.readFileSync(path.join(root, 'config', 'build.json'), 'utf8'));
const started = Date.now();
fs.rmSync(next, { recursive: true, force: true });

function sources(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...sources(p));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

// The CLI's modules import lazily: a module (zod, the Temporal SDK, DuckDB, the lake code) is loaded when a command
// first uses it, not at start-up, so `cpa --help` loads commander and little else.
const lazyDirs = ['cli'];
const importSources = (text) => [
  ...new Set([...text.matchAll(/^(?:import|export)\b[^;]*?\bfrom '([^']+)'/gms)].map((m) => m[1])),
];

const files = sourceDirs.flatMap((d) => sources(path.join(root, d)));
await Promise.all(
  files.map(async (file) => {
    const lazy = lazyDirs.includes(path.relative(root, file).split(path.sep)[0])
      ? importSources(fs.readFileSync(file, 'utf8'))
      : false;
    const { code } = await swc.transformFile(file, {
      swcrc: false,
      jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
      module: { type: 'commonjs', lazy },
    });
    const out = path.join(next, path.relative(root, file)).replace(/\.ts$/, '.js');
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, code);
  }),
);

const { bundleWorkflowCode } = require('@temporalio/worker');
const quiet = { log() {}, trace() {}, debug() {}, info() {}, warn: console.warn, error: console.error };
const { code } = await bundleWorkflowCode({ workflowsPath: path.join(root, 'workflows', 'index.ts'), logger: quiet });
fs.writeFileSync(path.join(next, 'workflow-bundle.js'), code);

// The stamp carries the build's start time: a source saved while the build ran makes the build stale, not fresh.
const stamp = path.join(next, '.build-stamp');
fs.writeFileSync(stamp, `${new Date(started).toISOString()}\n`);
fs.utimesSync(stamp, started / 1000, started / 1000);
fs.rmSync(dist, { recursive: true, force: true });
fs.renameSync(next, dist);
console.log(
  `build: ${files.length} modules and the workflow bundle in ${((Date.now() - started) / 1000).toFixed(1)}s → dist/`,
);
