import path from 'node:path';
import type { Client } from '@temporalio/client';
import { loadConfig } from '../../config/env';
import type { RunSummary } from '../../activities';
import { generate } from '../../lake/generator';
import { OutcomeUnknown, rideOutOutage } from '../../worker/follow';
import { clientFor, freePort, isServerUp } from '../../worker/temporal';
import { temporalCli, tmpDir } from '../support/env';
import { spawnCpa, startTemporal } from '../support/processes';
import type { Proc } from '../support/processes';

/**
 * The CLI tells the truth across a Temporal outage (SPEC §10, §12): `cpa run` against TEMPORAL_ADDRESS keeps waiting
 * while the server is down and exits with the workflow's outcome once it is back; past CPA_CLI_OUTAGE_SECONDS it
 * exits 3 (outcome unknown) naming the workflow, which is indeed still there when the server returns.
 *
 * The server runs on fixed ports with a db file, so a restart keeps its workflows. The worker starts after the
 * outage: activities in flight when a server dies lose their completion and are retried only after their heartbeat
 * timeout (5 min), which is the workflow's business, not the CLI's. Before this fix the CLI exited 1
 * (`14 UNAVAILABLE … ECONNREFUSED`) once the SDK's own retries ran out, about 20 s into the outage.
 */
describe('cpa run while the Temporal server is down', () => {
  const config = loadConfig({ CPA_LAKE_ROOT: '/tmp/unused', TEMPORAL_CLI_PATH: temporalCli() });
  const landing = tmpDir('outage-landing');
  const procs: Proc[] = [];
  const clients: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    await generate({ scale: 0.1, seed: 7, out: landing });
  });

  afterAll(async () => {
    for (const close of clients) await close().catch(() => undefined);
    for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  });

  /** A server of the test's own; `restart()` brings it back on the same address and db file. */
  async function server(label: string) {
    const ports = { port: await freePort(), httpPort: await freePort(), metricsPort: await freePort() };
    const dbFile = path.join(tmpDir(`outage-${label}`), 'temporal.db');
    const address = `127.0.0.1:${ports.port}`;
    let current: Proc;
    const start = async (): Promise<Proc> => {
      current = startTemporal({ ...ports, dbFile });
      procs.push(current);
      for (const deadline = Date.now() + 60_000; !(await isServerUp(config, address, 1000));) {
        if (current.child.exitCode !== null || Date.now() > deadline) throw new Error(`no server: ${current.stderr()}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      return current;
    };
    await start();
    return {
      address,
      restart: start,
      async kill(): Promise<void> {
        current.child.kill('SIGKILL');
        await current.exited;
      },
      async client(): Promise<Client> {
        const { client, close } = await clientFor(config, address);
        clients.push(close);
        return client;
      },
    };
  }

  async function waitRunning(client: Client, workflowId: string): Promise<void> {
    for (const deadline = Date.now() + 60_000; Date.now() < deadline;) {
      const d = await client.workflow
        .getHandle(workflowId)
        .describe()
        .catch(() => undefined);
      if (d?.status.name === 'RUNNING') return;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`${workflowId} never ran`);
  }

  const outageMs = 40_000;

  it('survives a 40 s outage in the middle of a run and exits 0 once the workflow succeeded', async () => {
    const srv = await server('survive');
    const lake = tmpDir('outage-lake');
    const env = {
      TEMPORAL_ADDRESS: srv.address,
      TEMPORAL_TASK_QUEUE: 'outage-survive',
      CPA_LAKE_ROOT: lake,
      CPA_LANDING_ROOT: landing,
    };
    const run = spawnCpa(['run', '--no-worker'], env);
    procs.push(run);
    await waitRunning(await srv.client(), 'daily-pipeline/all');

    await srv.kill();
    await new Promise((r) => setTimeout(r, outageMs));
    expect(run.child.exitCode).toBeNull(); // still waiting, not failed
    await srv.restart();
    const worker = spawnCpa(['worker'], env);
    procs.push(worker);

    const code = await run.exited;
    worker.child.kill('SIGTERM');
    expect({ code, stderr: run.stderr() }).toEqual({ code: 0, stderr: expect.any(String) });
    expect(run.stderr()).toMatch(
      new RegExp(`temporal unreachable at ${srv.address} \\(.+\\), retrying \\(\\d+ s of 300 s\\)`),
    );
    expect(run.stderr()).toMatch(/answers again after \d+ s; waiting for daily-pipeline\/all/);
    expect(run.stdout()).toMatch(/daily-pipeline\/all succeeded in/);
    const handle = (await srv.client()).workflow.getHandle('daily-pipeline/all');
    expect((await handle.describe()).status.name).toBe('COMPLETED');
    expect(((await handle.result()) as RunSummary).status).toBe('succeeded');
  }, 300_000);

  it('gives up after CPA_CLI_OUTAGE_SECONDS with exit 3, naming the workflow, which is still there afterwards', async () => {
    const srv = await server('give-up');
    const run = spawnCpa(['run', '--no-worker', '--date', '2025-08-31'], {
      TEMPORAL_ADDRESS: srv.address,
      TEMPORAL_TASK_QUEUE: 'outage-give-up',
      CPA_LAKE_ROOT: tmpDir('outage-lake'),
      CPA_LANDING_ROOT: landing,
      CPA_CLI_OUTAGE_SECONDS: '5',
    });
    procs.push(run);
    await waitRunning(await srv.client(), 'daily-pipeline/2025-08-31');

    await srv.kill();
    const killedAt = Date.now();
    const code = await run.exited;
    const waited = (Date.now() - killedAt) / 1000;
    expect({ code, stderr: run.stderr() }).toEqual({ code: 3, stderr: expect.any(String) });
    expect(waited).toBeGreaterThanOrEqual(5);
    expect(waited).toBeLessThan(15);
    const last = run.stderr().trim().split('\n').pop();
    // The line says how long it waited: the budget, or a little more when the last try's timeout ran past it (6 s seen
    // on a loaded machine).
    const said = new RegExp(
      `^cpa: temporal unreachable at ${srv.address} for (\\d+) s \\(CPA_CLI_OUTAGE_SECONDS\\)`,
    ).exec(last ?? '');
    expect(said).not.toBeNull();
    expect(Number(said![1])).toBeGreaterThanOrEqual(5);
    expect(Number(said![1])).toBeLessThan(15);
    expect(last).toContain('the outcome of daily-pipeline/2025-08-31 is unknown, it may still be running');
    expect(last).toContain(`temporal workflow show -w daily-pipeline/2025-08-31 --address ${srv.address}`);

    // What the message says is true: the run is still there, waiting for a worker.
    await srv.restart();
    const handle = (await srv.client()).workflow.getHandle('daily-pipeline/2025-08-31');
    expect((await handle.describe()).status.name).toBe('RUNNING');
    await handle.terminate('test over');
  }, 180_000);

  /**
   * The calls before the wait (start, the first describe) ride out an outage too: a server gone between the start and
   * the first describe made `cpa run` exit 1, "could not start", for a run that had started (seen once in CI).
   */
  it('start and describe ride out an outage: back in time → the answer; gone too long → OutcomeUnknown', async () => {
    const srv = await server('ride-out');
    const client = await srv.client();
    const handle = await client.workflow.start('dailyPipeline', {
      taskQueue: 'outage-ride-out',
      workflowId: 'ride-out/1',
      args: [{ lake: '/tmp/unused', landing }],
    });
    const lines: string[] = [];
    const cfg = (seconds: number) => ({ ...config, temporal: { ...config.temporal, cliOutageSeconds: seconds } });

    await srv.kill();
    // Back after the first try's deadline (5 s), so that try fails whatever the load: at 4 s a slow first try (the
    // suite on two cores) ran into the restarted server and answered without an outage to report.
    const back = setTimeout(() => void srv.restart(), 7000);
    const d = await rideOutOutage(client, cfg(60), 'ride-out/1', () => handle.describe(), {
      log: (l) => lines.push(l),
    });
    clearTimeout(back);
    expect(d.status.name).toBe('RUNNING');
    expect(lines[0]).toMatch(new RegExp(`temporal unreachable at ${srv.address} \\(.+\\), retrying`));
    expect(lines[lines.length - 1]).toMatch(/answers again after \d+ s/);

    await srv.kill();
    const killedAt = Date.now();
    const err = await rideOutOutage(client, cfg(3), 'ride-out/1', () => handle.describe(), {
      log: () => undefined,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OutcomeUnknown);
    expect((Date.now() - killedAt) / 1000).toBeGreaterThanOrEqual(3);
    expect((Date.now() - killedAt) / 1000).toBeLessThan(12);

    // A call's own error is not an outage: thrown at once.
    await srv.restart();
    const t = Date.now();
    await expect(rideOutOutage(client, cfg(60), 'x', () => Promise.reject(new Error('refused')))).rejects.toThrow(
      'refused',
    );
    expect(Date.now() - t).toBeLessThan(1000);
    await handle.terminate('test over');
  }, 180_000);
});
