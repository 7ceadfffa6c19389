import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../../config/env';
import type { Config } from '../../config/env';
import { dropLakeCatalog } from '../../lake/lakehouse';
import { connect } from '../../lake/cassandra';
import { S3Storage } from '../../lake/storage';
import { cassandraSource, duckdbSource, QUERY_IDS, runQuery } from '../../serving/queries';
import { cpa, REFERENCE_LANDING, REPO, silverEventsQuality, tmpDir } from '../support/env';
import { expectFiguresEqual, lakeFigures } from '../support/figures';
import type { Figures } from '../support/figures';
import { spawnCpa } from '../support/processes';

/**
 * SPEC §12, end to end on the stack: "storage or Cassandra unavailable for a while → retries, then success once it
 * is back". A real `cpa run` on the reference dataset; once it is in the middle of its work the test stops the stack's
 * MinIO (or Cassandra) with `scripts/stack.sh down`, keeps it down for 30 s, and starts it again. The run must end
 * with exit 0, after at least one attempt failed on the outage, and its gold (and serving) must equal a clean run:
 * the independently derived figures of tests/e2e/reference/expected.json, and for serving the product's own
 * reconciliation plus every query answered identically by Cassandra and by DuckDB over gold.
 *
 * Before the fix, the 30 s MinIO outage failed the run: transforms had five attempts (2 s → 16 s of backoff, 30 s in
 * all) and the fifth failed two seconds before MinIO was back.
 */
const OUTAGE_MS = 30_000;
const STACK = path.join(REPO, 'scripts', 'stack.sh');
const expected = JSON.parse(
  fs.readFileSync(path.join(REPO, 'tests', 'e2e', 'reference', 'expected.json'), 'utf8'),
) as Figures;

function stack(action: 'up' | 'down', service: 'minio' | 'cassandra'): void {
  execFileSync('bash', [STACK, action, service], { cwd: REPO, stdio: ['ignore', 'ignore', 'inherit'] });
}

/** Stops `service`, waits OUTAGE_MS, starts it again (waiting until it is ready); returns when it is back. */
async function outage(service: 'minio' | 'cassandra'): Promise<void> {
  stack('down', service);
  try {
    await new Promise((r) => setTimeout(r, OUTAGE_MS));
  } finally {
    stack('up', service);
  }
}

afterAll(() => {
  // Whatever happened, the stack is left up for the next test file.
  stack('up', 'minio');
  stack('up', 'cassandra');
});

describe('MinIO stopped for 30 s in the middle of a run on an S3 lake', () => {
  const config: Config = loadConfig({ ...process.env, CPA_LAKE_ROOT: 's3://placeholder' });
  const bucket = process.env.CPA_S3_BUCKET ?? 'cpa-lake';
  const root = `s3://${bucket}/test-outage-${Date.now().toString(36)}-${process.pid}`;
  const landing = `${root}/landing`;
  const lake = `${root}/lake`;
  const s3 = new S3Storage(config);

  afterAll(async () => {
    if (process.env.CPA_KEEP_TEST_DATA) return;
    await s3.deletePrefix(root);
    await dropLakeCatalog(config, lake);
  });

  it('retries while storage is down and ends with gold equal to a clean run', async () => {
    const up = cpa(['landing', 'upload', REFERENCE_LANDING, landing, '--json']);
    expect({ code: up.code, stderr: up.stderr }).toEqual({ code: 0, stderr: '' });

    const run = spawnCpa(['run', '--landing', landing, '--lake', lake], {});
    // Bronze is written and silver has started: the outage hits steps that read and write the lake.
    await run.waitForOutput(/running: .*silver\./, 180_000);
    await outage('minio');
    const code = await run.exited;
    expect({ code, tail: run.stderr().slice(-2000) }).toEqual({ code: 0, tail: expect.any(String) });
    // The outage was felt: the progress lines show steps retried (Temporal's attempt count), whichever were in flight.
    expect(run.stderr()).toMatch(/running: .*\(attempt \d+\)/);

    expectFiguresEqual(await lakeFigures(lake, config), expected);
    expect(silverEventsQuality(lake).quarantined).toEqual({ negative_cost: 211 });
    expect(await s3.listUploads(lake)).toEqual([]);
    // A second run finds nothing to do: the retried attempts left no half-published partition behind.
    const again = cpa(['run', '--landing', landing, '--lake', lake, '--json']);
    expect({ code: again.code, stderr: again.stderr }).toEqual({ code: 0, stderr: '' });
    const summary = JSON.parse(again.stdout) as { steps: Array<{ step: string; partitionsWritten: number }> };
    expect(summary.steps.filter((s) => s.partitionsWritten > 0)).toEqual([]);
  });
});

describe('Cassandra stopped for 30 s in the middle of the serving load', () => {
  const keyspace = `cpa_outage_${Date.now().toString(36)}_${process.pid}`;
  const cassEnv = {
    CPA_CASSANDRA_CONTACT_POINTS: process.env.CPA_CASSANDRA_CONTACT_POINTS ?? '127.0.0.1:9042',
    CPA_CASSANDRA_LOCAL_DC: process.env.CPA_CASSANDRA_LOCAL_DC ?? 'datacenter1',
    CPA_CASSANDRA_KEYSPACE: keyspace,
  };
  const lake = tmpDir('outage-lake');
  const config: Config = loadConfig({ ...process.env, ...cassEnv, CPA_LAKE_ROOT: lake });

  afterAll(async () => {
    const client = await connect(config.cassandra!).catch(() => undefined);
    await client?.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`).catch(() => undefined);
    await client?.shutdown();
  });

  it('retries the load while Cassandra is down and serves what a clean run serves', async () => {
    const run = spawnCpa(['run', '--landing', REFERENCE_LANDING, '--lake', lake], cassEnv);
    await run.waitForOutput(/running: .*serving: /, 180_000);
    await outage('cassandra');
    const code = await run.exited;
    expect({ code, tail: run.stderr().slice(-2000) }).toEqual({ code: 0, tail: expect.any(String) });
    expect(run.stderr()).toMatch(/running: serving: .* \(attempt \d+\)/);

    expectFiguresEqual(await lakeFigures(lake, config), expected);
    // The product's own check: every serving table holds its gold projection's rows, counts and sums.
    const reconcile = cpa(['serving', 'reconcile', '--lake', lake, '--json'], cassEnv);
    expect({ code: reconcile.code, stderr: reconcile.stderr }).toEqual({ code: 0, stderr: '' });
    const figures = JSON.parse(reconcile.stdout) as { tables: Array<{ table: string; matched: boolean }> };
    expect(figures.tables.length).toBeGreaterThan(0);
    expect(figures.tables.filter((t) => !t.matched)).toEqual([]);

    // Every query, every org: Cassandra answers exactly what DuckDB over gold answers.
    const cass = await cassandraSource(config);
    const duck = await duckdbSource(config, lake);
    try {
      const orgs = await duck.orgs();
      expect(orgs.length).toBe(80);
      expect(await cass.orgs()).toEqual(orgs);
      for (const org of orgs) {
        for (const q of QUERY_IDS) {
          const [a, b] = [await runQuery(cass, q, { org }), await runQuery(duck, q, { org })];
          expect({ q, org, rows: a.rows }).toEqual({ q, org, rows: b.rows });
        }
      }
    } finally {
      await cass.close();
      await duck.close();
    }
  });
});
