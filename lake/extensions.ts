import fs from 'node:fs';
import path from 'node:path';
import { DuckDBInstance, version } from '@duckdb/node-api';
import type { DuckDBConnection } from '@duckdb/node-api';
import type { Config } from '../config/env';
import { firstLine } from './errors';

/**
 * DuckDB extensions from the offline extension directory, and their signatures checked once per binary.
 *
 * DuckDB checks an extension's signature every time a process loads it: a SHA-256 over the whole binary (ducklake
 * and sqlite_scanner are ~35 MB each). Measured on the 2-core machine: loading both took 190–300 ms with the check
 * and 14 ms without, on every process start — the CLI, each worker, each test file — and at the start of every
 * embedded run. So the check runs once per binary: the first instance that finds a binary without a record checks
 * its signature (a LOAD by path in a throwaway instance) and records its size, mtime and inode in
 * `<extension dir>/.cpa-verified.json`; an instance is created with `allow_unsigned_extensions` only while every
 * binary of this DuckDB version in the directory matches its record. A replaced or new binary (tools.sh installing
 * another one) does not match, so it is checked before any instance loads it without the check.
 * What this gives up: a local user who can write the extension directory could replace a binary and its record
 * together — the same user can already write node_modules and the code itself (docs/decisions.md).
 */
const STAMP = '.cpa-verified.json';

interface Stamp {
  [file: string]: { size: number; mtimeMs: number; ino: number };
}

/**
 * The extension binaries this DuckDB can load from the directory: `v<version>/<platform>/*.duckdb_extension`
 * (DuckDB's layout; binaries of other versions are never loaded, so they are not checked).
 */
function extensionFiles(dir: string): string[] {
  const base = path.join(dir, version());
  const out: string[] = [];
  let platforms: fs.Dirent[];
  try {
    platforms = fs.readdirSync(base, { withFileTypes: true }).filter((e) => e.isDirectory());
  } catch {
    return out;
  }
  for (const p of platforms) {
    for (const e of fs.readdirSync(path.join(base, p.name), { withFileTypes: true })) {
      if (e.isFile() && e.name.endsWith('.duckdb_extension')) out.push(path.join(base, p.name, e.name));
    }
  }
  return out;
}

function readStamp(dir: string): Stamp {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, STAMP), 'utf8')) as Stamp;
  } catch {
    return {};
  }
}

function identity(file: string): Stamp[string] | undefined {
  try {
    const s = fs.statSync(file);
    return { size: s.size, mtimeMs: s.mtimeMs, ino: s.ino };
  } catch {
    return undefined;
  }
}

function matches(stamp: Stamp, dir: string, file: string): boolean {
  const rec = stamp[path.relative(dir, file)];
  const now = identity(file);
  return !!rec && !!now && rec.size === now.size && rec.mtimeMs === now.mtimeMs && rec.ino === now.ino;
}

/**
 * Checks the signature of every extension binary in the directory that has no matching record, in a throwaway
 * instance (a LOAD by path with the check on), and records those that pass. Returns whether all of them now match.
 */
async function verifyExtensions(dir: string): Promise<boolean> {
  const files = extensionFiles(dir);
  if (files.length === 0) return false;
  const stamp = readStamp(dir);
  const pending = files.filter((f) => !matches(stamp, dir, f));
  if (pending.length === 0) return true;
  const db = await DuckDBInstance.create(':memory:', { autoinstall_known_extensions: 'false' });
  const conn = await db.connect();
  let all = true;
  try {
    for (const file of pending) {
      const id = identity(file);
      try {
        await conn.run(`load '${file.replace(/'/g, "''")}'`);
      } catch {
        all = false; // the real load reports it, with how to fix it
        continue;
      }
      if (id) stamp[path.relative(dir, file)] = id;
    }
  } finally {
    conn.closeSync();
    db.closeSync();
  }
  const tmp = path.join(dir, `${STAMP}.${process.pid}.tmp`);
  try {
    fs.writeFileSync(tmp, JSON.stringify(stamp, null, 1));
    fs.renameSync(tmp, path.join(dir, STAMP));
  } catch {
    fs.rmSync(tmp, { force: true }); // a read-only directory: checked again by the next process
  }
  return all;
}

/** DuckDB settings for an instance that loads from the configured extension directory. */
export async function extensionSettings(config: Config): Promise<Record<string, string>> {
  const dir = config.duckdb.extensionDir;
  if (!dir) return {};
  return {
    extension_directory: dir,
    // Offline: a missing extension must fail fast instead of trying the network.
    autoinstall_known_extensions: 'false',
    ...((await verifyExtensions(dir)) ? { allow_unsigned_extensions: 'true' } : {}),
  };
}

/**
 * Loads an extension from the offline extension directory (or, without one, installs it from DuckDB's repository),
 * failing with one line that says how to provide it. `fail` makes the caller's error type.
 */
export async function loadExtension(
  conn: DuckDBConnection,
  config: Config,
  name: string,
  fail: (message: string) => Error,
): Promise<void> {
  const dir = config.duckdb.extensionDir;
  try {
    await conn.run(`load ${name}`);
    return;
  } catch (e) {
    if (dir) {
      throw fail(
        `DuckDB extension ${name} not found under CPA_DUCKDB_EXTENSION_DIR=${dir} ` +
          `(run \`bash scripts/tools.sh duckdb\`): ${firstLine(e)}`,
      );
    }
  }
  // Online machines: DuckDB downloads the signed extension from its repository once, then loads it from ~/.duckdb.
  try {
    await conn.run(`install ${name}`);
    await conn.run(`load ${name}`);
  } catch (e) {
    throw fail(
      `DuckDB extension ${name} could not be installed (offline? run \`bash scripts/tools.sh duckdb\` and set ` +
        `CPA_DUCKDB_EXTENSION_DIR): ${firstLine(e)}`,
    );
  }
}
