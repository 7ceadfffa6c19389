import fs from 'node:fs';
import path from 'node:path';
import cassandra from 'cassandra-driver';
import type { DuckDBInstance } from '@duckdb/node-api';
import { createDuckDb } from '../../lake/duckdb';
import { loadConfig } from '../../config/env';
import type { Config } from '../../config/env';
import { SERVING_TABLES } from '../../config/serving';
import { attachLake, registerView } from '../../lake/lakehouse';
import { connect } from '../../lake/cassandra';
import type { CassandraClient } from '../../lake/cassandra';
import { cassandraSource, duckdbSource, QUERY_IDS, runQuery } from '../../serving/queries';
import type { QueryId, QueryParams } from '../../serving/queries';
import { cpa, REFERENCE_LANDING, temporalCli, tmpDir } from '../support/env';
import { spawnCpa } from '../support/processes';
import type { Proc } from '../support/processes';
import { listUntil } from '../support/temporal';
import { clientFor, startDevServer } from '../../worker/temporal';
import { lakeLease } from '../../lake/lease';
import { servingLoadWorkflowId } from '../../workflows/names';

/**
 * Serving on the real local Cassandra (scripts/stack.sh): dailyPipeline through the real CLI with serving on, in a
 * keyspace of its own (dropped afterwards), then incremental loads (new files, one changed day, a removed ticket),
 * the nine queries (q1–q5 of SPEC §8, q6–q9 of §6b) on both backends row for row, idempotent re-loads, reconciliation catching a corrupted table,
 * `cpa serving load` as the servingLoad workflow (one loader at a time), and the one-line error for an unreachable
 * Cassandra.
 */
const keyspace = `cpa_test_${Date.now().toString(36)}_${process.pid}`;
const cassEnv = {
  CPA_CASSANDRA_CONTACT_POINTS: process.env.CPA_CASSANDRA_CONTACT_POINTS ?? '127.0.0.1:9042',
  CPA_CASSANDRA_LOCAL_DC: process.env.CPA_CASSANDRA_LOCAL_DC ?? 'datacenter1',
  CPA_CASSANDRA_KEYSPACE: keyspace,
};

type Summary = {
  status: string;
  runId: string;
  startedAt: string;
  steps: Array<{ step: string; rowsOut: number; extra: Record<string, number> }>;
};

describe('serving on Cassandra', () => {
  const landing = tmpDir('srv-landing');
  const lake = tmpDir('srv-lake');
  const config: Config = loadConfig({ ...cassEnv, CPA_LAKE_ROOT: lake });
  let client: CassandraClient;
  let db: DuckDBInstance;

  const run = (): Summary => {
    const r = cpa(['run', '--landing', landing, '--lake', lake, '--json'], cassEnv);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    return JSON.parse(r.stdout) as Summary;
  };
  const servingStep = (s: Summary) => s.steps.find((x) => x.step === 'serving.load')!;

  /** Every serving table holds exactly its gold projection's row count (so no duplicates and no stale rows). */
  async function expectCountsMatchGold(): Promise<Record<string, number>> {
    const conn = await db.connect();
    const counts: Record<string, number> = {};
    try {
      for (const t of SERVING_TABLES) {
        await registerView({ conn, lake: await attachLake(db, config, lake) }, 'gold', t.source, 'src');
        const [g] = (
          await conn.runAndReadAll(`select count(*)::integer as n from (${t.projection})`)
        ).getRowObjectsJson();
        const rs = await client.execute(`SELECT count(*) AS n FROM ${keyspace}.${t.name}`);
        counts[t.name] = Number(rs.first().get('n'));
        expect({ table: t.name, rows: counts[t.name] }).toEqual({ table: t.name, rows: Number(g.n) });
      }
    } finally {
      conn.closeSync();
    }
    return counts;
  }

  beforeAll(async () => {
    // Landing: every CSV and the first 100 of the 120 events files; the rest arrive later (incremental loads).
    fs.mkdirSync(path.join(landing, 'usage_events_stream'));
    for (const f of fs.readdirSync(REFERENCE_LANDING)) {
      if (f.endsWith('.csv')) fs.copyFileSync(path.join(REFERENCE_LANDING, f), path.join(landing, f));
    }
    const files = fs.readdirSync(path.join(REFERENCE_LANDING, 'usage_events_stream')).sort();
    for (const f of files.slice(0, 100)) {
      fs.copyFileSync(
        path.join(REFERENCE_LANDING, 'usage_events_stream', f),
        path.join(landing, 'usage_events_stream', f),
      );
    }
    client = await connect(config.cassandra!);
    db = await createDuckDb(config, { needS3: false });
  });

  afterAll(async () => {
    await client?.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`).catch(() => undefined);
    await client?.shutdown();
    db?.closeSync();
  });

  it('dailyPipeline with serving on loads every table in full, reconciles, and records the run', async () => {
    const summary = run();
    expect(summary.status).toBe('succeeded');
    const s = servingStep(summary);
    for (const t of SERVING_TABLES)
      expect({ t: t.name, full: s.extra[`${t.name}.full_load`] }).toEqual({ t: t.name, full: 1 });
    const counts = await expectCountsMatchGold();
    expect(s.rowsOut).toBe(Object.values(counts).reduce((a, b) => a + b, 0));

    const runs = await client.execute(
      `SELECT run_id, status, rows_served, summary FROM ${keyspace}.pipeline_runs WHERE run_month = ?`,
      [summary.startedAt.slice(0, 7)],
    );
    const row = runs.rows.find((r) => r.get('run_id') === summary.runId);
    expect(row?.get('status')).toBe('succeeded');
    expect(Number(row?.get('rows_served'))).toBe(s.rowsOut);
    expect((JSON.parse(String(row?.get('summary'))) as Summary).steps).toHaveLength(summary.steps.length);

    const status = cpa(['serving', 'status', '--json'], cassEnv);
    expect(status.code).toBe(0);
    const st = JSON.parse(status.stdout) as { schemaVersion: number; tables: Array<{ table: string; rows: number }> };
    expect(st.schemaVersion).toBe(2);
    expect(st.tables.map((t) => [t.table, t.rows])).toEqual(SERVING_TABLES.map((t) => [t.name, counts[t.name]]));
  });

  it('loads only what changed: new files, one changed day, a removed ticket (stale row deleted)', async () => {
    // The remaining 20 files touch every usage day but no billing or ticket rows.
    const files = fs.readdirSync(path.join(REFERENCE_LANDING, 'usage_events_stream')).sort();
    for (const f of files.slice(100)) {
      fs.copyFileSync(
        path.join(REFERENCE_LANDING, 'usage_events_stream', f),
        path.join(landing, 'usage_events_stream', f),
      );
    }
    let s = servingStep(run());
    expect(s.extra['finops_daily_usage.full_load']).toBe(0);
    expect(s.extra['finops_daily_usage.rows_written']).toBeGreaterThan(0);
    expect(s.extra['revenue_monthly.rows_written']).toBe(0);
    expect(s.extra['support_tickets_summary.rows_written']).toBe(0);
    await expectCountsMatchGold();

    // Six new events on 2025-08-31 change one usage day: exactly that day's rows are reloaded.
    const src = fs.readFileSync(path.join(REFERENCE_LANDING, 'usage_events_stream', files[0]), 'utf8').split('\n');
    const extra = src
      .map((l) => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch {
          return undefined;
        }
      })
      .filter((e): e is Record<string, unknown> => !!e && e.schema_version === 2)
      .slice(0, 6)
      .map((e, i) => JSON.stringify({ ...e, event_id: `serving-test-${i}`, timestamp: '2025-08-31T12:00:00Z' }));
    fs.writeFileSync(path.join(landing, 'usage_events_stream', 'events_part_9999.jsonl'), extra.join('\n') + '\n');
    s = servingStep(run());
    const conn = await db.connect();
    await registerView({ conn, lake: await attachLake(db, config, lake) }, 'gold', 'org_daily_usage_by_service', 'g');
    const [day] = (
      await conn.runAndReadAll(`select count(*)::integer as n from g where usage_date = '2025-08-31'`)
    ).getRowObjectsJson();
    conn.closeSync();
    expect(s.extra['finops_daily_usage.rows_written']).toBe(Number(day.n));
    expect(s.extra['finops_daily_usage.rows_verified']).toBe(Number(day.n));
    await expectCountsMatchGold();

    // A ticket removed from the snapshot: its (org, day, severity) row disappears from gold, so from Cassandra too.
    const tickets = fs.readFileSync(path.join(landing, 'support_tickets.csv'), 'utf8').split('\n');
    fs.writeFileSync(path.join(landing, 'support_tickets.csv'), [tickets[0], ...tickets.slice(2)].join('\n'));
    s = servingStep(run());
    expect(s.extra['support_tickets_summary.stale_deleted']).toBeGreaterThanOrEqual(1);
    expect(s.extra['support_tickets_summary.full_load']).toBe(0);
    await expectCountsMatchGold();
  });

  it('answers the nine queries with identical rows on Cassandra and on DuckDB over gold', async () => {
    // Through the CLI, both backends, one org with GenAI usage and q3 for all orgs.
    const conn = await db.connect();
    await registerView({ conn, lake: await attachLake(db, config, lake) }, 'gold', 'genai_tokens_by_org_date', 'g');
    const [top] = (
      await conn.runAndReadAll(`select org_id from g group by 1 order by count(*) desc, 1 limit 1`)
    ).getRowObjectsJson();
    conn.closeSync();
    const org = String(top.org_id);
    for (const [q, args] of [
      ['q1', ['--org', org]],
      ['q2', ['--org', org, '--top', '3']],
      ['q3', []],
      ['q3', ['--org', org]],
      ['q4', ['--org', org]],
      ['q5', ['--org', org]],
      // SPEC §6b
      ['q6', ['--org', org]],
      ['q7', []],
      ['q7', ['--model', 'linear', '--top', '3']],
      ['q8', ['--org', org]],
      ['q9', []],
      ['q9', ['--month', '2025-07']],
    ] as Array<[QueryId, string[]]>) {
      const out = (backend: string) => {
        const r = cpa(['query', q, ...args, '--json', '--backend', backend, '--lake', lake], cassEnv);
        expect({ q, backend, code: r.code, stderr: r.stderr }).toEqual({ q, backend, code: 0, stderr: '' });
        const result = JSON.parse(r.stdout) as Record<string, unknown>;
        delete result.backend;
        return result;
      };
      const c = out('cassandra');
      // q8 lists only the org's idle and stopped-but-billed resources, which may be none
      if (q !== 'q8') expect({ q, args, rows: (c.rows as unknown[]).length > 0 }).toEqual({ q, args, rows: true });
      expect(c).toEqual(out('duckdb'));
    }

    // In process, every org and query, including explicit windows.
    const cass = await cassandraSource(config);
    const duck = await duckdbSource(config, lake);
    try {
      const orgs = await duck.orgs();
      expect(await cass.orgs()).toEqual(orgs);
      const variants: QueryParams[] = [{}, { asOf: '2025-08-15', from: '2025-07-20' }];
      for (const org of orgs) {
        for (const q of QUERY_IDS) {
          for (const v of variants) {
            const p = { ...v, org };
            const [a, b] = [await runQuery(cass, q, p), await runQuery(duck, q, p)];
            expect({ q, org, v, rows: a.rows, params: a.params }).toEqual({
              q,
              org,
              v,
              rows: b.rows,
              params: b.params,
            });
          }
        }
      }
      // Unknown org: empty, not an error, on both.
      expect((await runQuery(cass, 'q1', { org: 'org_nobody' })).rows).toEqual([]);
      expect((await runQuery(duck, 'q1', { org: 'org_nobody' })).rows).toEqual([]);
    } finally {
      await cass.close();
      await duck.close();
    }
  });

  it('re-loading writes the same rows under the same keys: no duplicates', async () => {
    const before = await expectCountsMatchGold();
    for (let i = 0; i < 2; i++) {
      const r = cpa(['serving', 'load', '--full', '--lake', lake, '--json'], cassEnv);
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
      const report = JSON.parse(r.stdout) as { rowsWritten: number };
      expect(report.rowsWritten).toBe(Object.values(before).reduce((a, b) => a + b, 0));
    }
    expect(await expectCountsMatchGold()).toEqual(before);
    // A pipeline re-run over the same landing files changes no gold partition, so serving writes nothing.
    expect(servingStep(run()).rowsOut).toBe(0);
  });

  it('reconciliation catches a corrupted table and names it; a full load repairs it', async () => {
    const ok = cpa(['serving', 'reconcile', '--lake', lake], cassEnv);
    expect(ok.code).toBe(0);
    const victim = (
      await client.execute(
        `SELECT org_id, usage_date, service, total_cost_usd FROM ${keyspace}.finops_daily_usage LIMIT 1`,
      )
    ).first();
    await client.execute(
      `UPDATE ${keyspace}.finops_daily_usage SET total_cost_usd = ? WHERE org_id = ? AND usage_date = ? AND service = ?`,
      [
        cassandra.types.BigDecimal.fromString('123456.000000'),
        victim.get('org_id'),
        victim.get('usage_date'),
        victim.get('service'),
      ],
    );
    // --json: no progress lines on stderr, so stderr is exactly the one-line error; stdout has every table's figures.
    const bad = cpa(['serving', 'reconcile', '--lake', lake, '--json'], cassEnv);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    const figures = JSON.parse(bad.stdout) as { tables: Array<{ table: string; matched: boolean }> };
    expect(figures.tables.filter((t) => !t.matched).map((t) => t.table)).toEqual(['finops_daily_usage']);
    expect(bad.stderr).toMatch(
      new RegExp(`^cpa: reconciliation failed: ${keyspace}\\.finops_daily_usage: cassandra \\d+ rows, sum [\\d.]+`),
    );
    expect(bad.stderr).not.toMatch(/org_service_cost_summary|genai_usage_daily/);

    const repair = cpa(['serving', 'load', '--full', '--table', 'finops_daily_usage', '--lake', lake], cassEnv);
    expect(repair.code).toBe(0);
    expect(cpa(['serving', 'reconcile', '--lake', lake], cassEnv).code).toBe(0);
  });

  it('cpa serving load runs in Temporal: it waits for the lake lease, a different load is refused, the same one attaches', async () => {
    // One Temporal server for every CLI below (each runs its in-process worker on it, as on a loopback TEMPORAL_ADDRESS).
    const tcfg = loadConfig({ ...cassEnv, CPA_LAKE_ROOT: lake, TEMPORAL_CLI_PATH: temporalCli() });
    const server = await startDevServer(tcfg);
    const { client: temporal, close } = await clientFor(tcfg, server.address);
    const env = { ...cassEnv, TEMPORAL_ADDRESS: server.address };
    const workflowId = servingLoadWorkflowId(keyspace);
    // A pipeline run holding the lake lease: a running workflow (no worker serves its queue) is its holder.
    const pipeline = await temporal.workflow.start('dailyPipeline', {
      taskQueue: 'cpa-test-nobody',
      workflowId: `serving-test-holder-${process.pid}`,
      args: [],
    });
    const holder = { workflowId: pipeline.workflowId, runId: pipeline.firstExecutionRunId };
    const lease = lakeLease(lake, tcfg);
    let first: Proc | undefined;
    let same: Proc | undefined;
    try {
      expect((await lease.acquire(holder, 300)).acquired).toBe(true);
      // Two tables emptied: the load has to write them again.
      await client.execute(`TRUNCATE ${keyspace}.finops_daily_usage`);
      await client.execute(`TRUNCATE ${keyspace}.revenue_monthly`);

      const waiting = /waiting: acquireLakeLease: lake .* is locked by serving-test-holder-/;
      first = spawnCpa(['serving', 'load', '--full', '--lake', lake], env);
      // It waits at the lease (its acquire activity retrying LakeLocked), writing nothing.
      await first.waitForOutput(waiting, 120_000);
      const rows = async (): Promise<number> =>
        Number((await client.execute(`SELECT count(*) AS n FROM ${keyspace}.finops_daily_usage`)).first().get('n'));
      expect(await rows()).toBe(0);

      // Another load of the keyspace with other flags is refused while it runs: exit 1, one line.
      // (Its worker may run an attempt of the waiting load's acquire activity: no WARN lines from it on stderr.)
      const other = cpa(['serving', 'load', '--table', 'revenue_monthly', '--lake', lake], {
        ...env,
        CPA_LOG_LEVEL: 'error',
      });
      expect(other.code).toBe(1);
      expect(other.stderr.trim().split('\n')).toHaveLength(1);
      expect(other.stderr).toMatch(
        new RegExp(
          `^cpa: a serving load of keyspace ${keyspace} is already running \\(${workflowId}, from .*, --full\\)`,
        ),
      );
      // The same load attaches to it (it reports the same wait), and gets the same report.
      same = spawnCpa(['serving', 'load', '--full', '--lake', lake], env);
      await same.waitForOutput(waiting, 120_000);
      expect(await rows()).toBe(0);
      expect(await lease.release(holder)).toBe(true);

      expect(await first.exited).toBe(0);
      expect(await same.exited).toBe(0);
      expect(same.stdout()).toBe(first.stdout());
      const counts = await expectCountsMatchGold();
      const total = Object.values(counts).reduce((a, b) => a + b, 0);
      expect(first.stdout()).toContain(`keyspace ${keyspace}: ${total.toLocaleString('en-US')} rows loaded`);
      // Per-table progress lines on stderr, as the in-process load printed them.
      for (const t of SERVING_TABLES)
        expect(first.stderr()).toMatch(new RegExp(`\\] ${t.name}: full, [\\d,]+ rows written, [\\d,]+ verified\n`));
      // One workflow run did it.
      expect(await listUntil(temporal, `WorkflowId = '${workflowId}'`, 1)).toHaveLength(1);
      expect(cpa(['serving', 'reconcile', '--lake', lake], cassEnv).code).toBe(0);

      // A lake without gold fails at once (non-retryable), not after the serving step's ten attempts.
      const t0 = Date.now();
      const empty = cpa(['serving', 'load', '--lake', tmpDir('srv-empty-lake')], env);
      expect({ code: empty.code, last: empty.stderr.trim().split('\n').pop() }).toEqual({
        code: 1,
        last: 'cpa: table gold.org_daily_usage_by_service has not been built yet',
      });
      expect(Date.now() - t0).toBeLessThan(60_000);
    } finally {
      for (const p of [first, same]) if (p?.child.exitCode === null) p.child.kill('SIGKILL');
      await lease.release(holder).catch(() => undefined);
      await pipeline.terminate().catch(() => undefined);
      await close();
      await server.stop();
    }
  });

  it('an unreachable Cassandra is a one-line error', () => {
    const env = { ...cassEnv, CPA_CASSANDRA_CONTACT_POINTS: '127.0.0.1:1' };
    for (const args of [
      ['query', 'q1', '--org', 'org_x'],
      ['serving', 'migrate'],
    ]) {
      const r = cpa(args, env);
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/^cpa: Cassandra unreachable at 127\.0\.0\.1:1 \(dc datacenter1\): /);
    }
  });
});
