import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { loadConfig } from '../../config/env';
import { EVENTS_PREFIX } from '../../activities/bronze';
import { clientFor, startDevServer } from '../../worker/temporal';
import type { TemporalEndpoint } from '../../worker/temporal';
import { ingestFileWorkflowId } from '../../worker/watcher';
import { REPO, temporalCli, tmpDir } from '../support/env';
import { cpaEnv } from '../support/processes';
import { bronzeStats, landedEventFiles, speedState, speedTotals, waitFor } from './support';

/**
 * `kill -9` of a real worker process (`node bin/cpa.js worker`: pipeline worker + events writer + watcher) in the
 * middle of a file's bronze ingest, and again in the middle of its speed-layer update. A restarted worker picks the
 * activity up after the heartbeat timeout; the workflow completes and bronze and the speed layer hold every event
 * exactly once.
 */
describe('worker killed during a file ingestion', () => {
  const config = loadConfig({ CPA_LAKE_ROOT: '/tmp/unused', TEMPORAL_CLI_PATH: temporalCli() });
  let server: TemporalEndpoint;
  let client: Client;
  let closeClient: () => Promise<void>;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    server = await startDevServer(config);
    ({ client, close: closeClient } = await clientFor(config, server.address));
  });

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await closeClient?.();
    await server?.stop();
  });

  it('resumes after kill -9 and ends with no duplicate and no missing event', async () => {
    const landing = tmpDir('kill-landing');
    const lake = tmpDir('kill-lake');
    const key = `${EVENTS_PREFIX}/big_0000.jsonl`;
    // 300,000 distinct events over two days: long enough (seconds) per activity to be killed in the middle.
    const n = 300_000;
    const lines: string[] = [];
    for (let i = 0; i < n; i++) {
      const ts = new Date(Date.UTC(2025, 7, 1) + (i % 2880) * 60_000).toISOString().replace('.000Z', 'Z');
      lines.push(
        `{"event_id": "evt_k${i}", "timestamp": "${ts}", "org_id": "org_k${i % 7}", "resource_id": null, "service": "compute", ` +
          `"region": "us-east", "metric": "requests", "value": ${100 + (i % 50)}, "unit": "count", "cost_usd_increment": 0.${String(1000 + (i % 9000)).padStart(4, '0')}, "schema_version": 1}`,
      );
    }
    fs.mkdirSync(path.join(landing, EVENTS_PREFIX), { recursive: true });
    const content = `${lines.join('\n')}\n`;
    fs.writeFileSync(path.join(landing, key), content);
    const sha = crypto.createHash('sha256').update(content).digest('hex');
    const workflowId = ingestFileWorkflowId(lake, key, sha);

    const spawnWorker = (): ChildProcess => {
      const child = spawn(process.execPath, [path.join(REPO, 'bin', 'cpa.js'), 'worker'], {
        cwd: REPO,
        env: cpaEnv({
          TEMPORAL_ADDRESS: server.address,
          TEMPORAL_TASK_QUEUE: 'kill-test',
          CPA_LAKE_ROOT: lake,
          CPA_LANDING_ROOT: landing,
          CPA_WATCH_ENABLED: 'true',
          CPA_WATCH_INTERVAL_SECONDS: '0.5',
        }),
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      children.push(child);
      return child;
    };
    const kill9 = async (child: ChildProcess): Promise<void> => {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    };
    /** Resolves once `activity` is running (STARTED) in the workflow; returns its attempt number. */
    const running = (activity: string) =>
      waitFor(
        `${activity} to be running`,
        async () => {
          const d = await client.workflow
            .getHandle(workflowId)
            .describe()
            .catch(() => undefined);
          const a = (d?.raw.pendingActivities ?? []).find(
            (p) => p.activityType?.name === activity && Number(p.state) === 2,
          );
          return a ? Number(a.attempt) : undefined;
        },
        180_000,
      );

    // Worker 1 (its watcher starts the workflow) dies in the middle of the bronze ingest.
    const w1 = spawnWorker();
    await running('ingestEventFiles');
    await new Promise((r) => setTimeout(r, 400));
    await kill9(w1);
    expect(await landedEventFiles(lake)).not.toContain(key);

    // Worker 2 gets the retried bronze activity, then dies in the middle of the speed-layer update.
    const w2 = spawnWorker();
    const speedAttempt = await running('updateSpeedLayer');
    expect(speedAttempt).toBe(1);
    await new Promise((r) => setTimeout(r, 300));
    await kill9(w2);
    expect((await speedState(lake)).files[key]?.status).not.toBe('done');

    // Worker 3 finishes the workflow.
    const w3 = spawnWorker();
    const handle = client.workflow.getHandle(workflowId);
    const result = (await handle.result()) as { bronze: { rowsIn: number }; speed: { extra: Record<string, number> } };
    w3.kill('SIGTERM');

    const history = await handle.fetchHistory();
    const attempts = (name: string) =>
      (history.events ?? []).filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === name).length;
    expect(attempts('ingestEventFiles')).toBe(1); // one scheduled activity, retried inside (attempt > 1)
    const started = (history.events ?? []).filter((e) => e.activityTaskStartedEventAttributes);
    expect(started.some((e) => Number(e.activityTaskStartedEventAttributes!.attempt) > 1)).toBe(true);

    expect(await bronzeStats(lake)).toEqual({ rows: n, distinctIds: n, nullIds: 0 });
    expect(await landedEventFiles(lake)).toEqual([key]);
    const totals = await speedTotals(lake);
    expect([totals['5m'].events, totals['15m'].events, totals['1h'].events]).toEqual([n, n, n]);
    expect(result.speed.extra.events_on_time).toBe(n);
  }, 420_000);
});
