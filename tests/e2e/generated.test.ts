import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { generate } from '../../lake/generator';
import { expectFiguresEqual, lakeFigures } from '../support/figures';
import type { Figures } from '../support/figures';
import { cpa, REPO, tmpDir } from '../support/env';

/**
 * End to end on generated data that carries every quirk of SPEC §1/§11 (malformed lines, duplicate ids across
 * files, variant spellings, bad timestamps, orphans, negative costs, CSV rule triggers): the pipeline's figures must
 * equal derive.py's independent computation, and the quarantine counts must equal the generator's own report.
 */
describe('cpa run over generated data with every quirk', () => {
  const landing = tmpDir('gen-landing');
  const lake = tmpDir('gen-lake');
  let report: { quirks: Record<string, number> };
  let expected: Figures;

  beforeAll(async () => {
    await generate({ scale: 0.3, seed: 7, out: landing });
    report = JSON.parse(fs.readFileSync(path.join(landing, '_generator_report.json'), 'utf8')) as typeof report;
    const derive = path.join(__dirname, 'reference', 'derive.py');
    expected = JSON.parse(
      execFileSync('python3', [derive, landing], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }),
    ) as Figures;
  });

  it('runs, and every figure equals the independent computation', async () => {
    const run = cpa(['run', '--landing', landing, '--lake', lake]);
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    expectFiguresEqual(await lakeFigures(lake), expected);
  });

  it('quarantines exactly the records the generator broke, per rule id', async () => {
    const fig = await lakeFigures(lake);
    const q = report.quirks;
    expect(fig.quarantine.usage_events).toEqual({
      malformed_json: q.malformed_json,
      missing_required: q.missing_required,
      bad_timestamp: q.bad_timestamp,
      unknown_service: q.unknown_service,
      negative_cost: q.negative_cost,
    });
    expect(fig.quarantine.users).toEqual(q.users_invalid_email ? { invalid_email: q.users_invalid_email } : {});
    expect(fig.quarantine.billing).toEqual(
      q.billing_negative_subtotal ? { negative_subtotal: q.billing_negative_subtotal } : {},
    );
    expect(fig.silver.usage_events.value_cast_failed).toBe(q.value_cast_failed);
    expect(fig.silver.usage_events.unit_imputed).toBe(q.unit_imputed);
    expect(fig.silver.usage_events.region_unknown).toBe(q.region_unknown);
    expect(fig.silver.usage_events.orphan_org).toBe(q.orphan_org_events);
    expect(fig.silver.usage_events.orphan_resource).toBe(q.orphan_resource_events);
    // duplicate event_ids across files collapse to one bronze row each
    const withId = fig.bronze.usage_events.distinct_event_ids;
    expect(withId).toBeGreaterThan(0);
    expect(q.duplicate_event_id).toBeGreaterThan(0);
  });

  it('a process killed inside the metrics transaction leaves no record, and cpa quality still reports', () => {
    const before = JSON.parse(cpa(['quality', '--lake', lake, '--json']).stdout) as { runId: string };
    // Debris of the pre-DuckLake metrics files: nothing reads that folder any more.
    const stray = path.join(lake, '_meta', 'quality', 'run_id=torn', 'gold.cost_anomaly_mart.json.tmp-1');
    fs.mkdirSync(path.dirname(stray), { recursive: true });
    fs.writeFileSync(stray, '');
    const child = spawnSync(
      process.execPath,
      ['-r', 'tsx/cjs', path.join(REPO, 'tests', 'activities', 'support', 'record-run-child.ts'), lake, 'torn-run'],
      { cwd: REPO, env: { ...process.env, CPA_CRASH_AT: 'in-transaction:step_metrics' }, encoding: 'utf8' },
    );
    expect(child.signal).toBe('SIGKILL');
    expect(child.stdout).not.toContain('recorded');

    const after = cpa(['quality', '--lake', lake, '--json']);
    expect(after.code).toBe(0);
    expect((JSON.parse(after.stdout) as { runId: string }).runId).toBe(before.runId);
    const torn = cpa(['quality', '--lake', lake, '--run', 'torn-run']);
    expect(torn.code).not.toBe(0);
    expect(torn.stderr).toContain('torn-run');
    // The same write without the crash commits whole: the run and its three steps.
    const ok = spawnSync(
      process.execPath,
      ['-r', 'tsx/cjs', path.join(REPO, 'tests', 'activities', 'support', 'record-run-child.ts'), lake, 'whole-run'],
      { cwd: REPO, env: process.env, encoding: 'utf8' },
    );
    expect(ok.stdout).toContain('recorded');
    const whole = JSON.parse(cpa(['quality', '--lake', lake, '--run', 'whole-run', '--json']).stdout) as {
      steps: unknown[];
    };
    expect(whole.steps).toHaveLength(3);
  });
});
