import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { DuckDBInstance } from '@duckdb/node-api';
import { MockActivityEnvironment } from '@temporalio/testing';
import { loadConfig } from '../../config/env';
import type { Config } from '../../config/env';
import { createActivities } from '../../activities';
import type { Activities, StepMetrics } from '../../activities';
import { createDuckDb, queryRows } from '../../lake/duckdb';
import { generate } from '../../lake/generator';
import { attachLake } from '../../lake/lakehouse';
import { asUuid, flushLineage, POST_TIMEOUT_MS, stepRunId, storageNamespace } from '../../lake/lineage';
import { CSV_BRONZE_TABLES, GOLD_MARTS, SILVER_MODELS, waves } from '../../lake/tables';
import { tmpDir } from '../support/env';
import { openLineageValidator } from '../support/openlineage';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- events are free JSON

/** A Marquez stand-in: records every POST to /api/v1/lineage (or, `hang`, never answers). */
async function lineageServer(
  opts: { hang?: boolean } = {},
): Promise<{ url: string; events: Json[]; close: () => Promise<void> }> {
  const events: Json[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (opts.hang) return;
      if (req.method === 'POST' && req.url === '/api/v1/lineage') {
        events.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Json);
        res.writeHead(201).end();
      } else res.writeHead(404).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    events,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/**
 * OpenLineage (SPEC §13, issue 10): real steps on a small generated lake emit START and COMPLETE (FAIL when they
 * throw) run events, valid against the OpenLineage JSON Schema, written under `_meta/lineage/` and POSTed to
 * OPENLINEAGE_URL; an unreachable or hanging endpoint never fails or holds up a step.
 */
describe('OpenLineage run events', () => {
  const base = tmpDir('lineage');
  const landing = path.join(base, 'landing');
  const lake = path.join(base, 'lake');
  const ol = openLineageValidator();
  let server: Awaited<ReturnType<typeof lineageServer>>;
  let config: Config;
  let db: DuckDBInstance;
  let acts: Activities;

  beforeAll(async () => {
    await generate({ scale: 0.05, seed: 11, out: landing, days: 4 });
    server = await lineageServer();
    config = loadConfig({ CPA_LAKE_ROOT: lake, CPA_LANDING_ROOT: landing, OPENLINEAGE_URL: server.url });
    db = await createDuckDb(config);
    acts = createActivities({ config, db });
  });

  afterAll(async () => {
    await flushLineage();
    db?.closeSync();
    await server?.close();
  });

  /** The events written for one pipeline run, in file-name (= time) order. */
  function written(runId: string): Json[] {
    const dir = path.join(lake, '_meta', 'lineage', runId);
    return fs
      .readdirSync(dir)
      .sort()
      .map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as Json);
  }
  const ofRun = (events: Json[], runId: string) =>
    events.filter((e) => e.run.facets.parent.run.runId === asUuid(runId));
  const byJob = (events: Json[], job: string, type?: string) =>
    events.filter((e) => e.job.name === job && (!type || e.eventType === type));

  it('the schema comes from the package: OpenLineage spec 2-0-2 and the facets the events use', () => {
    expect(ol.coreId).toBe('https://openlineage.io/spec/2-0-2/OpenLineage.json');
    for (const f of [
      'ParentRunFacet',
      'ErrorMessageRunFacet',
      'SchemaDatasetFacet',
      'OutputStatisticsOutputDatasetFacet',
    ]) {
      expect(ol.facetIds.some((id) => id.endsWith(`/${f}.json`))).toBe(true);
    }
  });

  it('a run of real steps: START and COMPLETE per step, valid, written under _meta/lineage/ and posted', async () => {
    const t = { lake, landing, runId: 'lineage-run-1' };
    const steps: StepMetrics[] = [];
    for (const table of CSV_BRONZE_TABLES) steps.push(await acts.ingestCsvSource({ ...t, table }));
    steps.push(await acts.ingestEventFiles(t));
    const silver: StepMetrics[] = [];
    for (const wave of waves(SILVER_MODELS)) {
      for (const m of wave) silver.push(await acts.buildSilver({ ...t, table: m.table }));
    }
    steps.push(...silver);
    await acts.qualityGate({ ...t, silver });
    for (const m of GOLD_MARTS) steps.push(await acts.buildGold({ ...t, mart: m.table }));
    await flushLineage();

    const files = written(t.runId);
    const posted = ofRun(server.events, t.runId);
    // Every event is both written and posted, once.
    expect(files.map((e) => JSON.stringify(e)).sort()).toEqual(posted.map((e) => JSON.stringify(e)).sort());
    for (const e of files)
      expect({ job: e.job.name, type: e.eventType, errors: ol.validate(e) }).toEqual({
        job: e.job.name,
        type: e.eventType,
        errors: [],
      });

    // The validator does reject what breaks the spec: a run id that is no UUID, a facet without _producer, a facet
    // claiming another version than the package's.
    const broken = JSON.parse(JSON.stringify(files[0])) as Json;
    broken.run.runId = 'not-a-uuid';
    delete broken.run.facets.parent._producer;
    broken.job.facets.jobType._schemaURL = broken.job.facets.jobType._schemaURL.replace('2-0-3', '2-0-9');
    const errors = ol.validate(broken);
    expect(errors.some((e) => e.includes('/run/runId') && e.includes('uuid'))).toBe(true);
    expect(errors.some((e) => e.includes('_producer'))).toBe(true);
    expect(errors.some((e) => e.includes('is not the version'))).toBe(true);

    const jobs = [...steps.map((s) => s.step), 'quality.gate'];
    expect([...new Set(files.map((e) => e.job.name))].sort()).toEqual([...jobs].sort());
    for (const job of jobs) {
      const [start, ...moreStarts] = byJob(files, job, 'START');
      const [complete, ...moreCompletes] = byJob(files, job, 'COMPLETE');
      expect({ job, starts: 1 + moreStarts.length, completes: 1 + moreCompletes.length }).toEqual({
        job,
        starts: 1,
        completes: 1,
      });
      expect(complete.run.runId).toBe(start.run.runId);
      expect(start.run.runId).toBe(stepRunId(t.runId, job));
      expect(Date.parse(start.eventTime)).toBeLessThanOrEqual(Date.parse(complete.eventTime));
      // A run's COMPLETE reaches the server after its START.
      expect(
        posted.findIndex((e) => e === posted.find((p) => p.run.runId === start.run.runId && p.eventType === 'START')),
      ).toBeLessThan(posted.findIndex((p) => p.run.runId === start.run.runId && p.eventType === 'COMPLETE'));
      expect(start.run.facets.parent).toMatchObject({
        run: { runId: asUuid(t.runId) },
        job: { namespace: 'cpa', name: 'cpa' },
      });
      expect(byJob(files, job, 'FAIL')).toEqual([]);
    }

    // Datasets: namespace = the lake (or landing) URI, name = layer.table; inputs from the table registry.
    const lakeNs = storageNamespace(lake);
    const complete = (job: string) => byJob(files, job, 'COMPLETE')[0];
    expect(complete('bronze.orgs').inputs).toEqual([{ namespace: `file://${landing}`, name: 'customers_orgs.csv' }]);
    expect(complete('silver.usage_events').inputs).toEqual(
      ['bronze.usage_events', 'silver.orgs', 'silver.resources'].map((name) => ({ namespace: lakeNs, name })),
    );
    expect(complete('gold.revenue_by_org_month').inputs.map((d: Json) => d.name)).toEqual([
      'silver.billing',
      'silver.orgs',
    ]);
    expect(complete('quality.gate').inputs.map((d: Json) => d.name)).toEqual(silver.map((m) => `silver.${m.table}`));
    expect(complete('quality.gate').outputs).toEqual([]);

    // COMPLETE carries the output table's schema (from the lake) and the step's figures; START and FAIL do not.
    const billing = steps.find((s) => s.step === 'silver.billing')!;
    const out = complete('silver.billing').outputs;
    expect(out.map((d: Json) => d.name)).toEqual(['silver.billing', 'quarantine.billing']);
    const conn = await db.connect();
    const columns = await queryRows(
      conn,
      `select column_name as name, data_type as type from duckdb_columns()
       where database_name = $db and schema_name = 'silver' and table_name = 'billing' order by column_index`,
      { db: (await attachLake(db, config, lake)).alias },
    );
    conn.closeSync();
    expect(columns.length).toBeGreaterThan(5);
    expect(out[0].facets.schema.fields).toEqual(
      columns.map((c, i) => ({ name: c.name, type: c.type, ordinal_position: i + 1 })),
    );
    expect(out[0].outputFacets.outputStatistics.rowCount).toBe(billing.rowsOut);
    expect(billing.rowsOut).toBeGreaterThan(0);
    expect(out[0].facets.dataQualityMetrics).toMatchObject({
      rowCount: billing.rowsOut,
      columnMetrics: Object.fromEntries(
        Object.entries(billing.nullRates).map(([c, r]) => [c, { nullCount: Math.round(r * billing.rowsOut) }]),
      ),
    });
    expect(Object.keys(billing.nullRates).length).toBeGreaterThan(0);
    expect(out[1].facets).toBeUndefined();
    expect(byJob(files, 'silver.billing', 'START')[0].outputs).toEqual([
      { namespace: lakeNs, name: 'silver.billing' },
      { namespace: lakeNs, name: 'quarantine.billing' },
    ]);
  });

  it('a failing step emits FAIL with its error message, and the step fails with its own error', async () => {
    const bad = tmpDir('lineage-bad');
    fs.writeFileSync(
      path.join(bad, 'users.csv'),
      'user_id,org_id,e_mail,role,active,created_at,last_login\nuser_1,org_1,a@b.co,dev,True,2025-07-01,\n',
    );
    const t = { lake, landing: bad, runId: 'lineage-run-2' };
    const err = await acts.ingestCsvSource({ ...t, table: 'users' }).then(
      () => undefined,
      (e: unknown) => e as Error & { type?: string },
    );
    expect(err).toMatchObject({
      type: 'ContractViolation',
      message: "users.csv line 1 column 3: expected header 'email', found 'e_mail'",
    });
    await flushLineage();
    const files = written(t.runId);
    expect(files.map((e) => `${e.job.name} ${e.eventType}`)).toEqual(['bronze.users START', 'bronze.users FAIL']);
    const fail = files[1];
    expect(ol.validate(fail)).toEqual([]);
    expect(fail.run.runId).toBe(files[0].run.runId);
    expect(fail.run.facets.errorMessage).toMatchObject({ message: err!.message, programmingLanguage: 'TypeScript' });
    expect(fail.outputs).toEqual([{ namespace: storageNamespace(lake), name: 'bronze.users' }]);
    expect(ofRun(server.events, t.runId).map((e) => e.eventType)).toEqual(['START', 'FAIL']);
  });

  it('a lake the step refuses gets no lineage file (nothing is created there); the server still hears of it', async () => {
    const inside = path.join(landing, 'lake-inside');
    const t = { lake: inside, landing, runId: 'lineage-run-3' };
    await expect(acts.ingestCsvSource({ ...t, table: 'orgs' })).rejects.toMatchObject({
      message: expect.stringContaining('is inside the landing'),
    });
    await flushLineage();
    expect(fs.existsSync(inside)).toBe(false);
    expect(ofRun(server.events, t.runId).map((e) => `${e.job.name} ${e.eventType}`)).toEqual([
      'bronze.orgs START',
      'bronze.orgs FAIL',
    ]);
  });

  it('every attempt of one activity reports on one OpenLineage run; the parent facet names the workflow', async () => {
    const workflowRun = '0195f1d2-3c4b-7a89-b012-3456789abcde';
    const t = { lake, landing, runId: workflowRun };
    const attempt = (n: number) =>
      new MockActivityEnvironment({
        attempt: n,
        activityId: '7',
        workflowType: 'ingestEventFile',
        workflowExecution: { workflowId: 'ingest-file/x', runId: workflowRun },
      });
    await attempt(1).run(() => acts.ingestCsvSource({ ...t, table: 'orgs' }));
    await attempt(2).run(() => acts.ingestCsvSource({ ...t, table: 'orgs' }));
    await flushLineage();
    const files = written(workflowRun);
    expect(files.map((e) => e.eventType)).toEqual(['START', 'COMPLETE', 'START', 'COMPLETE']);
    expect(new Set(files.map((e) => e.run.runId))).toEqual(new Set([stepRunId(workflowRun, '7')]));
    for (const e of files) {
      expect(ol.validate(e)).toEqual([]);
      expect(e.run.facets.parent).toMatchObject({
        run: { runId: workflowRun },
        job: { namespace: 'cpa', name: 'ingestEventFile' },
      });
    }
  });

  it('an unreachable OPENLINEAGE_URL fails no step: one warning line, the events still written', async () => {
    const port = await closedPort();
    const down = createActivities({
      config: loadConfig({ CPA_LAKE_ROOT: lake, OPENLINEAGE_URL: `http://127.0.0.1:${port}` }),
      db,
    });
    const warnings: string[] = [];
    const spy = jest.spyOn(console, 'warn').mockImplementation((m: unknown) => void warnings.push(String(m)));
    try {
      const t = { lake, landing, runId: 'lineage-run-4' };
      const m = await down.ingestCsvSource({ ...t, table: 'resources' });
      expect(m.step).toBe('bronze.resources');
      await flushLineage();
      expect(written(t.runId).map((e) => e.eventType)).toEqual(['START', 'COMPLETE']);
    } finally {
      spy.mockRestore();
    }
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`lineage event not sent to http://127.0.0.1:${port}/api/v1/lineage:`);
    expect(warnings[0]).not.toContain('\n');
  });

  it('a hanging OPENLINEAGE_URL does not hold up a step: the POST is abandoned after its timeout', async () => {
    const hanging = await lineageServer({ hang: true });
    const slow = createActivities({ config: loadConfig({ CPA_LAKE_ROOT: lake, OPENLINEAGE_URL: hanging.url }), db });
    const spy = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      const t = { lake, landing, runId: 'lineage-run-5' };
      const started = Date.now();
      await slow.ingestCsvSource({ ...t, table: 'tickets' });
      expect(Date.now() - started).toBeLessThan(POST_TIMEOUT_MS);
      await flushLineage();
      expect(Date.now() - started).toBeGreaterThanOrEqual(POST_TIMEOUT_MS);
      expect(written(t.runId).map((e) => e.eventType)).toEqual(['START', 'COMPLETE']);
    } finally {
      spy.mockRestore();
      await hanging.close();
    }
  });
});
