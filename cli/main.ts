import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import Table from 'cli-table3';
import { loadConfig, readEnvFile } from '../config/env';
import { REPO_ROOT } from '../config/paths';
import type { Config, RawEnv } from '../config/env';
import type { RunSummary, StepMetrics } from '../activities';
import { generate } from '../lake/generator';
import { isS3 } from '../lake/storage';
import { checkS3Access } from '../lake/s3-check';
import { attachSpec, LakeUnavailableError } from '../lake/lakehouse';
import { checkLakeOutsideLanding, checkLocalLanding, prepareLocalLake } from '../lake/preflight';
import { isIsoDate } from '../workflows/logical-date';
import { openSession, devDbFile, runDaily } from './run';
import { ExitCode, PipelineFailed } from './kit';
import { rootMessage } from '../workflows/failures';
import { nativeConnectionFor, startDevServer, isServerUp } from '../worker/temporal';
import { createWorker, installRuntime } from '../worker/main';
import { dateStatus, foldPartitions, listRuns, qualityReport, staleReport, statusByDate } from './report';
import { runBench, runIncrementalBench } from './bench';
import { startWatcher } from '../worker/watcher';
import type { CommandKit } from './kit';
import { register as backfill } from './commands/backfill';
import { register as chaos } from './commands/chaos';
import { register as lake } from './commands/lake';
import { register as landing } from './commands/landing';
import { register as lineage } from './commands/lineage';
import { register as report } from './commands/report';
import { register as schedule } from './commands/schedule';
import { register as serving } from './commands/serving';
import { register as streaming } from './commands/streaming';

/**
 * The git-ignored env file `npm run stack:up` writes; read under the real environment, never over it.
 * CPA_STACK_ENV_FILE points elsewhere (tests point it at nothing to stay hermetic while a stack is up).
 */
const STACK_ENV = process.env.CPA_STACK_ENV_FILE || path.join(REPO_ROOT, '.cpa-stack.env');

function config(overrides: Partial<RawEnv> = {}): Config {
  const fileEnv = readEnvFile(STACK_ENV);
  return loadConfig({ ...fileEnv, ...process.env }, overrides);
}

const isoDate = (v: string): string => {
  // A calendar round trip: Date.parse accepts 2025-02-30 (as March 2).
  if (!isIsoDate(v)) throw new InvalidArgumentError(`expected a date YYYY-MM-DD, got ${v}`);
  return v;
};
const positiveNumber = (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number');
  return n;
};
const integer = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError('expected an integer');
  return n;
};

function lakeOverrides(opts: { lake?: string; landing?: string }): Partial<RawEnv> {
  return {
    CPA_LAKE_ROOT: opts.lake as never,
    CPA_LANDING_ROOT: opts.landing as never,
  };
}

export function summaryTable(summary: RunSummary): string {
  const t = new Table({
    style: { head: [], border: [] },
    head: ['step', 'rows in', 'rows out', 'quarantined', 'partitions written', 'seconds'],
  });
  for (const s of summary.steps) {
    const q = Object.entries(s.quarantined)
      .filter(([, n]) => n > 0)
      .map(([r, n]) => `${r}=${n}`)
      .join(' ');
    t.push([s.step, s.rowsIn, s.rowsOut, q || '0', s.partitionsWritten, (s.durationMs / 1000).toFixed(2)]);
  }
  return t.toString();
}

function progressPrinter(json: boolean): ((running: string[]) => void) | undefined {
  if (json) return undefined;
  const started = Date.now();
  return (running) => {
    if (running.length === 0) return;
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    process.stderr.write(`[${secs}s] running: ${running.join(', ')}\n`);
  };
}

/**
 * Preflight of the storage a command opens: an s3:// lake (and landing) is listed, and written when the command
 * writes, with a short timeout, so bad S3 settings end in one line (`cpa: S3 endpoint … unreachable`), not a trace.
 */
async function checkStorage(
  cfg: Config,
  opts: { landing?: boolean; write?: boolean; sources?: boolean } = {},
): Promise<void> {
  // An S3 lake without a catalog setting, or a lake path that is a file: one line before anything starts.
  attachSpec(cfg, cfg.lakeRoot);
  if (!isS3(cfg.lakeRoot) && fs.existsSync(cfg.lakeRoot) && !fs.statSync(cfg.lakeRoot).isDirectory()) {
    throw new LakeUnavailableError(`lake ${cfg.lakeRoot} is not a directory`);
  }
  // Operator mistakes (lake/preflight.ts): a missing or empty landing, a lake inside it, uncreatable or unwritable.
  if (opts.sources && !isS3(cfg.landingRoot)) await checkLocalLanding(cfg.landingRoot);
  if (opts.landing || opts.sources) checkLakeOutsideLanding(cfg.lakeRoot, cfg.landingRoot);
  if (opts.write && !isS3(cfg.lakeRoot)) await prepareLocalLake(cfg.lakeRoot);
  await checkS3Access(cfg.lakeRoot, cfg, { write: opts.write });
  if (opts.landing) await checkS3Access(cfg.landingRoot, cfg);
}

const program = new Command();
program
  .name('cpa')
  .description('Cloud Provider Analytics: landing → bronze → silver → gold, orchestrated by Temporal')
  .showHelpAfterError();

program
  .command('generate')
  .description('generate deterministic demo data (all eight sources) at scale S')
  .requiredOption('--scale <S>', 'scale factor (1 ≈ 43,200 events, 80 orgs)', positiveNumber)
  .option('--seed <N>', 'random seed', integer, 42)
  .requiredOption('--out <dir>', 'landing directory to write')
  .option('--start <date>', 'first event day', isoDate)
  .option('--days <n>', 'days of events', integer)
  .action(async (opts: { scale: number; seed: number; out: string; start?: string; days?: number }) => {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(opts.out)) {
      throw new PipelineFailed(
        `generate writes a local directory only (got ${opts.out}); generate locally, then \`cpa landing upload <dir> ${isS3(opts.out) ? opts.out : 's3://bucket/prefix'}\``,
      );
    }
    let last = 0;
    const report = await generate({
      scale: opts.scale,
      seed: opts.seed,
      out: opts.out,
      startDate: opts.start,
      days: opts.days,
      onProgress: (done, total) => {
        const pct = Math.floor((done / total) * 10);
        if (pct > last) {
          last = pct;
          process.stderr.write(`generated ${done.toLocaleString()} / ${total.toLocaleString()} events\n`);
        }
      },
    });
    console.log(
      `wrote ${report.files} events files (${report.events_written.toLocaleString()} lines) and 7 CSVs to ${path.resolve(opts.out)}`,
    );
  });

program
  .command('run')
  .description('run dailyPipeline through Temporal (embedded dev server when TEMPORAL_ADDRESS is not set)')
  .option('--date <YYYY-MM-DD>', 'logical date of the run (default: everything landed)', isoDate)
  .option('--landing <dir>', 'landing root (path or s3://bucket/prefix)')
  .option('--lake <dir>', 'lake root (path or s3://bucket/prefix)')
  .option('--no-worker', 'do not run an in-process worker (a `cpa worker` elsewhere does the work)')
  .option('--json', 'print the run summary as JSON')
  .action(async (opts: { date?: string; landing?: string; lake?: string; worker: boolean; json?: boolean }) => {
    const cfg = config(lakeOverrides(opts));
    await checkStorage(cfg, { landing: true, write: true, sources: true });
    const session = await openSession(cfg, { withWorker: opts.worker ? undefined : false });
    try {
      const summary = await runDaily(
        session,
        cfg,
        { runDate: opts.date ?? null, lake: cfg.lakeRoot, landing: cfg.landingRoot, kind: 'manual' },
        progressPrinter(Boolean(opts.json)),
      );
      if (opts.json) console.log(JSON.stringify(summary, null, 2));
      else {
        console.log(summaryTable(summary));
        const total = summary.steps.reduce((a, s) => a + s.durationMs, 0);
        console.log(
          `${summary.workflowId} ${summary.status} in ${((Date.parse(summary.finishedAt) - Date.parse(summary.startedAt)) / 1000).toFixed(2)}s ` +
            `(activity time ${(total / 1000).toFixed(2)}s); lake ${summary.lake}`,
        );
        for (const n of summary.notes ?? []) console.log(`note: ${n}`);
      }
    } finally {
      await session.close();
    }
  });

program
  .command('worker')
  .description('run a pipeline worker against TEMPORAL_ADDRESS (or the local dev server)')
  .action(async () => {
    const cfg = config();
    await checkStorage(cfg, { landing: true, write: true });
    installRuntime(cfg.logLevel);
    const address = cfg.temporal.address ?? `127.0.0.1:${cfg.temporal.devPort}`;
    if (!(await isServerUp(cfg, address, 3000))) throw new PipelineFailed(`no Temporal server answers at ${address}`);
    const conn = await nativeConnectionFor(cfg, address);
    const { worker } = await createWorker(cfg, conn);
    console.log(`worker polling task queue ${cfg.temporal.taskQueue} on ${address} (Ctrl-C to stop)`);
    // The landing watcher (CPA_WATCH_ENABLED): one ingestEventFile per new events file, SPEC §7/§9.
    const watcher = cfg.streaming.watchEnabled ? await startWatcher(cfg, address) : undefined;
    await worker.run();
    await watcher?.stop();
    await conn.close();
  });

program
  .command('dev')
  .description('keep a local Temporal dev server (Web UI at :8233, state under the lake) and a worker running')
  .action(async () => {
    const cfg = config();
    await checkStorage(cfg, { landing: true, write: true });
    installRuntime(cfg.logLevel);
    const address = `127.0.0.1:${cfg.temporal.devPort}`;
    let endpoint;
    if (await isServerUp(cfg, address, 800)) {
      endpoint = { address, uiUrl: `http://127.0.0.1:${cfg.temporal.devUiPort}`, stop: async () => undefined };
      console.log(`a Temporal server is already running on ${address}; attaching a worker`);
    } else {
      endpoint = await startDevServer(cfg, {
        port: cfg.temporal.devPort,
        uiPort: cfg.temporal.devUiPort,
        dbFile: devDbFile(cfg),
      });
    }
    const conn = await nativeConnectionFor(cfg, endpoint.address);
    const { worker } = await createWorker(cfg, conn);
    console.log(`Temporal dev server: ${endpoint.address}`);
    console.log(`Temporal Web UI:     ${endpoint.uiUrl ?? 'n/a'}`);
    console.log(`worker on task queue ${cfg.temporal.taskQueue}; lake ${cfg.lakeRoot}`);
    console.log('run `npx cpa run` in another terminal, or start dailyPipeline from the UI. Ctrl-C stops both.');
    const shutdown = (): void => worker.shutdown();
    process.once('SIGINT', shutdown);
    process.once('SIGTERM', shutdown);
    const watcher = cfg.streaming.watchEnabled ? await startWatcher(cfg, endpoint.address) : undefined;
    await worker.run();
    await watcher?.stop();
    await conn.close();
    await endpoint.stop();
  });

program
  .command('status')
  .description(
    'the latest run per logical date (workflow, run id, kind, status, partitions changed), or with --stale what ' +
      'the next run would recompute',
  )
  .option('--lake <dir>', 'lake root')
  .option('--limit <n>', 'dates (or runs) to show', integer, 10)
  .option('--date <d>', 'every run of one logical date (YYYY-MM-DD, all, or a backfill range), newest first')
  .option('--failed', 'only the dates whose latest run failed')
  .option('--runs', 'every recorded run, newest first, not only the latest per date')
  .option('--stale', 'list the stale partitions of every silver and gold table, and why (SPEC §9a)')
  .option('--table <name>', 'with --stale: one table (e.g. gold.cost_anomaly_mart or usage_events)')
  .option('--json', 'JSON output')
  .action(
    async (opts: {
      lake?: string;
      limit: number;
      date?: string;
      failed?: boolean;
      runs?: boolean;
      stale?: boolean;
      table?: string;
      json?: boolean;
    }) => {
      const cfg = config(lakeOverrides(opts));
      await checkStorage(cfg);
      if (opts.table && !opts.stale) throw new PipelineFailed('--table goes with --stale');
      if (opts.stale && (opts.date || opts.failed || opts.runs)) {
        throw new PipelineFailed('--stale lists partitions, not runs: it does not go with --date, --failed or --runs');
      }
      if (opts.stale) {
        let report;
        try {
          report = await staleReport(cfg, opts.table);
        } catch (e) {
          throw new PipelineFailed((e as Error).message);
        }
        if (opts.json) {
          console.log(JSON.stringify(report, null, 2));
          return;
        }
        const t = new Table({
          style: { head: [], border: [] },
          head: ['table', 'partitions', 'stale', 'stale partitions', 'why'],
        });
        for (const r of report) {
          const why = new Map<string, number>();
          for (const s of r.stale) for (const x of s.reasons) why.set(x, (why.get(x) ?? 0) + 1);
          const parts = foldPartitions(r.stale.map((s) => s.partition));
          t.push([
            r.table,
            r.considered,
            r.stale.length,
            parts.length > 60 ? `${parts.slice(0, 59)}…` : parts,
            [...why].map(([k, n]) => `${k} (${n})`).join(', '),
          ]);
        }
        console.log(t.toString());
        const n = report.reduce((a, r) => a + r.stale.length, 0);
        console.log(
          n === 0
            ? `nothing stale in ${cfg.lakeRoot}: the next run recomputes only what newly landed files change`
            : `${n} stale partition(s) in ${cfg.lakeRoot}; their dependents follow when their content changes`,
        );
        return;
      }
      const all = await listRuns(cfg);
      const rows = (
        opts.runs
          ? all.map((r) => dateStatus(r)).filter((d) => !opts.failed || d.status === 'failed')
          : statusByDate(all, { date: opts.date, failed: opts.failed })
      ).slice(0, opts.limit);
      if (opts.json) {
        console.log(JSON.stringify(rows, null, 2));
        return;
      }
      if (rows.length === 0) {
        const what = opts.date ? `for date ${opts.date}` : opts.failed ? 'that failed (latest per date)' : 'recorded';
        console.log(`no runs ${what} in the lake ${cfg.lakeRoot}`);
        return;
      }
      const t = new Table({
        style: { head: [], border: [] },
        head: [
          'date',
          'workflow id',
          'run id',
          'kind',
          'status',
          'started',
          'seconds',
          'changed',
          'runs',
          'error / note',
        ],
      });
      for (const r of rows) {
        t.push([
          r.logicalDate,
          r.workflowId,
          r.runId,
          r.kind,
          r.status,
          r.startedAt,
          r.seconds.toFixed(2),
          r.partitionsChanged,
          r.runs,
          (r.error ?? r.notes?.join('; ') ?? '').slice(0, 80),
        ]);
      }
      console.log(t.toString());
      if (!opts.runs && !opts.date) console.log('latest run per logical date; `--date D` lists every run of a date');
    },
  );

program
  .command('quality')
  .description('quality figures of a run (default: the latest): gate checks, rows, quarantine per rule, null rates')
  .option('--lake <dir>', 'lake root')
  .option('--run <runId>', 'a run id (`cpa status` shows them)')
  .option('--workflow <id>', 'the latest run of a workflow id (e.g. daily-pipeline/2025-08-01)')
  .option('--date <d>', 'the latest run of a logical date')
  .option('--json', 'JSON output (camelCase keys; rule ids and metric names as recorded)')
  .action(async (opts: { lake?: string; run?: string; workflow?: string; date?: string; json?: boolean }) => {
    const cfg = config(lakeOverrides(opts));
    await checkStorage(cfg);
    if ([opts.run, opts.workflow, opts.date].filter(Boolean).length > 1) {
      throw new PipelineFailed('choose one of --run, --workflow and --date');
    }
    let report;
    try {
      report = await qualityReport(cfg, { runId: opts.run, workflowId: opts.workflow, date: opts.date });
    } catch (e) {
      throw new PipelineFailed((e as Error).message);
    }
    if (opts.json) {
      console.log(JSON.stringify(report, null, 2));
      return;
    }
    console.log(
      `run ${report.runId} · ${report.workflowId} · date ${report.logicalDate} · ${report.kind} · ` +
        `${report.status} · started ${report.startedAt} · ${report.steps.length} steps`,
    );
    if (report.error) console.log(`error: ${report.error}`);
    for (const n of report.notes ?? []) console.log(`note: ${n}`);
    if (report.gate) {
      console.log(`quality gate: ${report.gate.passed ? 'passed' : 'FAILED'}`);
      for (const c of report.gate.checks) {
        console.log(`  ${c.table} ${c.check}: ${c.value} (limit ${c.limit}) ${c.passed ? 'ok' : 'FAILED'}`);
      }
    } else console.log('quality gate: not reached');
    if (report.report?.uri) console.log(`report: ${report.report.uri}`);
    const t = new Table({
      style: { head: [], border: [] },
      head: ['step', 'rows in', 'rows out', 'quarantined by rule', 'worst null rate', 'seconds'],
    });
    for (const s of report.steps as StepMetrics[]) {
      const worst = Object.entries(s.nullRates).sort((a, b) => b[1] - a[1])[0];
      t.push([
        s.step,
        s.rowsIn,
        s.rowsOut,
        Object.entries(s.quarantined)
          .filter(([, n]) => n > 0)
          .map(([r, n]) => `${r}=${n}`)
          .join('\n') || '0',
        worst ? `${worst[0]} ${(worst[1] * 100).toFixed(2)}%` : '',
        (s.durationMs / 1000).toFixed(2),
      ]);
    }
    console.log(t.toString());
    for (const line of report.highlights) console.log(line);
  });

program
  .command('bench')
  .description(
    'generate data at scale S (if needed), run the pipeline embedded, print per-step seconds, events/s, peak RSS',
  )
  .requiredOption('--scale <S>', 'scale factor', positiveNumber)
  .option('--seed <N>', 'seed', integer, 42)
  .option('--dir <dir>', 'working directory for data and lake', path.join(os.tmpdir(), 'cpa-bench'))
  .option(
    '--landing <dir>',
    'benchmark this local landing directory (e.g. the reference dataset) instead of generating',
  )
  .option('--s3 <uri>', 'put landing and lake under s3://bucket/prefix (landing uploaded once, not timed)')
  .option(
    '--incremental',
    'build a lake of --days days, land one more day and time it, the no-op run and a 7-day backfill',
  )
  .option('--days <n>', 'with --incremental: days in the lake before the new one', integer, 60)
  .option('--json', 'JSON output')
  .action(
    async (opts: {
      scale: number;
      seed: number;
      dir: string;
      json?: boolean;
      landing?: string;
      s3?: string;
      incremental?: boolean;
      days: number;
    }) => {
      if (opts.s3 && !isS3(opts.s3)) throw new InvalidArgumentError('--s3 expects s3://bucket/prefix');
      if (opts.incremental) {
        if (opts.s3 || opts.landing) throw new InvalidArgumentError('--incremental runs on generated data, locally');
        await runIncrementalBench(config(), opts);
        return;
      }
      await runBench(config(), opts);
    },
  );

program
  .command('demo')
  .description('generate demo data (S=1) into the lake landing zone if absent, then run the pipeline (npm start)')
  .option('--scale <S>', 'scale factor', positiveNumber, 1)
  .action(async (opts: { scale: number }) => {
    const cfg = config();
    const marker = path.join(cfg.landingRoot, 'customers_orgs.csv');
    if (cfg.landingRoot.startsWith('s3://'))
      throw new PipelineFailed('demo generates into a local landing directory only');
    if (!fs.existsSync(marker)) {
      console.log(`generating demo data (S=${opts.scale}, seed 42) into ${cfg.landingRoot}`);
      await generate({ scale: opts.scale, seed: 42, out: cfg.landingRoot });
    }
    const session = await openSession(cfg);
    try {
      const summary = await runDaily(
        session,
        cfg,
        { runDate: null, lake: cfg.lakeRoot, landing: cfg.landingRoot, kind: 'manual' },
        progressPrinter(false),
      );
      console.log(summaryTable(summary));
      console.log(
        `${summary.workflowId} ${summary.status}; gold marts under ${cfg.lakeRoot}/gold — try \`npx cpa quality\``,
      );
    } finally {
      await session.close();
    }
  });

program.addOption(new Option('--verbose', 'print stack traces on failure').hideHelp());

// Feature areas register their own sub-commands (serving/queries, streaming, schedule/backfill): one module each.
const kit: CommandKit = { config, checkStorage, isoDate, integer, positiveNumber };
for (const register of [backfill, chaos, lake, landing, lineage, report, schedule, serving, streaming]) {
  register(program, kit);
}

/** Exits once stdout has drained: a large `--json` document written to a pipe must not be cut off. */
function exitAfterFlush(code: number): void {
  process.exitCode = code;
  process.stdout.write('', () => process.exit(code));
}

program.parseAsync(process.argv).then(
  () => exitAfterFlush(ExitCode.ok),
  (err: unknown) => {
    if (process.argv.includes('--verbose') && err instanceof Error) console.error(err.stack);
    // By name, not instanceof: a failing command need not load the config schema or the Temporal client to say why.
    const name = err instanceof Error ? err.name : '';
    const own = name === 'ConfigError' || name === 'OutcomeUnknown' || name === 'Interrupted';
    const msg = own ? (err as Error).message : rootMessage(err).split('\n')[0];
    console.error(`cpa: ${msg}`);
    const codes: Record<string, number> = {
      ConfigError: ExitCode.config,
      OutcomeUnknown: ExitCode.outcomeUnknown,
      Interrupted: ExitCode.interrupted,
    };
    exitAfterFlush(codes[name] ?? ExitCode.failed);
  },
);
