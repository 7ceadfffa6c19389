import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import type { DuckDBInstance } from '@duckdb/node-api';
import { loadConfig } from '../../config/env';
import { fencedActivity } from '../../activities/common';
import { createDuckDb, queryRows } from '../../lake/duckdb';
import { attachLake, lakeWrite, qualified } from '../../lake/lakehouse';
import { lakeLease } from '../../lake/lease';
import { latestAttempt, pruneAttempts } from '../../lake/attempts';
import { tmpDir } from '../support/env';

/**
 * The commit fence (lake/fence.ts, activities/common.ts fencedActivity): an activity attempt that lost its task —
 * a later attempt registered, its run lost the lake lease, or Temporal cancelled it — rolls back instead of
 * committing. Real DuckLake lakes, Temporal's mock activity context.
 */
describe('commit fence', () => {
  const lakeRoot = tmpDir('fence');
  const config = loadConfig({ CPA_LAKE_ROOT: lakeRoot });
  let db: DuckDBInstance;
  const execution = { workflowId: 'daily-pipeline/fence', runId: 'run-1' };

  beforeAll(async () => {
    db = await createDuckDb(config, { needS3: false });
    const lake = await attachLake(db, config, lakeRoot);
    const conn = await db.connect();
    await conn.run(`create table ${qualified(lake, 'silver', 'fenced')} (v integer, writer varchar)`);
    conn.closeSync();
  });

  afterAll(() => db?.closeSync());

  const deps = () => ({ config, db });

  /** One lake write, as an activity attempt would make it. */
  async function write(by: string): Promise<void> {
    const lake = await attachLake(db, config, lakeRoot);
    const conn = await db.connect();
    try {
      await lakeWrite(conn, lake, async () => async () => {
        await conn.run(`insert into ${qualified(lake, 'silver', 'fenced')} values (1, $w)`, { w: by });
      });
    } finally {
      conn.closeSync();
    }
  }

  async function writers(): Promise<string[]> {
    const lake = await attachLake(db, config, lakeRoot);
    const conn = await db.connect();
    try {
      const rows = await queryRows(conn, `select writer from ${qualified(lake, 'silver', 'fenced')} order by writer`);
      return rows.map((r) => String(r.writer));
    } finally {
      conn.closeSync();
    }
  }

  // The mock has a logger of its own (INFO, not the Runtime's of tests/support/setup.ts): the attempts fenced off on
  // purpose would each print a WARN "Activity failed" into the output of a passing run.
  const logger = new DefaultLogger('ERROR');
  const attempt = (n: number, activityId: string, workflowType = 'ingestEventFile') =>
    new MockActivityEnvironment({ attempt: n, activityId, workflowType, workflowExecution: execution }, { logger });

  it('an attempt superseded by a later one does not commit; the later one does', async () => {
    const first = attempt(1, 'a-1');
    const second = attempt(2, 'a-1');
    // Attempt 1 is still computing (a zombie on a partitioned worker) when attempt 2 starts and commits.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const zombie = first.run(() => fencedActivity(deps(), lakeRoot, () => gate.then(() => write('attempt-1'))));
    await second.run(() => fencedActivity(deps(), lakeRoot, () => write('attempt-2')));
    release();
    await expect(zombie).rejects.toMatchObject({
      name: 'FencedOff',
      message: expect.stringContaining('superseded by attempt 2'),
    });
    expect(await writers()).toEqual(['attempt-2']);
    // Another activity of the same run is not affected by a-1's attempts.
    await attempt(1, 'b-1').run(() => fencedActivity(deps(), lakeRoot, () => write('other-activity')));
    expect(await writers()).toEqual(['attempt-2', 'other-activity']);
    // The fence read a file beside the lease, not a catalog table; maintenance prunes old records.
    expect(await latestAttempt(config, lakeRoot, execution.runId, 'a-1')).toBe(2);
    expect(await latestAttempt(config, lakeRoot, execution.runId, 'b-1')).toBe(0);
    expect(await pruneAttempts(config, lakeRoot, Date.now() - 60_000)).toBe(0);
    expect(await pruneAttempts(config, lakeRoot, Date.now() + 1_000)).toBe(1);
    expect(await latestAttempt(config, lakeRoot, execution.runId, 'a-1')).toBe(0);
  });

  it('a cancelled attempt (its heartbeat learnt the activity timed out) does not commit', async () => {
    const env = attempt(1, 'c-1');
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const run = env.run(() => fencedActivity(deps(), lakeRoot, () => gate.then(() => write('cancelled'))));
    env.cancel('TIMED_OUT');
    release();
    await expect(run).rejects.toMatchObject({ name: 'FencedOff' });
    expect(await writers()).not.toContain('cancelled');
  });

  it('a dailyPipeline attempt commits only while its run holds the lake lease', async () => {
    const other = { workflowId: 'daily-pipeline/other', runId: 'run-other' };
    const lease = lakeLease(lakeRoot, config);
    await lease.acquire(other, 300);
    const env = attempt(1, 'd-1', 'dailyPipeline');
    await expect(env.run(() => fencedActivity(deps(), lakeRoot, () => write('no-lease')))).rejects.toMatchObject({
      name: 'FencedOff',
      message: expect.stringContaining('no longer holds the lake lease'),
    });
    await lease.release(other);
    await lease.acquire(execution, 300);
    await attempt(1, 'd-2', 'dailyPipeline').run(() => fencedActivity(deps(), lakeRoot, () => write('with-lease')));
    expect(await writers()).toContain('with-lease');
    expect(await writers()).not.toContain('no-lease');
  });
});
