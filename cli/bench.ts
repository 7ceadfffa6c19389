import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Table from 'cli-table3';
import { loadConfig } from '../config/env';
import type { Config } from '../config/env';
import { EVENTS_DIR, generate } from '../lake/generator';
import { dropLakeCatalog } from '../lake/lakehouse';
import { checkS3Access } from '../lake/s3-check';
import { storageFor } from '../lake/storage';
import { uploadDirectory } from '../lake/upload';
import { openSession, runDaily } from './run';
import { runBackfill } from './commands/backfill';

/**
 * `cpa bench`: generates data at scale S once (cached by scale and seed), then runs the full pipeline embedded on a
 * fresh lake and reports wall time from workflow start (service start-up excluded), per-step seconds, events/s and
 * the process's peak RSS. A second run over the same lake measures the no-op re-run. `--landing` benchmarks an
 * existing local landing directory (e.g. the reference dataset) instead; `--s3 s3://bucket/prefix` puts landing
 * (uploaded once, idempotently, not timed) and lake on S3.
 */
export async function runBench(
  base: Config,
  opts: { scale: number; seed: number; dir: string; json?: boolean; landing?: string; s3?: string },
): Promise<void> {
  const localLanding = opts.landing
    ? path.resolve(opts.landing)
    : path.join(opts.dir, `landing-s${opts.scale}-seed${opts.seed}`);
  const name = opts.landing
    ? path.basename(path.dirname(localLanding)) || 'landing'
    : `s${opts.scale}-seed${opts.seed}`;
  const landing = opts.s3 ? `${opts.s3.replace(/\/+$/, '')}/landing-${name}` : localLanding;
  const lake = opts.s3 ? `${opts.s3.replace(/\/+$/, '')}/lake-${name}` : path.join(opts.dir, `lake-s${opts.scale}`);
  if (!opts.landing && !fs.existsSync(path.join(localLanding, '_generator_report.json'))) {
    const t0 = Date.now();
    process.stderr.write(`generating S=${opts.scale} into ${localLanding}\n`);
    await generate({ scale: opts.scale, seed: opts.seed, out: localLanding });
    process.stderr.write(`generated in ${((Date.now() - t0) / 1000).toFixed(1)}s\n`);
  }
  const reportFile = path.join(localLanding, '_generator_report.json');
  const report = fs.existsSync(reportFile)
    ? (JSON.parse(fs.readFileSync(reportFile, 'utf8')) as { events_written: number })
    : undefined;
  // Temporal from the environment only (embedded unless TEMPORAL_ADDRESS is exported), as before; S3 settings and the
  // httpfs location and the S3 lake's catalog as the CLI resolved them (environment, else the stack's .cpa-stack.env).
  const cfg: Config = {
    ...loadConfig({ ...process.env, CPA_LAKE_ROOT: lake, CPA_LANDING_ROOT: landing }),
    s3: base.s3,
    lakeCatalog: base.lakeCatalog,
  };
  cfg.duckdb.extensionDir ??= base.duckdb.extensionDir;
  if (opts.s3) {
    await checkS3Access(lake, cfg, { write: true });
    const up = await uploadDirectory(localLanding, landing, storageFor(landing, cfg));
    if (up.uploaded > 0) process.stderr.write(`uploaded ${up.uploaded} landing files to ${landing}\n`);
  }
  await storageFor(lake, cfg).deletePrefix(lake);
  await dropLakeCatalog(cfg, lake);
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
    const events = report?.events_written ?? first.steps.find((s) => s.step === 'bronze.usage_events')?.rowsIn ?? 0;
    const t2 = Date.now();
    await runDaily(session, cfg, { runDate: null, lake, landing, kind: 'manual' });
    const rerunMs = Date.now() - t2;
    clearInterval(sampler);
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    const result = {
      scale: opts.scale,
      lake,
      events,
      startupSeconds: startup / 1000,
      fullPipelineSeconds: fullMs / 1000,
      rerunSeconds: rerunMs / 1000,
      eventsPerSecond: Math.round(events / (fullMs / 1000)),
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
        `S=${result.scale} (${lake}): ${result.events.toLocaleString()} events, full pipeline ${result.fullPipelineSeconds.toFixed(2)}s ` +
          `(${result.eventsPerSecond.toLocaleString()} events/s), no-op re-run ${result.rerunSeconds.toFixed(2)}s, ` +
          `peak RSS ${result.peakRssMiB} MiB, service start-up ${result.startupSeconds.toFixed(2)}s`,
      );
    }
  } finally {
    clearInterval(sampler);
    await session.close();
  }
}

/** The first usage day of an events file (its first line with a timestamp). */
function firstDay(file: string): string | undefined {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(4096);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    return /"timestamp": "(\d{4}-\d{2}-\d{2})T/.exec(buf.subarray(0, n).toString('utf8'))?.[1];
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * `cpa bench --incremental --days D`: generates D + 1 days at scale S, builds a lake of the first D days (timed: the
 * from-scratch figure at D days), lands the last day and times that run, then a no-op run, then a forced 7-day
 * backfill of the last seven days (SPEC §12 targets: one day ≤ 10 % of from-scratch; the 7-day backfill ≤ 7 × a
 * one-day run). Landing files are hard links into a working landing directory (not copied).
 */
export async function runIncrementalBench(
  base: Config,
  opts: { scale: number; seed: number; dir: string; days: number; json?: boolean },
): Promise<void> {
  const source = path.join(opts.dir, `landing-s${opts.scale}-seed${opts.seed}-d${opts.days + 1}`);
  if (!fs.existsSync(path.join(source, '_generator_report.json'))) {
    process.stderr.write(`generating S=${opts.scale}, ${opts.days + 1} days into ${source}\n`);
    await generate({ scale: opts.scale, seed: opts.seed, out: source, days: opts.days + 1 });
  }
  const report = JSON.parse(fs.readFileSync(path.join(source, '_generator_report.json'), 'utf8')) as {
    end_date: string;
  };
  const lastDay = report.end_date;
  const landing = path.join(opts.dir, `landing-inc-s${opts.scale}-d${opts.days}`);
  const lake = path.join(opts.dir, `lake-inc-s${opts.scale}-d${opts.days}`);
  fs.rmSync(landing, { recursive: true, force: true });
  fs.rmSync(lake, { recursive: true, force: true });
  fs.mkdirSync(path.join(landing, EVENTS_DIR), { recursive: true });
  for (const f of fs.readdirSync(source))
    if (f.endsWith('.csv')) fs.linkSync(path.join(source, f), path.join(landing, f));
  const files = fs.readdirSync(path.join(source, EVENTS_DIR)).sort();
  const lastFiles = files.filter((f) => firstDay(path.join(source, EVENTS_DIR, f)) === lastDay);
  const land = (f: string): void => fs.linkSync(path.join(source, EVENTS_DIR, f), path.join(landing, EVENTS_DIR, f));
  for (const f of files) if (!lastFiles.includes(f)) land(f);

  const cfg: Config = {
    ...loadConfig({ ...process.env, CPA_LAKE_ROOT: lake, CPA_LANDING_ROOT: landing }),
    s3: base.s3,
    lakeCatalog: base.lakeCatalog,
  };
  cfg.duckdb.extensionDir ??= base.duckdb.extensionDir;
  const session = await openSession(cfg);
  let peakRss = process.memoryUsage().rss;
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }, 50);
  const timed = async <T>(fn: () => Promise<T>): Promise<[T, number]> => {
    const t = Date.now();
    const r = await fn();
    return [r, (Date.now() - t) / 1000];
  };
  const daily = () => runDaily(session, cfg, { runDate: null, lake, landing, kind: 'manual' });
  const recomputed = (s: { steps: Array<{ layer: string; partitionsRecomputed?: number }> }): number =>
    s.steps
      .filter((x) => x.layer === 'silver' || x.layer === 'gold')
      .reduce((a, x) => a + (x.partitionsRecomputed ?? 0), 0);
  try {
    const [build, buildSeconds] = await timed(daily);
    for (const f of lastFiles) land(f);
    const [oneDay, oneDaySeconds] = await timed(daily);
    const [noop, noopSeconds] = await timed(daily);
    const from = new Date(Date.parse(`${lastDay}T00:00:00Z`) - 6 * 86_400_000).toISOString().slice(0, 10);
    const [backfill, backfillSeconds] = await timed(() =>
      runBackfill(session.client, cfg, { from, to: lastDay, lake, landing }),
    );
    clearInterval(sampler);
    const result = {
      scale: opts.scale,
      days: opts.days,
      newDay: lastDay,
      newDayFiles: lastFiles.length,
      fromScratchSeconds: buildSeconds,
      oneDaySeconds,
      oneDayShare: Math.round((oneDaySeconds / buildSeconds) * 1000) / 1000,
      noopSeconds,
      backfill7Seconds: backfillSeconds,
      backfillPerOneDay: Math.round((backfillSeconds / oneDaySeconds) * 100) / 100,
      recomputed: {
        fromScratch: recomputed(build),
        oneDay: recomputed(oneDay),
        noop: recomputed(noop),
        backfill7: backfill.results.reduce((a, r) => a + (r.recomputed ?? 0), 0),
      },
      backfillFailed: backfill.failed,
      peakRssMiB: Math.round(peakRss / 1024 / 1024),
      machine: `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.cpus()[0]?.model ?? ''}`,
      date: new Date().toISOString().slice(0, 10),
      oneDaySteps: oneDay.steps.map((s) => ({
        step: s.step,
        recomputed: s.partitionsRecomputed,
        changed: s.partitionsChanged,
        seconds: s.durationMs / 1000,
      })),
    };
    if (opts.json) console.log(JSON.stringify(result, null, 2));
    else {
      const t = new Table({
        style: { head: [], border: [] },
        head: ['step (one new day)', 'recomputed', 'changed', 'seconds'],
      });
      for (const s of result.oneDaySteps) t.push([s.step, s.recomputed ?? '', s.changed ?? '', s.seconds.toFixed(2)]);
      console.log(t.toString());
      console.log(
        `S=${result.scale}, ${result.days}-day lake: from scratch ${buildSeconds.toFixed(2)}s; one more day ` +
          `${oneDaySeconds.toFixed(2)}s (${(result.oneDayShare * 100).toFixed(1)} %); no-op ${noopSeconds.toFixed(2)}s; ` +
          `7-day forced backfill ${backfillSeconds.toFixed(2)}s (${result.backfillPerOneDay} × one day); peak RSS ${result.peakRssMiB} MiB`,
      );
    }
  } finally {
    clearInterval(sampler);
    await session.close();
  }
}
