import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { buildIfStale } from '../support/global-setup';

/** Brings dist/ up to date and the local stack up, once for the whole run (a no-op when it is already up). */
export default function globalSetup(): void {
  buildIfStale();
  const repo = path.resolve(__dirname, '..', '..');
  execFileSync('bash', [path.join(repo, 'scripts', 'stack.sh'), 'up'], {
    cwd: repo,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}
