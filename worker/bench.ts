import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Table from 'cli-table3';
import { loadConfig } from '../config/env';
import type { Config } from '../config/env';
import { generate } from '../lake/generator';
import { openSession, runDaily } from './run';

/**
 * `cpa bench`: generates data at scale S once (cached by scale and seed), then runs the full pipeline embedded on a
 * fresh lake and reports wall time from workflow start (service start-up excluded), per-step seconds, events/s and
 * the process's peak RSS. A second run over the same lake measures the no-op re-run.
 */
export async function runBench(base: Config, opts: { scale: number; seed: number; dir: string; json?: boolean }): Promise<void> {
  const landing = path.join(opts.dir, `landing-s${opts.scale}-seed${opts.seed}`);
  const lake = path.join(opts.dir, `lake-s${opts.scale}`);
  if (!fs.existsSync(path.join(landing, '_generator_report.json'))) {
    const t0 = Date.now();
    process.stderr.write(`generating S=${opts.scale} into ${landing}\n`);
    await generate({ scale: opts.scale, seed: opts.seed, out: landing });
    process.stderr.write(`generated in ${((Date.now() - t0) / 1000).toFixed(1)}s\n`);
  }
  fs.rmSync(lake, { recursive: true, force: true });
  const report = JSON.parse(fs.readFileSync(path.join(landing, '_generator_report.json'), 'utf8')) as { events_written: number };
  const cfg = loadConfig({ ...process.env, CPA_LAKE_ROOT: lake, CPA_LANDING_ROOT: landing });
  const tStart = Date.now();
  const session = await openSession(cfg);
  const startup = Date.now() - tStart;
  let peakRss = process.memoryUsage().rss;
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }, 50);
  try {
    const t1 = Date.now();
    const first = await runDaily(session, cfg, { runDate: null, lake, landing, kind: 'manual' });
    const fullMs = Date.now() - t1;
    const t2 = Date.now();
    await runDaily(session, cfg, { runDate: null, lake, landing, kind: 'manual' });
    const rerunMs = Date.now() - t2;
    clearInterval(sampler);
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    const result = {
      scale: opts.scale,
      events: report.events_written,
      startupSeconds: startup / 1000,
      fullPipelineSeconds: fullMs / 1000,
      rerunSeconds: rerunMs / 1000,
      eventsPerSecond: Math.round(report.events_written / (fullMs / 1000)),
      peakRssMiB: Math.round(peakRss / 1024 / 1024),
      machine: `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.cpus()[0]?.model ?? ''}`,
      date: new Date().toISOString().slice(0, 10),
      steps: first.steps.map((s) => ({ step: s.step, rowsOut: s.rowsOut, seconds: s.durationMs / 1000 })),
    };
    if (opts.json) console.log(JSON.stringify(result, null, 2));
    else {
      const t = new Table({ style: { head: [], border: [] }, head: ['step', 'rows out', 'seconds'] });
      for (const s of result.steps) t.push([s.step, s.rowsOut, s.seconds.toFixed(2)]);
      console.log(t.toString());
      console.log(
        `S=${result.scale}: ${result.events.toLocaleString()} events, full pipeline ${result.fullPipelineSeconds.toFixed(2)}s ` +
          `(${result.eventsPerSecond.toLocaleString()} events/s), no-op re-run ${result.rerunSeconds.toFixed(2)}s, ` +
          `peak RSS ${result.peakRssMiB} MiB, service start-up ${result.startupSeconds.toFixed(2)}s`,
      );
    }
  } finally {
    clearInterval(sampler);
    await session.close();
  }
}
