import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DuckDBInstance, version } from '@duckdb/node-api';
import { loadConfig } from '../../config/env';
import { extensionSettings } from '../../lake/extensions';

// Signatures are checked once per binary (lake/extensions.ts): a directory of hard links to the real binaries, a
// binary whose bytes changed, and a binary that is not signed.
const real = loadConfig({}).duckdb.extensionDir!;
const platformDir = (root: string): string => {
  const base = path.join(root, version());
  return path.join(base, fs.readdirSync(base)[0]);
};

describe('extension signatures checked once per binary', () => {
  let dir: string;
  let plat: string;
  const settings = (): Promise<Record<string, string>> =>
    extensionSettings(loadConfig({ CPA_DUCKDB_EXTENSION_DIR: dir }));

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cpa-ext-'));
    const from = platformDir(real);
    plat = path.join(dir, version(), path.basename(from));
    fs.mkdirSync(plat, { recursive: true });
    for (const name of ['ducklake', 'sqlite_scanner']) {
      fs.linkSync(path.join(from, `${name}.duckdb_extension`), path.join(plat, `${name}.duckdb_extension`));
    }
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('the first instance checks and records; later ones load without the check, and the loads work', async () => {
    expect(fs.existsSync(path.join(dir, '.cpa-verified.json'))).toBe(false);
    const first = await settings();
    expect(first.allow_unsigned_extensions).toBe('true');
    const stamp = JSON.parse(fs.readFileSync(path.join(dir, '.cpa-verified.json'), 'utf8'));
    expect(Object.keys(stamp).sort()).toEqual([
      path.relative(dir, path.join(plat, 'ducklake.duckdb_extension')),
      path.relative(dir, path.join(plat, 'sqlite_scanner.duckdb_extension')),
    ]);
    const db = await DuckDBInstance.create(':memory:', await settings());
    const conn = await db.connect();
    await conn.run('load ducklake');
    await conn.run('load sqlite_scanner');
    const rows = (
      await conn.runAndReadAll(
        `select extension_name from duckdb_extensions() where loaded and extension_name in ('ducklake', 'sqlite_scanner')`,
      )
    ).getRowObjects();
    expect(rows).toHaveLength(2);
    conn.closeSync();
    db.closeSync();
  });

  test('a binary changed after its check is checked again, and a bad signature keeps every check on', async () => {
    expect((await settings()).allow_unsigned_extensions).toBe('true');
    // Same name, other bytes (a tampered or half-copied file): not the recorded binary, and its signature fails.
    const target = path.join(plat, 'sqlite_scanner.duckdb_extension');
    const bytes = fs.readFileSync(target);
    fs.rmSync(target);
    bytes[Math.floor(bytes.length / 2)] ^= 0xff;
    fs.writeFileSync(target, bytes);
    const after = await settings();
    expect(after.allow_unsigned_extensions).toBeUndefined();
    expect(after.extension_directory).toBe(dir);
    const stamp = JSON.parse(fs.readFileSync(path.join(dir, '.cpa-verified.json'), 'utf8'));
    expect(stamp[path.relative(dir, target)].ino).not.toBe(fs.statSync(target).ino);
    // With the check on, DuckDB refuses the tampered binary instead of loading it.
    const db = await DuckDBInstance.create(':memory:', after);
    const conn = await db.connect();
    await expect(conn.run('load sqlite_scanner')).rejects.toThrow(/signature|invalid|metadata/i);
    conn.closeSync();
    db.closeSync();
  });

  test('an unsigned file that is not an extension never turns the check off', async () => {
    fs.writeFileSync(path.join(plat, 'evil.duckdb_extension'), Buffer.alloc(4096, 7));
    expect((await settings()).allow_unsigned_extensions).toBeUndefined();
    expect((await settings()).allow_unsigned_extensions).toBeUndefined();
  });

  test('no extension directory, no settings; an empty one, every check on', async () => {
    expect(
      await extensionSettings({ ...loadConfig({}), duckdb: { ...loadConfig({}).duckdb, extensionDir: undefined } }),
    ).toEqual({});
    fs.rmSync(path.join(dir, version()), { recursive: true });
    expect((await settings()).allow_unsigned_extensions).toBeUndefined();
  });
});
