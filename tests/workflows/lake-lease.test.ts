import { ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { loadConfig } from '../../config/env';
import { createActivities } from '../../activities';
import type { LeaseInput } from '../../activities';
import { emptyMetrics } from '../../activities/common';
import { acquireLakeLease } from '../../activities/runs';
import { lakeLease } from '../../lake/lease';
import { workflowRunClosed } from '../../worker/main';
import { tmpDir } from '../support/env';
import { sharedTestEnv, uniqueName } from '../support/temporal';
import { withWorkerPair } from '../support/workers';

/**
 * dailyPipeline's lease handling on a real dev server with fake steps: the lease is renewed on a timer while
 * a long step runs, released at the end, and a lease found taken over stops the run with LakeLeaseLost.
 */
describe('dailyPipeline holds the lake lease', () => {
  let env: TestWorkflowEnvironment;
  // The jest run's shared dev server: this file's own task queue, and its workflow ids under the same name.
  const taskQueue = uniqueName('test-lake-lease');
  const id = (name: string): string => `${taskQueue}/${name}`;
  const config = loadConfig({ CPA_LAKE_ROOT: '/tmp/unused' });

  beforeAll(async () => {
    // Real time on a dev server: the renewal timer is 300 ms, so nothing needs skipping (and a time-skipping server
    // racing a real 1.5 s activity against those timers made this test hang once in CI).
    env = await sharedTestEnv();
  });

  afterAll(async () => {
    await env?.teardown();
  });

  function activities(opts: { loseOnRenewal?: boolean }) {
    const real = createActivities({ config, db: undefined as never });
    const calls: string[] = [];
    const step = (name: string) => async (): Promise<unknown> => {
      // The one slow step: long enough for renewals (every 300 ms here) to fire while it runs.
      if (name === 'buildGold') await new Promise((r) => setTimeout(r, 1500));
      return name === 'recordRun' ? undefined : emptyMetrics(`fake.${name}`, 'gold', name);
    };
    const fakes = Object.fromEntries(
      ['ingestCsvSource', 'ingestEventFiles', 'buildSilver', 'qualityGate', 'buildGold', 'recordRun'].map((n) => [
        n,
        step(n),
      ]),
    );
    return {
      calls,
      activities: {
        ...real,
        ...fakes,
        // Every model of a wave runs (as if all were stale).
        planWave: async (input: { tables: string[] }) => ({ run: input.tables, skipped: [] }),
        // Every date has data (the real activity reads bronze, which these fake steps never write).
        dateData: async () => ({ usageEvents: 1 }),
        acquireLakeLease: async (input: LeaseInput) => {
          calls.push('acquire');
          return { ...(await real.acquireLakeLease(input)), renewEveryMs: 300 };
        },
        renewLakeLease: async (input: LeaseInput) => {
          calls.push('renew');
          if (opts.loseOnRenewal) {
            throw ApplicationFailure.nonRetryable('lake lease was lost: now held by someone else', 'LakeLeaseLost');
          }
          return real.renewLakeLease(input);
        },
        releaseLakeLease: async (input: LeaseInput) => {
          calls.push('release');
          return real.releaseLakeLease(input);
        },
      },
    };
  }

  const run = <T>(acts: object, fn: () => Promise<T>): Promise<T> =>
    withWorkerPair(env.nativeConnection, taskQueue, acts, fn);

  it('renews while a long step runs and releases at the end', async () => {
    const lake = tmpDir('lease-renew');
    const fake = activities({});
    const summary = await run(fake.activities, () =>
      env.client.workflow.execute('dailyPipeline', {
        taskQueue,
        workflowId: id('daily-pipeline/2025-08-01'),
        args: [{ runDate: '2025-08-01', lake, landing: '/nonexistent' }],
      }),
    );
    expect(summary).toMatchObject({ status: 'succeeded', logicalDate: '2025-08-01' });
    expect(fake.calls[0]).toBe('acquire');
    expect(fake.calls.filter((c) => c === 'renew').length).toBeGreaterThan(0);
    expect(fake.calls[fake.calls.length - 1]).toBe('release');
  });

  it('stops the run with LakeLeaseLost when a renewal finds the lease taken over', async () => {
    const lake = tmpDir('lease-lost');
    const fake = activities({ loseOnRenewal: true });
    const err = await run(fake.activities, () =>
      env.client.workflow
        .execute('dailyPipeline', {
          taskQueue,
          workflowId: id('daily-pipeline/2025-08-02'),
          args: [{ runDate: '2025-08-02', lake, landing: '/nonexistent' }],
        })
        .then(
          () => undefined,
          (e: unknown) => e,
        ),
    );
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause.type).toBe('LakeLeaseLost');
    expect(cause.message).toContain('lake lease was lost');
    expect(fake.calls[fake.calls.length - 1]).toBe('release');
  });

  /** A workflow run on a queue nobody polls: it stays running until terminated. */
  async function parkedRun(workflowId: string): Promise<{ workflowId: string; runId: string }> {
    const h = await env.client.workflow.start('dailyPipeline', {
      taskQueue: `${taskQueue}-nobody-polls`,
      workflowId,
      args: [{ lake: '/nonexistent', landing: '/nonexistent' }],
    });
    return { workflowId, runId: h.firstExecutionRunId };
  }

  it('takes over at once a lease whose holder workflow is closed or unknown, never a running one', async () => {
    const lake = tmpDir('lease-gone');
    const deps = {
      config,
      db: undefined as never,
      holderGone: (h: { workflowId: string; runId: string }) => workflowRunClosed(env.nativeConnection, 'default', h),
    };
    const running = await parkedRun(id('lease-holder-running'));
    const me = { workflowId: id('lease-contender'), runId: 'r-1' };
    // A live lease (TTL 300 s) of a running workflow: the contender waits (retryable LakeLocked).
    await lakeLease(lake, config).acquire(running, 300);
    await expect(acquireLakeLease(deps, { lake, holder: me })).rejects.toMatchObject({ type: 'LakeLocked' });

    // The holder is terminated without releasing: the contender takes the lease over at once, not after 300 s.
    await env.client.workflow.getHandle(running.workflowId, running.runId).terminate('test');
    const grant = await acquireLakeLease(deps, { lake, holder: me });
    expect(grant.tookOverFrom).toEqual(running);
    expect((await lakeLease(lake, config).read())?.holder).toEqual(me);

    // A holder the server does not know (its embedded dev server was restarted without state): taken over too.
    const unknown = { workflowId: id('daily-pipeline/never-ran'), runId: '8d7f5b0e-0000-4000-8000-000000000000' };
    const lake2 = tmpDir('lease-unknown');
    await lakeLease(lake2, config).acquire(unknown, 300);
    expect((await acquireLakeLease(deps, { lake: lake2, holder: me })).tookOverFrom).toEqual(unknown);
  });

  it('a run waiting behind a closed holder starts within seconds', async () => {
    const lake = tmpDir('lease-closed-run');
    const holder = await parkedRun(id('lease-holder-terminated'));
    await lakeLease(lake, config).acquire(holder, 300);
    await env.client.workflow.getHandle(holder.workflowId, holder.runId).terminate('killed without release');
    const fake = activities({});
    const real = createActivities({
      config,
      db: undefined as never,
      holderGone: (h) => workflowRunClosed(env.nativeConnection, 'default', h),
    });
    const started = Date.now();
    const summary = await run({ ...fake.activities, acquireLakeLease: real.acquireLakeLease }, () =>
      env.client.workflow.execute('dailyPipeline', {
        taskQueue,
        workflowId: id('daily-pipeline/2025-08-03'),
        args: [{ runDate: '2025-08-03', lake, landing: '/nonexistent' }],
      }),
    );
    expect(summary).toMatchObject({ status: 'succeeded' });
    // The lease's TTL is 300 s; taking it over needs one acquire attempt.
    expect(Date.now() - started).toBeLessThan(60_000);
  });
});
