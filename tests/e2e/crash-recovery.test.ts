import { loadConfig } from '../../config/env';
import { runChaos } from '../../cli/chaos';
import { temporalCli, tmpDir } from '../support/env';

/**
 * Crash recovery (issue: kill -9 anywhere, a new worker finishes the run in seconds): a real dev server and `cpa
 * worker` processes; the worker is killed with SIGKILL while a silver or gold transform runs, a new worker is started,
 * and the run must resume at once (the dead worker's activity is failed by id and retried, not left to a timeout),
 * finish, equal a clean run table by table, and leave nothing behind. Before this, the retry waited for the
 * transforms' 5-minute heartbeat timeout.
 */
describe('worker killed during a transform', () => {
  it('a new worker resumes within seconds and the run ends identical to a clean one, without leftovers', async () => {
    const config = loadConfig({ CPA_LAKE_ROOT: tmpDir('chaos-unused'), TEMPORAL_CLI_PATH: temporalCli() });
    const report = await runChaos(config, {
      trials: 1,
      scale: 0.3,
      seed: 7,
      dir: tmpDir('chaos'),
      serverEvery: 0,
      killAt: 0.1,
      killDuring: ['buildSilver', 'buildGold'],
    });
    const [t] = report.trials;
    expect(t.killPoint).toMatch(/buildSilver|buildGold/);
    expect(t.status).toBe('succeeded');
    expect(t.identical).toBe(true);
    expect(t.leftovers).toEqual([]);
    // Resumed = an activity started on the new worker. Without the reaper this waits for the heartbeat timeout.
    expect(t.resumeS).toBeLessThan(10);
    // The whole rest of the run, including the killed step again: far below the old five-minute wait.
    expect(t.recoveryS).toBeLessThan(120);
  }, 600_000);

  it('a crash right after the bronze events commit stores no line twice (null event ids included)', async () => {
    const config = loadConfig({ CPA_LAKE_ROOT: tmpDir('chaos-unused'), TEMPORAL_CLI_PATH: temporalCli() });
    const report = await runChaos(config, {
      trials: 1,
      scale: 0.3,
      seed: 7,
      dir: tmpDir('chaos-bronze'),
      serverEvery: 0,
      crashAt: 'after-commit:bronze.usage_events',
    });
    const [t] = report.trials;
    expect(t.status).toBe('succeeded');
    // The generated feed has lines without an event_id: they are kept by (file, line), not deduplicated by id.
    expect(report.reference['bronze.usage_events'].nullIds).toBeGreaterThan(0);
    expect(report.reference['quarantine.usage_events'].rows).toBeGreaterThan(0);
    // Bronze, silver, quarantine row counts and gold contents equal the clean run's.
    expect(t.identical).toBe(true);
    expect(t.leftovers).toEqual([]);
  }, 600_000);
});
