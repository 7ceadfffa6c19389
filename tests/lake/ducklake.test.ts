import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { DuckDBInstance } from '@duckdb/node-api';
import { loadConfig } from '../../config/env';
import { createDuckDb } from '../../lake/duckdb';
import { attachLake, currentSnapshot, publishTable } from '../../lake/lakehouse';
import type { AttachedLake, LakeContext } from '../../lake/lakehouse';
import { maintainLake } from '../../lake/maintenance';
import { tmpDir } from '../support/env';
import { withLakeSql } from '../support/lake-sql';

/**
 * The lake's table format is a DuckLake (SPEC §2): a publish is one transaction, readers (a fresh DuckDB that is
 * not the project's code) see the previous snapshot or the next, earlier snapshots can be queried, a writer killed
 * mid-commit leaves the previous snapshot whole, and writers in several processes commit side by side.
 */
const CHILD = path.join(__dirname, 'support', 'writer-child.ts');

function child(args: string[]): ReturnType<typeof spawn> {
  return spawn(process.execPath, ['-r', 'tsx/cjs', CHILD, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

function waitExit(
  p: ReturnType<typeof spawn>,
): Promise<{ code: number | null; signal: string | null; out: string; err: string }> {
  let out = '';
  let err = '';
  p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve) => p.on('exit', (code, signal) => resolve({ code, signal, out, err })));
}

/** Per partition: row count and the distinct versions it holds, as a fresh read-only DuckDB sees them. */
async function partsOf(lakeRoot: string, table: string): Promise<Record<string, { n: number; v: string }>> {
  const rows = await withLakeSql(lakeRoot, (q) =>
    q(
      `select part, count(*)::integer as n, string_agg(distinct v::varchar, ',') as v from lake.silver.${table} group by 1 order by 1`,
    ),
  );
  return Object.fromEntries(rows.map((r) => [String(r.part), { n: Number(r.n), v: String(r.v) }]));
}

describe('the DuckLake lake', () => {
  let db: DuckDBInstance;
  const lakeRoot = tmpDir('ducklake');
  const config = loadConfig({ CPA_LAKE_ROOT: lakeRoot });
  let lake: AttachedLake;
  let ctx: LakeContext;

  beforeAll(async () => {
    db = await createDuckDb(config, { needS3: false });
    lake = await attachLake(db, config, lakeRoot);
    ctx = { conn: await db.connect(), lake, lakeRoot, runId: 'test' };
  });
  afterAll(() => {
    ctx.conn.closeSync();
    db.closeSync();
  });

  const version = async (v: number, days: number[]): Promise<void> => {
    await ctx.conn.run(
      `create or replace temp table _v as
       select (date '2025-08-01' + d::integer) as usage_date, i::bigint as i, (${v} * 1000 + i)::decimal(18,6) as cost
       from (select unnest([${days.join(',')}]) as d) , range(100) t(i)`,
    );
  };

  it('publishes a table as one snapshot, skips unchanged partitions and records nothing for a no-op', async () => {
    await version(1, [0, 1, 2]);
    const first = await publishTable(ctx, { layer: 'gold', table: 'tt', source: '_v', partitionBy: 'usage_date' });
    expect(first).toMatchObject({ rows: 300, written: ['2025-08-01', '2025-08-02', '2025-08-03'], unchanged: 0 });
    const s1 = await currentSnapshot(ctx.conn, lake);
    const again = await publishTable(ctx, { layer: 'gold', table: 'tt', source: '_v', partitionBy: 'usage_date' });
    expect(again).toMatchObject({ written: [], deleted: [], unchanged: 3 });
    expect(await currentSnapshot(ctx.conn, lake)).toBe(s1);
    // The data files are Parquet under <lake>/gold/tt/, one directory per month of the date partition key.
    expect(fs.readdirSync(path.join(lakeRoot, 'gold', 'tt'))).toEqual(['year=2025']);
    expect(fs.readdirSync(path.join(lakeRoot, 'gold', 'tt', 'year=2025'))).toEqual(['month=8']);
  });

  it('replaces exactly the changed partitions, deletes vanished ones, and keeps the previous snapshot queryable', async () => {
    const before = await currentSnapshot(ctx.conn, lake);
    await ctx.conn.run(
      `create or replace temp table _v as
       select * replace (case when usage_date = date '2025-08-02' then cost + 1 else cost end as cost) from _v
       where usage_date <> date '2025-08-03'`,
    );
    const r = await publishTable(ctx, { layer: 'gold', table: 'tt', source: '_v', partitionBy: 'usage_date' });
    expect(r).toMatchObject({ rows: 200, written: ['2025-08-02'], deleted: ['2025-08-03'], unchanged: 1 });
    const after = await currentSnapshot(ctx.conn, lake);
    expect(after).toBe(before + 1);
    await withLakeSql(lakeRoot, async (q) => {
      const now = await q(
        `select usage_date::varchar d, count(*)::integer n, sum(cost)::varchar c from lake.gold.tt group by 1 order by 1`,
      );
      expect(now).toEqual([
        { d: '2025-08-01', n: 100, c: '104950.000000' },
        { d: '2025-08-02', n: 100, c: '105050.000000' },
      ]);
      // Time travel: the snapshot before the publish still has the old rows of every partition.
      const old = await q(
        `select usage_date::varchar d, count(*)::integer n, sum(cost)::varchar c from lake.gold.tt at (version => ${before}) group by 1 order by 1`,
      );
      expect(old).toEqual([
        { d: '2025-08-01', n: 100, c: '104950.000000' },
        { d: '2025-08-02', n: 100, c: '104950.000000' },
        { d: '2025-08-03', n: 100, c: '104950.000000' },
      ]);
      // The change feed lists what changed between the two snapshots: one partition replaced, one deleted.
      const changes = await q(
        `select change_type, count(*)::integer n from ducklake_table_changes('lake', 'gold', 'tt', ${after}, ${after}) group by 1 order by 1`,
      );
      expect(changes).toEqual([
        { change_type: 'delete', n: 200 },
        { change_type: 'insert', n: 100 },
      ]);
      // The commit names the step and the run.
      const [snap] = await q(
        `select author, commit_message, commit_extra_info from lake.snapshots() where snapshot_id = ${after}`,
      );
      expect(snap).toEqual({
        author: 'cpa',
        commit_message: 'gold.tt',
        commit_extra_info: '{"run_id":"test","step":"gold.tt"}',
      });
    });
  });

  it('expires old snapshots and deletes the files only they referenced (cpa lake maintain)', async () => {
    const report = await maintainLake(ctx.conn, lake, { retention: '0 minutes', graceMinutes: 0 });
    expect(report.snapshotsExpired).toBeGreaterThan(0);
    expect(report.filesRewritten).toBeGreaterThan(0);
    expect(report.filesDeleted).toBeGreaterThan(0);
    // The replaced and vanished partitions' rows are gone from disk (the month file that held them was rewritten
    // without them, the original deleted); the current rows are untouched.
    const onDisk = await withLakeSql(lakeRoot, (q) =>
      q(
        `select usage_date::varchar d, count(*)::integer n from read_parquet('${lakeRoot}/gold/tt/**/*.parquet')
         where usage_date >= date '2025-08-01' group by 1 order by 1`,
      ),
    );
    expect(onDisk).toEqual([
      { d: '2025-08-01', n: 100 },
      { d: '2025-08-02', n: 100 },
    ]);
    const [r] = await withLakeSql(lakeRoot, (q) => q(`select count(*)::integer n from lake.gold.tt`));
    expect(r.n).toBe(200);
  });

  it('a changed column list re-creates the table and carries over the partitions this writer does not own', async () => {
    await version(1, [0, 1, 2]);
    await publishTable(ctx, { layer: 'gold', table: 'cc', source: '_v', partitionBy: 'usage_date' });
    await ctx.conn.run(
      `create or replace temp table _w as select *, 'new' as note from _v where usage_date = date '2025-08-01'`,
    );
    const r = await publishTable(ctx, {
      layer: 'gold',
      table: 'cc',
      source: '_w',
      partitionBy: 'usage_date',
      owns: (p) => p === '2025-08-01',
    });
    expect(r).toMatchObject({ rows: 300, written: ['2025-08-01'], deleted: [] });
    const now = await withLakeSql(lakeRoot, (q) =>
      q(
        `select usage_date::varchar d, count(*)::integer n, any_value(note) note from lake.gold.cc group by 1 order by 1`,
      ),
    );
    expect(now).toEqual([
      { d: '2025-08-01', n: 100, note: 'new' },
      { d: '2025-08-02', n: 100, note: null },
      { d: '2025-08-03', n: 100, note: null },
    ]);
  });

  it('a writer killed (SIGKILL) in the middle of a commit leaves the previous snapshot readable and whole; a re-run converges', async () => {
    const root = tmpDir('ducklake-kill');
    const base = await waitExit(child([root, 'big', '0', '20', '20000', '1']));
    expect(base).toMatchObject({ code: 0, signal: null });
    const committed = await partsOf(root, 'big');
    expect(Object.keys(committed)).toHaveLength(20);
    // Round 2 onwards rewrite every partition; kill the writer while it is writing, at several points in time.
    for (const delayMs of [150, 400, 900]) {
      const p = child([root, 'big', '0', '20', '20000', '5']);
      const exit = waitExit(p);
      await new Promise((r) => setTimeout(r, delayMs));
      p.kill('SIGKILL');
      await exit;
      const seen = await partsOf(root, 'big');
      // Every partition is complete and holds one version: never half of a commit.
      expect(Object.keys(seen)).toHaveLength(20);
      const versions = new Set(Object.values(seen).map((s) => s.v));
      expect(versions.size).toBe(1);
      for (const s of Object.values(seen)) expect(s.n).toBe(20000);
    }
    const rerun = await waitExit(child([root, 'big', '0', '20', '20000', '1']));
    expect(rerun.code).toBe(0);
    expect(await partsOf(root, 'big')).toEqual(committed);
  });

  it('two writer processes commit different partitions of one table at the same time, and nothing is lost', async () => {
    const root = tmpDir('ducklake-two');
    const [a, b] = await Promise.all([
      waitExit(child([root, 'shared', '0', '10', '2000', '6'])),
      waitExit(child([root, 'shared', '10', '10', '2000', '6'])),
    ]);
    expect({ a: a.code, b: b.code, errA: a.err, errB: b.err }).toEqual({ a: 0, b: 0, errA: '', errB: '' });
    expect(a.out.match(/committed/g)).toHaveLength(6);
    expect(b.out.match(/committed/g)).toHaveLength(6);
    const parts = await partsOf(root, 'shared');
    expect(Object.keys(parts)).toHaveLength(20);
    for (const s of Object.values(parts)) expect(s).toEqual({ n: 2000, v: '6' });
  });

  it('two writers of different days of one month (one data file, so their deletes conflict) retry and lose nothing', async () => {
    const root = tmpDir('ducklake-month');
    const [a, b] = await Promise.all([
      waitExit(child([root, 'days', '0', '10', '500', '6', 'date'])),
      waitExit(child([root, 'days', '10', '10', '500', '6', 'date'])),
    ]);
    expect({ a: a.code, b: b.code, errA: a.err, errB: b.err }).toEqual({ a: 0, b: 0, errA: '', errB: '' });
    const parts = await partsOf(root, 'days');
    expect(Object.keys(parts)).toHaveLength(20);
    expect(Object.keys(parts)[0]).toBe('2025-08-01');
    for (const s of Object.values(parts)) expect(s).toEqual({ n: 500, v: '6' });
  });
});
