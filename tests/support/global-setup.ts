import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { REPO_ROOT } from '../../config/paths';
import { prebuiltFresh } from '../../config/prebuilt';
import { startSharedServer } from './shared-server';

/**
 * Brings dist/ up to date when a source is newer than the last build (`npm run build`), so every test's worker loads
 * the one prebuilt workflow bundle instead of running webpack, and every CLI the tests spawn starts from JavaScript
 * (config/prebuilt.ts).
 */
export function buildIfStale(): void {
  if (prebuiltFresh()) return;
  execFileSync(process.execPath, [path.join(REPO_ROOT, 'scripts', 'build.mjs')], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

/**
 * Once per jest run (quick, e2e and invariant configs): a fresh dist/ and the one Temporal dev server the test files
 * share (tests/support/shared-server.ts), stopped by tests/support/global-teardown.ts.
 */
export default async function globalSetup(): Promise<void> {
  buildIfStale();
  await startSharedServer();
}
