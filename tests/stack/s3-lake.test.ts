import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { loadConfig } from '../../config/env';
import type { Config } from '../../config/env';
import { createDuckDb, sqlIdent, sqlString } from '../../lake/duckdb';
import { attachLake, dropLakeCatalog, LakeUnavailableError } from '../../lake/lakehouse';
import type { AttachedLake } from '../../lake/lakehouse';
import { maintainLake } from '../../lake/maintenance';
import { S3Storage } from '../../lake/storage';
import { cpa, firstRun, REFERENCE_LANDING, REPO, silverEventsQuality } from '../support/env';
import { expectFiguresEqual, goldRow, lakeFigures } from '../support/figures';
import type { Figures } from '../support/figures';
import { withLakeSql } from '../support/lake-sql';
import { bigTableSql, digestSql } from './support/big-table';

/**
 * The lake on real S3 (the stack's MinIO) with its DuckLake catalog in the stack's PostgreSQL (CPA_LAKE_CATALOG):
 * `cpa landing upload`, then `cpa run` with landing and lake both on s3:// over the reference dataset, checked
 * against the independently derived figures; publishes killed midway (SIGKILL during the upload of a data file, and
 * after every data file is written but before the commit) never change what readers see, a re-run converges and an
 * identical re-publish adds no snapshot; bad S3 or catalog settings end in one line. Every test works under its own
 * prefix of the stack's bucket and deletes it, and the lakes' metadata schemas in PostgreSQL, afterwards.
 */

const config: Config = loadConfig({ ...process.env, CPA_LAKE_ROOT: 's3://placeholder' });
const bucket = process.env.CPA_S3_BUCKET ?? 'cpa-lake';
const root = `s3://${bucket}/test-s3-lake-${Date.now().toString(36)}-${process.pid}`;
const s3 = new S3Storage(config);

const expected = JSON.parse(
  fs.readFileSync(path.join(REPO, 'tests', 'e2e', 'reference', 'expected.json'), 'utf8'),
) as Figures & { spot_checks: Array<{ mart: string; key: Record<string, string>; row: Record<string, unknown> }> };

/** Lakes whose metadata schema the tests may have created in the catalog database. */
const lakesUsed = new Set<string>();

/** Drops the lakes' metadata schemas (DuckLake keeps one per lake in CPA_LAKE_CATALOG's database). */
async function dropCatalogSchemas(lakes: string[]): Promise<void> {
  for (const lake of lakes) await dropLakeCatalog(config, lake);
}

afterAll(async () => {
  if (process.env.CPA_KEEP_TEST_DATA) return;
  await s3.deletePrefix(root);
  await dropCatalogSchemas([...lakesUsed]);
});

/** Every object of a lake (key → etag and size), minus the `meta` schema's files (each run adds its records). */
async function lakeObjects(lake: string): Promise<Record<string, string>> {
  const objects = await s3.list(lake);
  return Object.fromEntries(
    objects
      // The meta schema, the per-run quality reports (one new page per run, like a run record) and the per-run
      // OpenLineage events are not data.
      .filter(
        (o) => !o.key.startsWith('meta/') && !o.key.startsWith('_meta/reports/') && !o.key.startsWith('_meta/lineage/'),
      )
      .map((o) => [o.key, `${o.etag ?? ''}:${o.size}`]),
  );
}

describe('cpa run with landing and lake on MinIO, catalog in PostgreSQL', () => {
  const landing = `${root}/ref/landing`;
  const lake = `${root}/ref/lake`;
  lakesUsed.add(lake);
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

  it('publishes gold whose figures equal the independent computation (a fresh DuckDB attaching the DuckLake)', async () => {
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

  it('leaves no unfinished multipart uploads behind', async () => {
    expect(await s3.listUploads(lake)).toEqual([]);
  });

  it('rewrites nothing on a second run: every data file outside the meta schema is byte-identical', async () => {
    const before = await lakeObjects(lake);
    const second = cpa(['run', '--landing', landing, '--lake', lake, '--json']);
    expect({ code: second.code, stderr: second.stderr }).toEqual({ code: 0, stderr: '' });
    const summary = JSON.parse(second.stdout) as {
      runId: string;
      steps: Array<{ step: string; partitionsWritten: number }>;
      report?: { uri?: string };
    };
    expect(summary.steps.filter((s) => s.partitionsWritten > 0)).toEqual([]);
    expect(await lakeObjects(lake)).toEqual(before);
    // The second run wrote its own quality report into the lake on S3.
    expect(summary.report).toEqual({ uri: `${lake}/_meta/reports/${summary.runId}.html` });
    expect((await s3.list(lake)).map((o) => o.key)).toContain(`_meta/reports/${summary.runId}.html`);
  });

  it('reads run records and quality metrics from the meta schema (cpa status, cpa quality)', () => {
    const status = cpa(['status', '--lake', lake, '--runs', '--json']);
    expect(status.code).toBe(0);
    const runs = JSON.parse(status.stdout) as Array<{ status: string; runId: string; startedAt: string }>;
    expect(runs.map((r) => r.status)).toEqual(['succeeded', 'succeeded']);
    // The first run computed every partition; the second (nothing new) recomputed none (SPEC §9a).
    expect(silverEventsQuality(lake, firstRun(runs).runId).quarantined).toEqual({ negative_cost: 211 });
    expect(silverEventsQuality(lake)).toMatchObject({ quarantined: {}, partitionsRecomputed: 0 });
  });
});

/** Rows of the big test table: ~140 MB of Parquet, so its upload takes long enough to be killed in the middle. */
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

/** The digest a version of the table must have, computed from its definition rather than read from the lake. */
async function expectedDigest(version: string): Promise<unknown[]> {
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  const rows = (await conn.runAndReadAll(digestSql(`(${bigTableSql(version, ROWS)})`))).getRowObjectsJson();
  conn.closeSync();
  db.closeSync();
  return rows;
}

describe('atomic publish to a DuckLake on MinIO + PostgreSQL: a write killed midway', () => {
  const lake = `${root}/killed/lake`;
  lakesUsed.add(lake);
  const tableDir = `${lake}/test/${TABLE}`;
  const lakeConfig = loadConfig({ ...process.env, CPA_LAKE_ROOT: lake });
  let db: DuckDBInstance;
  let attached: AttachedLake;
  let v1: unknown[];
  let v1Snapshots: number;
  let v1SnapshotId: number;

  /** Runs SQL on a new connection of the project's own reader (createDuckDb + attachLake, as every activity does). */
  async function sql(text: string): Promise<Array<Record<string, unknown>>> {
    const conn = await db.connect();
    try {
      return (await conn.runAndReadAll(text)).getRowObjectsJson() as Array<Record<string, unknown>>;
    } finally {
      conn.closeSync();
    }
  }

  /**
   * Per-partition count + hash as two readers see the table: the project's reader, and a fresh DuckDB that attaches
   * the DuckLake read-only (tests/support/lake-sql.ts). Both must agree.
   */
  async function readerDigest(): Promise<unknown[]> {
    const ours = await sql(digestSql(`${sqlIdent(attached.alias)}.test.${TABLE}`));
    const analyst = await withLakeSql(lake, (q) => q(digestSql(`lake.test.${TABLE}`)), lakeConfig);
    expect(analyst).toEqual(ours);
    return ours;
  }

  const snapshotCount = async (): Promise<number> =>
    Number((await sql(`select count(*)::bigint as n from ${sqlIdent(attached.alias)}.snapshots()`))[0].n);

  /** Stored objects under the table's directory that the current snapshot does not reference (uncommitted writes). */
  async function unreferenced(): Promise<string[]> {
    const files = await sql(
      `select data_file, delete_file from ducklake_list_files(${sqlString(attached.alias)}, ${sqlString(TABLE)}, schema => 'test')`,
    );
    const referenced = new Set(
      files
        .flatMap((f) => [f.data_file, f.delete_file])
        .filter(Boolean)
        .map(String),
    );
    return (await s3.list(tableDir)).map((o) => `${tableDir}/${o.key}`).filter((k) => !referenced.has(k));
  }

  beforeAll(async () => {
    db = await createDuckDb(lakeConfig, { needS3: true });
    const child = startPublish(lake, 'v1');
    expect({ code: await child.exited, lines: child.lines }).toEqual({ code: 0, lines: ['publishing', 'published'] });
    attached = await attachLake(db, lakeConfig, lake);
    v1 = await expectedDigest('v1');
    expect(await readerDigest()).toEqual(v1);
    v1Snapshots = await snapshotCount();
    v1SnapshotId = Number((await sql(`select id from ${sqlIdent(attached.alias)}.current_snapshot()`))[0].id);
  });

  afterAll(() => db?.closeSync());

  /** The previous version is what readers see, complete, and no snapshot was added. */
  async function expectV1Intact(): Promise<void> {
    expect(await snapshotCount()).toBe(v1Snapshots);
    expect(await readerDigest()).toEqual(v1);
  }

  it('SIGKILL during the upload of the big partition file: v1 intact, the half upload never read', async () => {
    const child = startPublish(lake, 'v2');
    // DuckDB's multipart upload of the big partition's file is open on MinIO.
    const uploading = async (): Promise<boolean> =>
      (await s3.listUploads(tableDir)).some((u) => u.key.includes('part=big'));
    await waitFor('the big partition upload to start', async () => child.done() || (await uploading()));
    expect({ finishedBeforeKill: child.done(), lines: child.lines }).toEqual({
      finishedBeforeKill: false,
      lines: ['publishing'],
    });
    child.proc.kill('SIGKILL');
    await child.exited;
    expect((await s3.listUploads(tableDir)).length).toBeGreaterThan(0); // killed mid-upload
    await expectV1Intact();
  });

  it('SIGKILL after every data file is written but before the commit: v1 intact, the new files unread', async () => {
    const before = (await unreferenced()).length;
    const child = startPublish(lake, 'v2', 'pause-before-commit');
    await waitFor('the data files to be written', () => child.done() || child.lines.includes('written'));
    expect({ finishedBeforeKill: child.done(), lines: child.lines }).toEqual({
      finishedBeforeKill: false,
      lines: ['publishing', 'written'],
    });
    child.proc.kill('SIGKILL');
    await child.exited;
    // Both partitions' v2 files are in the bucket, and the catalog does not know them.
    expect((await unreferenced()).length).toBeGreaterThanOrEqual(before + 2);
    await expectV1Intact();
  });

  it('a re-run converges: commits v2 in one new snapshot, named after its run', async () => {
    const child = startPublish(lake, 'v2');
    expect({ code: await child.exited, lines: child.lines }).toEqual({ code: 0, lines: ['publishing', 'published'] });
    expect(await readerDigest()).toEqual(await expectedDigest('v2'));
    expect(await snapshotCount()).toBe(v1Snapshots + 1);
    const [last] = await sql(
      `select author, commit_message, json_extract_string(commit_extra_info, '$.run_id') as run_id
       from ${sqlIdent(attached.alias)}.snapshots() order by snapshot_id desc limit 1`,
    );
    expect(last).toEqual({ author: 'cpa', commit_message: `test.${TABLE}`, run_id: 'child-v2' });
  });

  it('re-publishing identical content writes nothing and creates no snapshot', async () => {
    const snapshots = await snapshotCount();
    const objects = (await s3.list(lake)).map((o) => o.key).sort();
    const child = startPublish(lake, 'v2');
    expect({ code: await child.exited, lines: child.lines }).toEqual({ code: 0, lines: ['publishing', 'published'] });
    expect(await snapshotCount()).toBe(snapshots);
    expect((await s3.list(lake)).map((o) => o.key).sort()).toEqual(objects);
    expect(await readerDigest()).toEqual(await expectedDigest('v2'));
  });

  it('lake maintenance deletes the files the killed writers left; v2 stays whole, v1 stays queryable', async () => {
    expect((await unreferenced()).length).toBeGreaterThan(0);
    const conn = await db.connect();
    try {
      // Retention long enough to keep v1's snapshot: only never-committed files are orphans.
      const report = await maintainLake(conn, attached, { retention: '7 days', graceMinutes: 0 });
      expect(report.orphansDeleted).toBeGreaterThan(0);
    } finally {
      conn.closeSync();
    }
    // What the current snapshot does not reference now is v1's files only, kept for its (unexpired) snapshot.
    const v1Files = await sql(
      `select data_file from ducklake_list_files(${sqlString(attached.alias)}, ${sqlString(TABLE)}, schema => 'test',
         snapshot_version => ${v1SnapshotId})`,
    );
    const kept = new Set(v1Files.map((f) => String(f.data_file)));
    expect((await unreferenced()).filter((k) => !kept.has(k))).toEqual([]);
    expect(await readerDigest()).toEqual(await expectedDigest('v2'));
    expect(await sql(digestSql(`${sqlIdent(attached.alias)}.test.${TABLE} at (version => ${v1SnapshotId})`))).toEqual(
      v1,
    );
  });
});

describe('bad S3 or catalog settings end in one clear line, not a stack trace', () => {
  const lake = `${root}/bad/lake`;
  lakesUsed.add(lake);
  let silent: net.Server;
  let silentPort = 0;
  const sockets: net.Socket[] = [];
  let closedPort = 0;

  beforeAll(async () => {
    // An endpoint that accepts connections and never answers (the kernel completes the handshake).
    // Accepts and never answers; its sockets are destroyed at the end, or close() would wait for them forever.
    silent = net.createServer((socket) => sockets.push(socket));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    silentPort = (silent.address() as net.AddressInfo).port;
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    closedPort = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
  });

  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
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
      /^cpa: DuckDB extension httpfs not found under CPA_DUCKDB_EXTENSION_DIR=\/nonexistent \(run `bash scripts\/tools\.sh duckdb`\)/,
    );
  });

  it('an S3 lake without CPA_LAKE_CATALOG: the catalog it needs and where to set it', async () => {
    const want =
      /^cpa: lake s3:\/\/\S+ is on S3 and needs a PostgreSQL catalog: set CPA_LAKE_CATALOG \(e\.g\. "host=127\.0\.0\.1 port=5432 dbname=cpa_lake user=cpa"; `npm run stack:up` writes it to \.cpa-stack\.env\)\n?$/;
    expectOneLine(cpa(['status', '--lake', lake], { CPA_LAKE_CATALOG: '' }), want);
    expectOneLine(cpa(['run', '--landing', `${root}/ref/landing`, '--lake', lake], { CPA_LAKE_CATALOG: '' }), want);
    // The same refusal from the library, as a typed error an activity does not retry.
    const db = await createDuckDb(config, { needS3: true });
    try {
      const noCatalog = { ...config, lakeCatalog: undefined };
      await expect(attachLake(db, noCatalog, lake)).rejects.toBeInstanceOf(LakeUnavailableError);
    } finally {
      db.closeSync();
    }
  });

  it('a catalog that refuses the password or does not answer, without printing the password', () => {
    const [pg] = /port=\d+/.exec(config.lakeCatalog ?? '') ?? ['port=5432'];
    const wrong = (config.lakeCatalog ?? '').replace(/password=\S+/, 'password=not-the-password');
    const res = cpa(['status', '--lake', lake], { CPA_LAKE_CATALOG: wrong });
    expectOneLine(res, /^cpa: cannot attach the lake catalog of s3:\/\/\S+: .*password authentication failed/);
    expect(res.stderr).not.toContain('not-the-password');
    const closed = wrong.replace(pg, `port=${closedPort}`);
    expectOneLine(
      cpa(['status', '--lake', lake], { CPA_LAKE_CATALOG: closed }),
      /^cpa: cannot attach the lake catalog of s3:\/\/\S+: .*Connection refused/,
    );
  });

  it('generate refuses an s3:// output and says how to land files on S3', () => {
    const res = cpa(['generate', '--scale', '0.01', '--out', `${root}/gen`]);
    expectOneLine(res, /^cpa: generate writes a local directory only .*cpa landing upload/);
  });
});
