import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { loadConfig } from '../../config/env';
import type { Config } from '../../config/env';
import { readManifest, registerView, stagingUri, tableUri } from '../../lake/catalog';
import { ensureS3 } from '../../lake/duckdb';
import { isS3, S3Storage, storageFor } from '../../lake/storage';
import type { Storage } from '../../lake/storage';
import { cpa, REFERENCE_LANDING, REPO, tmpDir } from '../support/env';
import { expectFiguresEqual, goldRow, lakeFigures } from '../support/figures';
import type { Figures } from '../support/figures';
import { bigTableSql, digestSql } from './support/big-table';

/**
 * The lake on real S3 (the stack's MinIO): `cpa landing upload`, then `cpa run` with landing and lake both on
 * s3:// over the reference dataset, checked against the independently derived figures; publishes killed midway
 * (SIGKILL during the upload to S3, and between promotion and commit) never change what readers see; bad S3 settings
 * end in one line. Every test works under its own prefix of the stack's bucket and deletes it afterwards.
 */

const config: Config = loadConfig({ ...process.env, CPA_LAKE_ROOT: 's3://placeholder' });
const bucket = process.env.CPA_S3_BUCKET ?? 'cpa-lake';
const root = `s3://${bucket}/test-s3-lake-${Date.now().toString(36)}-${process.pid}`;
const s3 = new S3Storage(config);

const expected = JSON.parse(
  fs.readFileSync(path.join(REPO, 'tests', 'e2e', 'reference', 'expected.json'), 'utf8'),
) as Figures & { spot_checks: Array<{ mart: string; key: Record<string, string>; row: Record<string, unknown> }> };

const localDir = tmpDir('killed');

afterAll(async () => {
  if (process.env.CPA_KEEP_TEST_DATA) return;
  await s3.deletePrefix(root);
  fs.rmSync(localDir, { recursive: true, force: true });
});

/** Every object of a lake (key → etag and size), minus what each run adds by design (its run and quality records). */
async function lakeSnapshot(lake: string): Promise<Record<string, string>> {
  const objects = await s3.list(lake);
  return Object.fromEntries(
    objects
      .filter((o) => !/^_meta\/(runs|quality|locks)\//.test(o.key))
      .map((o) => [o.key, `${o.etag ?? ''}:${o.size}`]),
  );
}

describe('cpa run with landing and lake on MinIO', () => {
  const landing = `${root}/ref/landing`;
  const lake = `${root}/ref/lake`;
  let first: ReturnType<typeof cpa>;

  beforeAll(() => {
    const up = cpa(['landing', 'upload', REFERENCE_LANDING, landing, '--json']);
    expect({ code: up.code, stderr: up.stderr }).toEqual({ code: 0, stderr: '' });
    first = cpa(['run', '--landing', landing, '--lake', lake, '--json']);
  });

  it('lands the reference dataset idempotently with `cpa landing upload`', async () => {
    const files = (await s3.list(landing)).map((o) => o.key);
    expect(files).toContain('customers_orgs.csv');
    expect(files.filter((k) => k.startsWith('usage_events_stream/')).length).toBe(120);
    const again = cpa(['landing', 'upload', REFERENCE_LANDING, landing, '--json']);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ uploaded: 0, skipped: files.length, files: files.length });
  });

  it('runs the whole pipeline on S3 and exits 0 with nothing on stderr', () => {
    expect({ code: first.code, stderr: first.stderr }).toEqual({ code: 0, stderr: '' });
    const summary = JSON.parse(first.stdout) as { status: string; lake: string; landing: string };
    expect(summary).toMatchObject({ status: 'succeeded', lake, landing });
  });

  it('publishes gold whose figures equal the independent computation (read back through DuckDB httpfs)', async () => {
    expectFiguresEqual(await lakeFigures(lake, config), expected);
    for (const spot of expected.spot_checks) {
      const row = await goldRow(lake, spot.mart, spot.key, config);
      expect({ mart: spot.mart, key: spot.key, found: row !== undefined }).toEqual({
        mart: spot.mart,
        key: spot.key,
        found: true,
      });
      for (const [col, want] of Object.entries(spot.row)) {
        const got = row![col];
        if (typeof want === 'number' && !Number.isInteger(want))
          expect(Math.abs(Number(got) - want)).toBeLessThan(2e-6);
        else if (typeof want === 'number') expect(Number(got)).toBe(want);
        else expect({ col, got }).toEqual({ col, got: want });
      }
    }
  });

  it('leaves no staging objects and no unfinished multipart uploads behind', async () => {
    expect(await s3.list(`${lake}/_staging`)).toEqual([]);
    expect(await s3.listUploads(lake)).toEqual([]);
  });

  it('rewrites nothing on a second run: every object except the new run records is byte-identical', async () => {
    const before = await lakeSnapshot(lake);
    const second = cpa(['run', '--landing', landing, '--lake', lake, '--json']);
    expect({ code: second.code, stderr: second.stderr }).toEqual({ code: 0, stderr: '' });
    const summary = JSON.parse(second.stdout) as { steps: Array<{ step: string; partitionsWritten: number }> };
    expect(summary.steps.filter((s) => s.partitionsWritten > 0)).toEqual([]);
    expect(await lakeSnapshot(lake)).toEqual(before);
  });

  it('reads run records and quality metrics from _meta on S3 (cpa status, cpa quality)', () => {
    const status = cpa(['status', '--lake', lake, '--json']);
    expect(status.code).toBe(0);
    const runs = JSON.parse(status.stdout) as Array<{ workflowId: string; status: string }>;
    expect(runs.map((r) => r.status)).toEqual(['succeeded', 'succeeded']);
    const quality = cpa(['quality', '--lake', lake, '--json']);
    expect(quality.code).toBe(0);
    const report = JSON.parse(quality.stdout) as {
      steps: Array<{ step: string; quarantined: Record<string, number> }>;
    };
    expect(report.steps.find((s) => s.step === 'silver.usage_events')?.quarantined).toEqual({ negative_cost: 211 });
  });
});

/** Rows of the big test table: ~70 MB of Parquet, so its upload takes long enough to be killed in the middle. */
const ROWS = 2_000_000;
const TABLE = 'killed_write';

interface Child {
  proc: ChildProcess;
  lines: string[];
  exited: Promise<number | null>;
  done: () => boolean;
}

/** Starts tests/stack/support/publish-child.ts publishing version `version` of the big table to `lake`. */
function startPublish(lake: string, version: string, mode = ''): Child {
  const proc = spawn(
    process.execPath,
    ['-r', 'tsx/cjs', path.join(__dirname, 'support', 'publish-child.ts'), lake, TABLE, version, String(ROWS), mode],
    { cwd: REPO, env: process.env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const lines: string[] = [];
  let stderr = '';
  proc.stdout!.on('data', (d: Buffer) => lines.push(...String(d).split('\n').filter(Boolean)));
  proc.stderr!.on('data', (d: Buffer) => (stderr += String(d)));
  let finished = false;
  const exited = new Promise<number | null>((resolve) =>
    proc.on('exit', (code) => {
      finished = true;
      if (code) lines.push(`stderr: ${stderr}`);
      resolve(code);
    }),
  );
  return { proc, lines, exited, done: () => finished };
}

async function waitFor(what: string, cond: () => Promise<boolean> | boolean, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 40));
  }
}

/** What a reader going through the manifest (registerView, as every model does) sees: per-partition count + hash. */
async function readerDigest(lake: string, storage: Storage): Promise<unknown[]> {
  const db = await DuckDBInstance.create(':memory:', {
    ...(config.duckdb.extensionDir ? { extension_directory: config.duckdb.extensionDir } : {}),
    autoinstall_known_extensions: 'false',
  });
  if (isS3(lake)) await ensureS3(db, config);
  const conn = await db.connect();
  try {
    await registerView({ conn, storage, lakeRoot: lake }, 'test', TABLE, 'v');
    return (await conn.runAndReadAll(digestSql('v'))).getRowObjectsJson();
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

/** The digest a version of the table must have, computed from its definition rather than read from the lake. */
async function expectedDigest(version: string): Promise<unknown[]> {
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  const rows = (await conn.runAndReadAll(digestSql(`(${bigTableSql(version, ROWS)})`))).getRowObjectsJson();
  conn.closeSync();
  db.closeSync();
  return rows;
}

/** Objects in the table directory the manifest neither lists nor retired (e.g. copies promoted by a killed write). */
async function unlisted(lake: string, storage: Storage): Promise<string[]> {
  const m = (await readManifest(storage, lake, 'test', TABLE))!;
  const listed = new Set([...Object.values(m.partitions).flatMap((p) => p.files), ...Object.keys(m.retired ?? {})]);
  return (await storage.list(tableUri(lake, 'test', TABLE))).map((o) => o.key).filter((k) => !listed.has(k));
}

const manifestKey = (lake: string): string => `${lake}/_meta/tables/test/${TABLE}.json`;

describe.each([
  ['s3', `${root}/killed/lake`],
  ['local', path.join(localDir, 'lake')],
])('atomic publish on a %s lake: a write killed midway', (kind, lake) => {
  const storage = storageFor(lake, config);
  const staging = stagingUri(lake, 'test', TABLE);
  let v1: unknown[];
  let v1Manifest: Buffer;

  beforeAll(async () => {
    const child = startPublish(lake, 'v1');
    expect({ code: await child.exited, lines: child.lines }).toEqual({ code: 0, lines: ['staging', 'published'] });
    v1Manifest = await storage.readBytes(manifestKey(lake));
    v1 = await expectedDigest('v1');
    expect(await readerDigest(lake, storage)).toEqual(v1);
  });

  /** The previous version is what readers see, complete; its manifest is byte-identical. */
  async function expectV1Intact(): Promise<void> {
    expect((await storage.readBytes(manifestKey(lake))).equals(v1Manifest)).toBe(true);
    expect(await readerDigest(lake, storage)).toEqual(v1);
  }

  it('SIGKILL during the upload of the big partition to staging: v1 intact, the half upload never read', async () => {
    const child = startPublish(lake, 'v2');
    // S3: DuckDB's multipart upload of the big file is open; local: the file is being written.
    const uploading = async (): Promise<boolean> =>
      kind === 's3'
        ? (await s3.listUploads(staging)).some((u) => u.key.includes('part=big'))
        : (await storage.list(staging)).some((o) => o.key.includes('part=big') && o.size > 0);
    await waitFor('the big partition upload to start', async () => child.done() || (await uploading()));
    expect({ finishedBeforeKill: child.done(), lines: child.lines }).toEqual({
      finishedBeforeKill: false,
      lines: ['staging'],
    });
    child.proc.kill('SIGKILL');
    await child.exited;
    if (kind === 's3') expect((await s3.listUploads(staging)).length).toBeGreaterThan(0); // killed mid-upload
    await expectV1Intact();
  });

  it('SIGKILL after promoting one file but before the manifest commit: v1 intact, the promoted copy unread', async () => {
    const child = startPublish(lake, 'v2', 'pause-after-first-promote');
    await waitFor('one promoted file', () => child.done() || child.lines.some((l) => l.startsWith('promoted ')));
    expect(child.done()).toBe(false);
    child.proc.kill('SIGKILL');
    await child.exited;
    expect((await unlisted(lake, storage)).length).toBe(1);
    expect((await storage.list(staging)).length).toBeGreaterThan(0);
    await expectV1Intact();
  });

  it('a re-run completes, commits v2 and cleans the killed writes (staging, uploads, unlisted copies)', async () => {
    const v1Files = Object.values(
      JSON.parse(v1Manifest.toString('utf8')).partitions as Record<string, { files: string[] }>,
    )
      .flatMap((p) => p.files)
      .sort();
    const child = startPublish(lake, 'v2');
    expect({ code: await child.exited, lines: child.lines }).toEqual({ code: 0, lines: ['staging', 'published'] });
    expect(await readerDigest(lake, storage)).toEqual(await expectedDigest('v2'));
    expect(JSON.parse((await storage.readBytes(manifestKey(lake))).toString('utf8'))).toMatchObject({
      runId: 'child-v2',
    });
    expect(await storage.list(staging)).toEqual([]);
    if (kind === 's3') expect(await s3.listUploads(staging)).toEqual([]);
    expect(await unlisted(lake, storage)).toEqual([]);
    // v1's files are retired, not deleted: a reader that read the v1 manifest just before the commit can finish.
    const m = (await readManifest(storage, lake, 'test', TABLE))!;
    expect(Object.keys(m.retired ?? {}).sort()).toEqual(v1Files);
    for (const f of v1Files) expect(await storage.exists(`${tableUri(lake, 'test', TABLE)}/${f}`)).toBe(true);
  });

  it('deletes retired files once their grace period is over, even on a publish that rewrites nothing', async () => {
    const m = (await readManifest(storage, lake, 'test', TABLE))!;
    const retired = Object.keys(m.retired ?? {});
    expect(retired.length).toBeGreaterThan(0);
    const longAgo = new Date(Date.now() - 2 * 60 * 60_000).toISOString();
    m.retired = Object.fromEntries(retired.map((f) => [f, longAgo]));
    await storage.writeBytes(manifestKey(lake), JSON.stringify(m));
    const child = startPublish(lake, 'v2');
    expect({ code: await child.exited, lines: child.lines }).toEqual({ code: 0, lines: ['staging', 'published'] });
    for (const f of retired) expect(await storage.exists(`${tableUri(lake, 'test', TABLE)}/${f}`)).toBe(false);
    expect(await readerDigest(lake, storage)).toEqual(await expectedDigest('v2'));
  });
});

describe('bad S3 settings end in one clear line, not a stack trace', () => {
  const lake = `${root}/bad/lake`;
  let silent: net.Server;
  let silentPort = 0;
  let closedPort = 0;

  beforeAll(async () => {
    // An endpoint that accepts connections and never answers (the kernel completes the handshake).
    silent = net.createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    silentPort = (silent.address() as net.AddressInfo).port;
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    closedPort = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
  });

  afterAll(async () => {
    await new Promise<void>((r) => silent.close(() => r()));
  });

  function expectOneLine(res: ReturnType<typeof cpa>, pattern: RegExp): void {
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(pattern);
    expect(res.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(res.stderr).not.toMatch(/\n\s+at /);
  }

  it('unreachable endpoint', () => {
    const res = cpa(['status', '--lake', lake], { CPA_S3_ENDPOINT: `http://127.0.0.1:${closedPort}` });
    expectOneLine(
      res,
      new RegExp(`^cpa: S3 endpoint http://127\\.0\\.0\\.1:${closedPort} unreachable \\(ECONNREFUSED\\)`),
    );
  });

  it('endpoint that never answers: bounded by the preflight timeout', () => {
    const t0 = Date.now();
    const res = cpa(['quality', '--lake', lake], { CPA_S3_ENDPOINT: `http://127.0.0.1:${silentPort}` });
    expectOneLine(res, /^cpa: S3 endpoint http:\/\/127\.0\.0\.1:\d+ unreachable \(no answer within 5s\)/);
    expect(Date.now() - t0).toBeLessThan(20_000);
  });

  it('wrong secret key', () => {
    const res = cpa(['run', '--landing', `${root}/ref/landing`, '--lake', lake], {
      CPA_S3_SECRET_ACCESS_KEY: 'not-the-secret',
    });
    expectOneLine(
      res,
      /^cpa: S3 credentials rejected by http:\S+: wrong secret key \(check CPA_S3_SECRET_ACCESS_KEY\)/,
    );
    expect(res.stderr).not.toContain('not-the-secret');
  });

  it('unknown access key', () => {
    const res = cpa(['status', '--lake', lake], { CPA_S3_ACCESS_KEY_ID: 'no-such-user' });
    expectOneLine(res, /^cpa: S3 credentials rejected by http:\S+: unknown access key \(check CPA_S3_ACCESS_KEY_ID\)/);
  });

  it('missing bucket, for the lake and for the landing', () => {
    const missing = `cpa-missing-${Date.now().toString(36)}`;
    expectOneLine(
      cpa(['status', '--lake', `s3://${missing}/lake`]),
      new RegExp(`^cpa: S3 bucket '${missing}' does not exist`),
    );
    const res = cpa(['run', '--landing', `s3://${missing}/landing`, '--lake', lake]);
    expectOneLine(
      res,
      new RegExp(`^cpa: S3 bucket '${missing}' does not exist at \\S+ \\(create it, or fix s3://${missing}/landing\\)`),
    );
  });

  it('httpfs extension missing from CPA_DUCKDB_EXTENSION_DIR (offline machine)', () => {
    const res = cpa(['run', '--landing', `${root}/ref/landing`, '--lake', lake], {
      CPA_DUCKDB_EXTENSION_DIR: '/nonexistent',
    });
    expectOneLine(
      res,
      /^cpa: DuckDB extension httpfs not found under CPA_DUCKDB_EXTENSION_DIR=\/nonexistent \(run `bash scripts\/tools\.sh httpfs`\)/,
    );
  });

  it('generate refuses an s3:// output and says how to land files on S3', () => {
    const res = cpa(['generate', '--scale', '0.01', '--out', `${root}/gen`]);
    expectOneLine(res, /^cpa: generate writes a local directory only .*cpa landing upload/);
  });
});
