import type { RunSummary } from '../../activities';
import { emptyMetrics } from '../../activities/common';
import { selectRun, statusByDate } from '../../cli/report';

/** `cpa status` (current state per logical date) and the run selection of `cpa quality` / `cpa report` (issue 10). */
describe('status per logical date and run selection', () => {
  const step = (changed: number) => ({ ...emptyMetrics('silver.x', 'silver', 'x'), partitionsChanged: changed });
  const run = (
    id: string,
    date: string | null,
    status: 'succeeded' | 'failed',
    at: string,
    extra = {},
  ): RunSummary => ({
    runId: id,
    workflowId: date ? `daily-pipeline/${date}` : 'daily-pipeline/all',
    logicalDate: date,
    kind: 'manual',
    status,
    startedAt: at,
    finishedAt: at.replace(/:00Z$/, ':30Z'),
    lake: '/l',
    landing: '/x',
    steps: [step(2), step(3)],
    ...extra,
  });
  const runs = [
    run('r1', '2025-08-01', 'failed', '2025-09-01T02:00:00Z', { error: 'bronze.billing: bad' }),
    run('r2', '2025-08-01', 'succeeded', '2025-09-01T03:00:00Z'),
    run('r3', '2025-08-02', 'failed', '2025-09-01T04:00:00Z', { error: 'quality gate: failed' }),
    run('r4', null, 'succeeded', '2025-09-01T01:00:00Z', { notes: ['no usage events landed for x'] }),
  ];

  it('shows the latest run of each date: a failed date re-run successfully is no longer failed', () => {
    const rows = statusByDate(runs);
    expect(rows.map((r) => [r.logicalDate, r.runId, r.status, r.runs, r.partitionsChanged])).toEqual([
      ['all', 'r4', 'succeeded', 1, 5],
      ['2025-08-02', 'r3', 'failed', 1, 5],
      ['2025-08-01', 'r2', 'succeeded', 2, 5],
    ]);
    expect(rows[0]).toMatchObject({ workflowId: 'daily-pipeline/all', kind: 'manual', seconds: 30, steps: 2 });
    expect(rows[0].notes).toEqual(['no usage events landed for x']);
    expect(statusByDate(runs, { failed: true }).map((r) => [r.logicalDate, r.error])).toEqual([
      ['2025-08-02', 'quality gate: failed'],
    ]);
    // One date's history, newest first.
    expect(statusByDate(runs, { date: '2025-08-01' }).map((r) => [r.runId, r.status])).toEqual([
      ['r2', 'succeeded'],
      ['r1', 'failed'],
    ]);
    expect(statusByDate(runs, { date: '2030-01-01' })).toEqual([]);
  });

  it('selects a run by id, workflow or date (latest match), and names what was asked when nothing matches', () => {
    expect(selectRun(runs, {}, '/l').runId).toBe('r3');
    expect(selectRun(runs, { runId: 'r1' }, '/l').runId).toBe('r1');
    expect(selectRun(runs, { workflowId: 'daily-pipeline/2025-08-01' }, '/l').runId).toBe('r2');
    expect(selectRun(runs, { date: 'all' }, '/l').runId).toBe('r4');
    expect(() => selectRun(runs, { runId: 'bogus' }, '/l')).toThrow(
      'no run bogus recorded in the lake /l — `cpa status` lists the recorded ones',
    );
    expect(() => selectRun(runs, { workflowId: 'nope' }, '/l')).toThrow(/no run of workflow nope recorded/);
    expect(() => selectRun(runs, { date: '2030-01-01' }, '/l')).toThrow(/no run for date 2030-01-01 recorded/);
    expect(() => selectRun([], {}, '/l')).toThrow(/no runs recorded in the lake \/l/);
  });
});
