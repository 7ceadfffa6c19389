import { freePort } from '../../worker/temporal';
import { tmpDir } from '../support/env';
import { descendants, isRunning, spawnCpa } from '../support/processes';
import type { Proc } from '../support/processes';
import { generate } from '../../lake/generator';

/**
 * No orphaned servers: the `temporal server start-dev` an embedded `cpa run` or `cpa dev` starts dies with it, also
 * when the CLI is killed with SIGKILL (no handler runs: the leash in worker/temporal.ts sees its pipe close).
 * Servers are found among the CLI's own descendants, so other agents' servers are never looked at.
 */
describe('the embedded Temporal dev server dies with its CLI', () => {
  const landing = tmpDir('orphans-landing');
  const procs: Proc[] = [];
  const leftovers: number[] = [];

  beforeAll(async () => {
    await generate({ scale: 0.1, seed: 7, out: landing });
  });

  afterAll(() => {
    for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    for (const pid of leftovers) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  });

  /** The CLI's temporal server (and its leash), found among its descendants. */
  function serverOf(cli: Proc): { server: number; all: number[] } {
    const tree = descendants(cli.child.pid!);
    const servers = tree.filter((p) => / server start-dev /.test(p.args));
    expect(servers).toHaveLength(1);
    const all = tree.filter((p) => /temporal|cpa-temporal-leash/.test(p.args)).map((p) => p.pid);
    leftovers.push(...all);
    return { server: servers[0].pid, all };
  }

  async function goneWithin(pids: number[], ms: number): Promise<number[]> {
    const deadline = Date.now() + ms;
    for (;;) {
      const running = pids.filter(isRunning);
      if (running.length === 0 || Date.now() > deadline) return running;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async function kill9(cli: Proc): Promise<void> {
    cli.child.kill('SIGKILL');
    await cli.exited;
  }

  it('kill -9 of an embedded `cpa run` in the middle of its run', async () => {
    const run = spawnCpa(['run', '--landing', landing, '--lake', tmpDir('orphans-lake')], {});
    procs.push(run);
    // Progress names the running steps by table (their activity summaries), not by activity type.
    await run.waitForOutput(/running: .*\bbronze\.[a-z_]+/);
    const { server, all } = serverOf(run);
    expect(isRunning(server)).toBe(true);
    await kill9(run);
    // The server within a few seconds (SIGTERM); the leash once it has seen it go (at most 5 s more).
    expect(await goneWithin([server], 5_000)).toEqual([]);
    expect(await goneWithin(all, 10_000)).toEqual([]);
  }, 120_000);

  it('kill -9 of `cpa dev`', async () => {
    const lake = tmpDir('orphans-dev');
    const dev = spawnCpa(['dev'], {
      CPA_LAKE_ROOT: lake,
      CPA_DEV_PORT: String(await freePort()),
      CPA_DEV_UI_PORT: String(await freePort()),
    });
    procs.push(dev);
    await dev.waitForOutput(/worker on task queue/);
    // Settled: a server killed during its first seconds may die of a write to its closed stderr pipe by itself.
    await new Promise((r) => setTimeout(r, 3000));
    const { server, all } = serverOf(dev);
    expect(descendants(dev.child.pid!).find((p) => p.pid === server)!.args).toContain(lake);
    await kill9(dev);
    expect(await goneWithin([server], 5_000)).toEqual([]);
    expect(await goneWithin(all, 10_000)).toEqual([]);
  }, 120_000);

  it('Ctrl-C (SIGINT) of `cpa dev` stops its worker, then its server, and exits 0', async () => {
    const dev = spawnCpa(['dev'], {
      CPA_LAKE_ROOT: tmpDir('orphans-dev-int'),
      CPA_DEV_PORT: String(await freePort()),
      CPA_DEV_UI_PORT: String(await freePort()),
    });
    procs.push(dev);
    await dev.waitForOutput(/worker on task queue/);
    const { server, all } = serverOf(dev);
    dev.child.kill('SIGINT');
    expect(await dev.exited).toBe(0);
    // stop() waited for the server before the CLI exited.
    expect(isRunning(server)).toBe(false);
    expect(await goneWithin(all, 2_000)).toEqual([]);
  }, 120_000);

  it.each(['SIGINT', 'SIGTERM'] as const)(
    '%s of an embedded `cpa run` ends it: exit 130, one line saying where the run stands, no server left, and the next run succeeds',
    async (signal) => {
      const lake = tmpDir('orphans-int-lake');
      const run = spawnCpa(['run', '--landing', landing, '--lake', lake], {});
      procs.push(run);
      await run.waitForOutput(/running: .*\bbronze\.[a-z_]+/);
      const { server, all } = serverOf(run);
      const sentAt = Date.now();
      run.child.kill(signal);
      // Before: the SDK's handler stopped the worker and the CLI waited forever for the workflow's result.
      expect(await run.exited).toBe(130);
      expect(Date.now() - sentAt).toBeLessThan(15_000);
      const last = run.stderr().trim().split('\n').pop();
      expect(last).toMatch(
        new RegExp(
          `^cpa: interrupted \\(${signal}\\): daily-pipeline/all stopped with this CLI's embedded Temporal server`,
        ),
      );
      expect(isRunning(server)).toBe(false);
      expect(await goneWithin(all, 10_000)).toEqual([]);
      // The lake is not left locked: the lease's holder ran on a server that is gone, so the next run takes it over.
      const again = spawnCpa(['run', '--landing', landing, '--lake', lake], {});
      procs.push(again);
      expect(await again.exited).toBe(0);
      expect(again.stdout()).toMatch(/daily-pipeline\/all succeeded in/);
    },
    180_000,
  );
});
