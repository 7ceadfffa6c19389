import fs from 'node:fs';
import { loadConfig } from '../../config/env';
import { lakeLease, leaseUri } from '../../lake/lease';
import { clientFor, startDevServer } from '../../worker/temporal';
import { servingLoadWorkflowId } from '../../workflows/names';
import { cpa, temporalCli, tmpDir } from '../support/env';
import { spawnCpa } from '../support/processes';
import type { Proc } from '../support/processes';
import { listUntil } from '../support/temporal';

/**
 * `cpa serving load` is the servingLoad workflow (workflows/serving-load.ts), not a second runner: without a Cassandra
 * to load (contact point 127.0.0.1:1) the load stays in flight as long as needed to show how loaders take turns. It
 * waits while a pipeline run holds the lake lease, then retries the unreachable Cassandra with the serving step's
 * profile; meanwhile another load of the keyspace with other flags is refused in one line, and the same load attaches
 * to the running one (one workflow run). Cancelling it releases the lease and both CLIs exit 1. The loads themselves,
 * on a real Cassandra, are in tests/stack/serving.test.ts.
 */
describe('cpa serving load through Temporal', () => {
  const lake = tmpDir('srvload-lake');
  const keyspace = `cpa_srvload_${process.pid}`;
  const cassEnv = {
    CPA_CASSANDRA_CONTACT_POINTS: '127.0.0.1:1',
    CPA_CASSANDRA_LOCAL_DC: 'datacenter1',
    CPA_CASSANDRA_KEYSPACE: keyspace,
  };
  const procs: Proc[] = [];

  afterAll(() => {
    for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  });

  it('waits for the lake lease and for Cassandra, refuses a different load, attaches the same one', async () => {
    const config = loadConfig({ ...cassEnv, CPA_LAKE_ROOT: lake, TEMPORAL_CLI_PATH: temporalCli() });
    const server = await startDevServer(config);
    const { client, close } = await clientFor(config, server.address);
    const env = { ...cassEnv, TEMPORAL_ADDRESS: server.address };
    const workflowId = servingLoadWorkflowId(keyspace);
    // A pipeline run holding the lake lease: a running workflow (no worker serves its queue) is its holder.
    const pipeline = await client.workflow.start('dailyPipeline', {
      taskQueue: 'cpa-test-nobody',
      workflowId: `srvload-holder-${process.pid}`,
      args: [],
    });
    const holder = { workflowId: pipeline.workflowId, runId: pipeline.firstExecutionRunId };
    const lease = lakeLease(lake, config);
    try {
      expect((await lease.acquire(holder, 300)).acquired).toBe(true);
      const load = ['serving', 'load', '--full', '--lake', lake];
      const first = spawnCpa(load, env);
      procs.push(first);
      await first.waitForOutput(/waiting: acquireLakeLease: lake .* is locked by srvload-holder-/, 90_000);

      const other = cpa(['serving', 'load', '--table', 'revenue_monthly', '--lake', lake], {
        ...env,
        CPA_LOG_LEVEL: 'error',
      });
      expect({ code: other.code, lines: other.stderr.trim().split('\n').length }).toEqual({ code: 1, lines: 1 });
      expect(other.stderr).toMatch(
        new RegExp(
          `^cpa: a serving load of keyspace ${keyspace} is already running \\(${workflowId}, from .*, --full\\): ` +
            'wait for it or cancel it in the Web UI',
        ),
      );
      const unknownTable = cpa(['serving', 'load', '--table', 'nope', '--lake', lake], env);
      expect(unknownTable).toMatchObject({ code: 1 });
      expect(unknownTable.stderr).toMatch(/^cpa: unknown serving table\(s\) nope \(expected finops_daily_usage, /);

      const same = spawnCpa(load, env);
      procs.push(same);
      await same.waitForOutput(/waiting: acquireLakeLease: lake .* is locked by srvload-holder-/, 90_000);

      // The pipeline ends: the load takes the lease and retries the unreachable Cassandra (the serving step's profile).
      expect(await lease.release(holder)).toBe(true);
      const cassandraDown = /waiting: loadServingReport: Cassandra unreachable at 127\.0\.0\.1:1 \(dc datacenter1\)/;
      await first.waitForOutput(cassandraDown, 90_000);
      await same.waitForOutput(cassandraDown, 90_000);
      expect((await lease.read())?.holder.workflowId).toBe(workflowId);
      expect(await listUntil(client, `WorkflowId = '${workflowId}'`, 1)).toHaveLength(1);

      // Cancelled: the lease is released on the way out, and both CLIs report the failure.
      await client.workflow.getHandle(workflowId).cancel();
      expect(await first.exited).toBe(1);
      expect(await same.exited).toBe(1);
      expect(first.stderr()).toMatch(/^cpa: .*cancel/im);
      expect(fs.existsSync(leaseUri(lake))).toBe(false);
    } finally {
      await lease.release(holder).catch(() => undefined);
      await pipeline.terminate().catch(() => undefined);
      await close();
      await server.stop();
    }
  });
});
