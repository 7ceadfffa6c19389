import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { isS3 } from './storage';

/**
 * Operator mistakes that no retry can fix (SPEC §12): a lake that is a file, cannot be created, is not writable or
 * sits inside the immutable landing; a landing that does not exist or holds none of the expected sources. The CLI
 * runs these checks before it starts anything, and the activities run them again, so a workflow started some other
 * way fails at once (non-retryable, types `LakeUnusable` / `LandingUnusable`) instead of retrying for hours.
 */

/** The lake root cannot be used as given (the message names the path and why). */
export class LakeUnusableError extends Error {
  override name = 'LakeUnusable';
}

/** The landing root cannot be used as given (the message names the path and why). */
export class LandingUnusableError extends Error {
  override name = 'LandingUnusable';
}

/** The sources a landing holds (SPEC §1): the seven CSV snapshots and the events directory. */
export const LANDING_CSV_FILES = [
  'customers_orgs.csv',
  'users.csv',
  'resources.csv',
  'billing_monthly.csv',
  'support_tickets.csv',
  'marketing_touches.csv',
  'nps_surveys.csv',
] as const;
export const LANDING_EVENTS_DIR = 'usage_events_stream';

const errno = (e: unknown): string | undefined => (e as NodeJS.ErrnoException)?.code;

/** Errors that say "this path can never be written here"; anything else (ENOSPC, EIO, …) may pass and is retried. */
const PERMANENT = new Set(['ENOTDIR', 'EEXIST', 'EROFS', 'EACCES', 'EPERM', 'ENOENT', 'ELOOP', 'ENAMETOOLONG']);

/**
 * The path with symlinks resolved as far as it exists (the rest appended): where a write would really land, even for
 * a lake that does not exist yet.
 */
function realPathOf(p: string): string {
  const rest: string[] = [];
  let cur = path.resolve(p);
  for (;;) {
    try {
      return path.join(fs.realpathSync(cur), ...rest.reverse());
    } catch {
      const parent = path.dirname(cur);
      if (parent === cur) return path.join(cur, ...rest.reverse());
      rest.push(path.basename(cur));
      cur = parent;
    }
  }
}

const within = (child: string, parent: string): boolean => child === parent || child.startsWith(parent + path.sep);

/** Refuses a lake equal to or inside the landing (after resolving links): the landing is immutable (SPEC §1). */
export function checkLakeOutsideLanding(lakeRoot: string, landingRoot: string): void {
  if (isS3(lakeRoot) !== isS3(landingRoot)) return;
  const inside = isS3(lakeRoot)
    ? `${lakeRoot.replace(/\/+$/, '')}/`.startsWith(`${landingRoot.replace(/\/+$/, '')}/`)
    : within(realPathOf(lakeRoot), realPathOf(landingRoot));
  if (inside) {
    throw new LakeUnusableError(
      `lake ${lakeRoot} is inside the landing ${landingRoot}: the landing is never written, put the lake elsewhere`,
    );
  }
}

/**
 * Makes sure a local lake root is a writable directory with its `_meta/` dir, creating missing directories one
 * level at a time (a recursive mkdir under /proc loops forever in Node). Throws {@link LakeUnusableError} naming the
 * path when it is a file, cannot be created or is not writable; other I/O errors are rethrown as they are.
 */
export async function prepareLocalLake(lakeRoot: string): Promise<void> {
  const full = path.resolve(lakeRoot);
  const unusable = (why: string): LakeUnusableError => new LakeUnusableError(`lake ${lakeRoot} ${why}`);
  const missing: string[] = [];
  let cur = full;
  for (;;) {
    const st = await fsp.stat(cur).catch((e: unknown) => {
      if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return undefined;
      throw e;
    });
    if (st) {
      if (!st.isDirectory()) {
        throw unusable(cur === full ? 'is not a directory' : `cannot be created: ${cur} is not a directory`);
      }
      break;
    }
    const parent = path.dirname(cur);
    if (parent === cur) break;
    missing.unshift(cur);
    cur = parent;
  }
  for (const dir of [...missing, path.join(full, '_meta')]) {
    try {
      await fsp.mkdir(dir);
    } catch (e) {
      if (errno(e) === 'EEXIST' && (await fsp.stat(dir)).isDirectory()) continue;
      if (PERMANENT.has(errno(e) ?? '')) throw unusable(`cannot be created (${errno(e)} at ${dir})`);
      throw e;
    }
  }
  try {
    // access(2) reports EROFS for a read-only mount even to root; EACCES for a directory the user may not write.
    await fsp.access(path.join(full, '_meta'), fs.constants.W_OK);
  } catch (e) {
    if (PERMANENT.has(errno(e) ?? '')) throw unusable(`is not writable (${errno(e)})`);
    throw e;
  }
}

/**
 * A local landing root must exist, be a directory and hold at least one expected source (a CSV snapshot or an
 * events file): a typo in `--landing` is an error, not an empty success.
 */
export async function checkLocalLanding(landingRoot: string): Promise<void> {
  const st = await fsp.stat(landingRoot).catch((e: unknown) => {
    if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return undefined;
    throw e;
  });
  if (!st) throw new LandingUnusableError(`landing ${landingRoot} does not exist`);
  if (!st.isDirectory()) throw new LandingUnusableError(`landing ${landingRoot} is not a directory`);
  if (LANDING_CSV_FILES.some((f) => fs.existsSync(path.join(landingRoot, f)))) return;
  const events = await fsp.opendir(path.join(landingRoot, LANDING_EVENTS_DIR)).catch(() => undefined);
  if (events) {
    try {
      for await (const ent of events) if (ent.name.endsWith('.jsonl')) return;
    } catch {
      /* unreadable: reported below as holding nothing */
    }
  }
  throw new LandingUnusableError(noSources(landingRoot));
}

export function noSources(landingRoot: string): string {
  return (
    `landing ${landingRoot} holds none of the expected sources ` +
    `(${LANDING_CSV_FILES.join(', ')}, ${LANDING_EVENTS_DIR}/*.jsonl)`
  );
}
