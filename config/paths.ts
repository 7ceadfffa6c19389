import fs from 'node:fs';
import path from 'node:path';

/**
 * The repository root, found from this module's directory: the same answer when the code runs from the TypeScript
 * sources (`config/`) and from the compiled copy (`dist/config/`), which has no package.json of its own.
 */
function findRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) return path.resolve(from, '..');
  }
}

export const REPO_ROOT = findRoot(__dirname);
