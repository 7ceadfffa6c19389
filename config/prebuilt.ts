import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './paths';

/**
 * The compiled copy of the code under dist/ (`npm run build`, which `npm ci` runs as `prepare`): the TypeScript as
 * CommonJS, so the CLI starts without a compiler, and the workflow code bundled once, so a worker starts without
 * webpack. It is used only while it is fresh: no source file (nor the lock file) is newer than the build's start.
 * Stale (a source was edited after the build) or absent, the code runs from the sources (tsx; webpack per process).
 */
export const DIST_DIR = path.join(REPO_ROOT, 'dist');
export const BUILD_STAMP = path.join(DIST_DIR, '.build-stamp');
export const WORKFLOW_BUNDLE = path.join(DIST_DIR, 'workflow-bundle.js');
/** Every directory the build compiles (config/build.json, shared with scripts/build.mjs). */
export const SOURCE_DIRS = (
  JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'config', 'build.json'), 'utf8')) as { sourceDirs: string[] }
).sourceDirs;

function newestSource(dir: string, bound: number): boolean {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'sql' && newestSource(p, bound)) return true;
    } else if (e.name.endsWith('.ts') && fs.statSync(p).mtimeMs > bound) return true;
  }
  return false;
}

let fresh: boolean | undefined;

/** Whether dist/ holds a build newer than every source file (checked once per process; a few milliseconds). */
export function prebuiltFresh(): boolean {
  if (fresh !== undefined) return fresh;
  if (process.env.CPA_PREBUILT === '0') return (fresh = false);
  try {
    const built = fs.statSync(BUILD_STAMP).mtimeMs;
    const lock = path.join(REPO_ROOT, 'package-lock.json');
    fresh =
      !(fs.existsSync(lock) && fs.statSync(lock).mtimeMs > built) &&
      !SOURCE_DIRS.some((d) => fs.existsSync(path.join(REPO_ROOT, d)) && newestSource(path.join(REPO_ROOT, d), built));
  } catch {
    fresh = false;
  }
  return fresh;
}

/** The prebuilt workflow bundle's path when it is fresh, else undefined (bundle at start-up instead). */
export function prebuiltWorkflowBundle(): string | undefined {
  return prebuiltFresh() && fs.existsSync(WORKFLOW_BUNDLE) ? WORKFLOW_BUNDLE : undefined;
}
