import fs from 'node:fs';
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { loadConfig } from '../../config/env';
import { createActivities } from '../../activities';
import type { RunSummary } from '../../activities';
import { emptyMetrics } from '../../activities/common';
import { createDuckDb } from '../../lake/duckdb';
import { reportUri } from '../../lake/report-data';
import { tmpDir } from '../support/env';
import { sharedTestEnv, uniqueName } from '../support/temporal';
import { withWorkerPair } from '../support/workers';

/**
 * dailyPipeline writes its quality report on the failure path too, with the failed gate's checks: fake steps, a
 * gate that fails, the real writeQualityReport on a real (empty) lake, and a captured run record.
 */
describe('dailyPipeline writes a quality report for a run the gate failed', () => {
  let env: TestWorkflowEnvironment;
  // The jest run's shared dev server: this file's own task queue, and its workflow id under the same name.
  const taskQueue = uniqueName('test-quality-report');
  const config = loadConfig({ CPA_LAKE_ROOT: '/tmp/unused' });

  beforeAll(async () => {
    env = await sharedTestEnv();
  });

  afterAll(async () => {
    await env?.teardown();
  });

  it('records the failed checks and a pointer to the page, and the page shows them', async () => {
    const lake = tmpDir('report-wf-lake');
    const db = await createDuckDb(config);
    const real = createActivities({ config, db });
    const recorded: RunSummary[] = [];
    const checks = [
      { table: 'usage_events', check: 'quarantine_rate', value: 0.09, limit: 0.05, passed: false },
      { table: 'orgs', check: 'quarantine_rate', value: 0, limit: 0.05, passed: true },
    ];
    const step = (name: string) => async () => {
      const m = emptyMetrics(`silver.${name}`, 'silver', 'usage_events');
      m.rowsIn = 100;
      m.rowsOut = 91;
      m.quarantined = { negative_cost: 9 };
      return m;
    };
    const acts = {
      ...real,
      ...Object.fromEntries(
        ['ingestCsvSource', 'ingestEventFiles', 'buildSilver', 'buildGold'].map((n) => [n, step(n)]),
      ),
      planWave: async (input: { tables: string[] }) => ({ run: input.tables.slice(0, 1), skipped: [] }),
      qualityGate: async () => {
        throw ApplicationFailure.nonRetryable(
          'quality gate failed: silver.usage_events quarantine rate 9.00% > limit 5.00% (top rule negative_cost: 9 rows)',
          'QualityGateFailed',
          { checks },
        );
      },
      recordRun: async (s: RunSummary) => {
        recorded.push(s);
        return s;
      },
    };
    const err = await withWorkerPair(env.nativeConnection, taskQueue, acts, () =>
      env.client.workflow
        .execute('dailyPipeline', {
          taskQueue,
          workflowId: `${taskQueue}/daily-pipeline/2025-08-05`,
          args: [{ runDate: '2025-08-05', lake, landing: '/nonexistent' }],
        })
        .then(
          () => undefined,
          (e: unknown) => e,
        ),
    );
    db.closeSync();
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(recorded).toHaveLength(1);
    const [summary] = recorded;
    expect(summary).toMatchObject({ status: 'failed', gate: { passed: false, checks } });
    expect(summary.report).toEqual({ uri: reportUri(lake, summary.runId) });
    const html = fs.readFileSync(summary.report!.uri!, 'utf8');
    // The headline names the step, then the gate's reason (workflows/failures.ts).
    expect(summary.error).toMatch(/^quality gate \(silver → gold\): quality gate failed: silver\.usage_events/);
    expect(html).toContain(
      '<p class="err"><strong>Run failed:</strong> quality gate (silver → gold): quality gate failed: silver.usage_events',
    );
    expect(html).toContain('Quality gate: <span class="bad">failed</span>');
    expect(html).toContain(
      '<td>usage_events</td><td>quarantine_rate</td><td class="n">9.000%</td><td class="n">5.000%</td><td class="bad">FAILED</td>',
    );
    expect((html.match(/<svg class="chart"/g) ?? []).length).toBe(4);
  });
});
