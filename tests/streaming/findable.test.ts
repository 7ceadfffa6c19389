import fs from 'node:fs';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { loadConfig } from '../../config/env';
import { EVENTS_PREFIX } from '../../activities/bronze';
import { generate } from '../../lake/generator';
import { createWorker } from '../../worker/main';
import { hashLandingFile, ingestFileWorkflowId, startIngestFile } from '../../worker/watcher';
import { tmpDir } from '../support/env';
import { listUntil, sharedTestEnv, uniqueName } from '../support/temporal';

/**
 * Issue 10 item 3 (SPEC §13): a per-file ingestion is findable in the Web UI like a pipeline run — its id names the
 * file, and it carries CpaRunKind = stream, CpaFileKey, CpaStatus and CpaLogicalDate (the file's usage days).
 */
describe('per-file ingestion runs are findable by file, kind, status and date', () => {
  let env: TestWorkflowEnvironment;
  // The jest run's shared dev server (search attributes registered): this file's own task queue.
  const taskQueue = uniqueName('test-findable');

  beforeAll(async () => {
    env = await sharedTestEnv();
  });

  afterAll(async () => {
    await env?.teardown();
  });

  it('ingest-file/<key>@<hash>, tagged stream + key + days; a failed one is CpaStatus failed', async () => {
    const source = tmpDir('findable-src');
    await generate({ scale: 0.02, seed: 5, out: source });
    const landing = tmpDir('findable-landing');
    const lake = tmpDir('findable-lake');
    const files = fs.readdirSync(path.join(source, EVENTS_PREFIX)).sort();
    fs.mkdirSync(path.join(landing, EVENTS_PREFIX));
    const key = `${EVENTS_PREFIX}/${files[0]}`;
    fs.copyFileSync(path.join(source, key), path.join(landing, key));
    // Days of the file, read independently of the pipeline.
    const days = [
      ...new Set(
        [...fs.readFileSync(path.join(landing, key), 'utf8').matchAll(/"timestamp": "(\d{4}-\d{2}-\d{2})T/g)]
          .map((m) => m[1])
          .filter((d) => !Number.isNaN(Date.parse(`${d}T00:00:00Z`))),
      ),
    ].sort();
    expect(days.length).toBeGreaterThan(0);

    const config = loadConfig({ CPA_LAKE_ROOT: lake, TEMPORAL_TASK_QUEUE: taskQueue });
    const { worker, db } = await createWorker(config, env.nativeConnection);
    try {
      await worker.runUntil(async () => {
        const { sha256 } = await hashLandingFile(config, landing, key);
        const started = await startIngestFile(env.client, config, {
          fileKey: key,
          lake,
          landing,
          contentSha256: sha256,
        });
        await started.handle!.result();
        expect(started.workflowId).toBe(ingestFileWorkflowId(lake, key, sha256));
        expect(started.workflowId).toMatch(new RegExp(`^ingest-file/${key.replace(/\./g, '\\.')}@[0-9a-f]{16}$`));

        const d = await env.client.workflow.getHandle(started.workflowId).describe();
        const sa = d.searchAttributes as Record<string, unknown[]>;
        expect(sa.CpaRunKind).toEqual(['stream']);
        expect(sa.CpaFileKey).toEqual([key]);
        expect(sa.CpaStatus).toEqual(['succeeded']);
        expect(sa.CpaLogicalDate).toEqual([days.length === 1 ? days[0] : `${days[0]}..${days.at(-1)}`]);
        expect(d.memo).toMatchObject({ kind: 'stream', status: 'succeeded', fileKey: key, contentSha256: sha256 });

        // The Web UI's query (visibility is eventually consistent, hence the polling helper), on this file's queue
        // (other files stream on the same server).
        const found = await listUntil(
          env.client,
          `CpaRunKind = "stream" AND CpaFileKey = "${key}" AND TaskQueue = "${taskQueue}"`,
          1,
        );
        expect(found.map((w) => w.workflowId)).toEqual([started.workflowId]);

        // A file bronze refuses (a symlink: bad input, not retried): the run fails, and its tags say so.
        const badKey = `${EVENTS_PREFIX}/zz_link.jsonl`;
        fs.symlinkSync(path.join(landing, key), path.join(landing, badKey));
        const bad = await env.client.workflow.start('ingestEventFile', {
          taskQueue: config.temporal.taskQueue,
          workflowId: `ingest-file/${badKey}@${taskQueue}`,
          args: [{ fileKey: badKey, lake, landing }],
        });
        await expect(bad.result()).rejects.toThrow();
        const failed = await bad.describe();
        const fsa = failed.searchAttributes as Record<string, unknown[]>;
        expect(fsa).toMatchObject({ CpaRunKind: ['stream'], CpaFileKey: [badKey], CpaStatus: ['failed'] });
        expect(fsa.CpaLogicalDate).toBeUndefined();
        expect(String((failed.memo as Record<string, unknown>).error)).toMatch(/zz_link\.jsonl/);
      });
    } finally {
      db.closeSync();
    }
  }, 300_000);
});
