import { InvalidArgumentError, Option } from 'commander';
import type { Command } from 'commander';
import Table from 'cli-table3';
import { readEventManifest } from '../../lake/landing';
import { withLakeReader } from '../../lake/reader';
import { currentWatermark, driftReport, readSpeedState, readSpeedWindows } from '../../lake/speed';
import { WINDOW_SIZES } from '../../config/speed';
import type { WindowSize } from '../../config/speed';
import { isIsoDate } from '../../workflows/logical-date';
import { runStreamBench } from '../bench-stream';
import type { CommandKit } from '../kit';
import { openSession } from '../run';
import { PipelineFailed } from '../kit';
import { followResult } from '../../worker/follow';
import type { IngestEventFileResult } from '../../workflows';
import { describeOutcome, hashLandingFile, startIngestFile, Watcher } from '../../worker/watcher';

/**
 * Streaming commands (SPEC §7, §10): `ingest-file <key>` (one file by hand), `watch` (the watcher alone),
 * `speed` (read windows), `drift` (speed vs batch for closed days), `bench-stream` (file landed → row queryable).
 */
export function register(program: Command, kit: CommandKit): void {
  const lakeOpts = (o: { lake?: string; landing?: string }) => ({
    CPA_LAKE_ROOT: o.lake as never,
    CPA_LANDING_ROOT: o.landing as never,
  });
  const instant = (v: string): string => {
    if (
      !/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?Z?)?$/.test(v) ||
      !isIsoDate(v.slice(0, 10)) ||
      Number.isNaN(Date.parse(v.length === 10 ? `${v}T00:00:00Z` : v))
    ) {
      throw new InvalidArgumentError('expected a date YYYY-MM-DD or a UTC time YYYY-MM-DDTHH:MM[:SS]Z');
    }
    return v;
  };

  program
    .command('ingest-file')
    .description('ingest one landed events file now: bronze, then the speed layer (workflow ingest-file/<key>@<hash>)')
    .argument('<key>', `file key relative to the landing root, e.g. usage_events_stream/events_part_0007.jsonl`)
    .option('--landing <dir>', 'landing root (path or s3://bucket/prefix)')
    .option('--lake <dir>', 'lake root (path or s3://bucket/prefix)')
    .option('--with-worker', 'also run an in-process worker when TEMPORAL_ADDRESS is set')
    .option('--rerun', 'run again even if this version was ingested (idempotent; e.g. after resetting the speed layer)')
    .option('--json', 'print the workflow result as JSON')
    .action(
      async (
        key: string,
        opts: { landing?: string; lake?: string; withWorker?: boolean; rerun?: boolean; json?: boolean },
      ) => {
        const cfg = kit.config(lakeOpts(opts));
        await kit.checkStorage(cfg, { landing: true, write: true });
        const file = await hashLandingFile(cfg, cfg.landingRoot, key).catch((e: unknown) => {
          if ((e as { code?: string }).code === 'ENOENT' || (e as { name?: string }).name === 'NoSuchKey') {
            throw new PipelineFailed(`no file ${key} under the landing root ${cfg.landingRoot}`);
          }
          throw e;
        });
        const session = await openSession(cfg, { withWorker: opts.withWorker });
        try {
          const started = Date.now();
          const s = await startIngestFile(
            session.client,
            cfg,
            {
              fileKey: key,
              lake: cfg.lakeRoot,
              landing: cfg.landingRoot,
              contentSha256: file.sha256,
            },
            { rerun: opts.rerun },
          );
          if (s.duplicate) {
            if (opts.json)
              await out(JSON.stringify({ fileKey: key, workflowId: s.workflowId, duplicate: true }, null, 2));
            else
              await out(
                `${key}: this version (sha256 ${file.sha256.slice(0, 12)}…) was already ingested by ${s.workflowId}; nothing to do`,
              );
            return;
          }
          // Rides out a server outage up to CPA_CLI_OUTAGE_SECONDS, then OutcomeUnknown (exit 3).
          const result = await followResult<IngestEventFileResult>(
            session.client,
            cfg,
            s.workflowId,
            s.handle!.firstExecutionRunId,
            { embedded: session.endpoint.started },
          );
          if (opts.json) await out(JSON.stringify({ workflowId: s.workflowId, duplicate: false, ...result }, null, 2));
          else
            await out(
              describeOutcome({
                fileKey: key,
                workflowId: s.workflowId,
                status: 'completed',
                result,
                ms: Date.now() - started,
              }),
            );
        } finally {
          await session.close();
        }
      },
    );

  program
    .command('watch')
    .description(
      'watch <landing>/usage_events_stream/ and start ingestEventFile per new or changed file (Ctrl-C stops)',
    )
    .option('--landing <dir>', 'landing root (path or s3://bucket/prefix)')
    .option('--lake <dir>', 'lake root (path or s3://bucket/prefix)')
    .option('--interval <seconds>', 'poll interval (default CPA_WATCH_INTERVAL_SECONDS)', kit.positiveNumber)
    .option('--concurrency <n>', 'workflows in flight (default CPA_WATCH_CONCURRENCY)', kit.integer)
    .option('--with-worker', 'also run an in-process worker when TEMPORAL_ADDRESS is set')
    .action(
      async (opts: {
        landing?: string;
        lake?: string;
        interval?: number;
        concurrency?: number;
        withWorker?: boolean;
      }) => {
        const cfg = kit.config(lakeOpts(opts));
        await kit.checkStorage(cfg, { landing: true });
        if (opts.concurrency !== undefined && opts.concurrency < 1)
          throw new InvalidArgumentError('--concurrency must be at least 1');
        const session = await openSession(cfg, { withWorker: opts.withWorker });
        const watcher = new Watcher({
          client: session.client,
          config: cfg,
          lake: cfg.lakeRoot,
          landing: cfg.landingRoot,
          intervalMs: opts.interval ? opts.interval * 1000 : undefined,
          concurrency: opts.concurrency,
        });
        watcher.start();
        await out(`watching ${watcher.prefix} (lake ${cfg.lakeRoot}); Ctrl-C stops`);
        await new Promise<void>((resolve) => {
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        });
        await watcher.stop();
        await session.close();
      },
    );

  program
    .command('speed')
    .description('speed-layer windows (cost, requests, events per org and service), newest data first to land')
    .option('--lake <dir>', 'lake root')
    .option('--org <org_id>', 'one org')
    .option('--from <time>', 'windows starting at or after (YYYY-MM-DD or YYYY-MM-DDTHH:MMZ)', instant)
    .option('--to <time>', 'windows starting before (a date includes its whole day)', instant)
    .addOption(new Option('--window <size>', 'window size').choices(Object.keys(WINDOW_SIZES)).default('5m'))
    .option('--limit <n>', 'table rows to print (the last n windows)', kit.integer, 50)
    .option('--json', 'JSON output (every row)')
    .action(
      async (opts: {
        lake?: string;
        org?: string;
        from?: string;
        to?: string;
        window: WindowSize;
        limit: number;
        json?: boolean;
      }) => {
        const cfg = kit.config(lakeOpts(opts));
        await kit.checkStorage(cfg);
        // One connection for both reads: the rows' `closed` flags and the watermark printed come from one state.
        const { rows, state } = await withLakeReader(cfg, cfg.lakeRoot, async (conn, lake) => ({
          rows: await readSpeedWindows(conn, lake, { ...opts, lagMinutes: cfg.streaming.watermarkLagMinutes }),
          state: await readSpeedState(conn, lake),
        }));
        const watermark = currentWatermark(state, cfg.streaming.watermarkLagMinutes);
        if (opts.json) {
          await out(JSON.stringify({ window: opts.window, watermark, rows }, null, 2));
          return;
        }
        const t = new Table({
          style: { head: [], border: [] },
          head: ['window start', 'window end', 'org', 'service', 'cost usd', 'requests', 'events', 'closed'],
        });
        for (const r of rows.slice(-opts.limit)) {
          t.push([
            r.window_start,
            r.window_end,
            r.org_id,
            r.service,
            r.cost_usd,
            r.requests,
            r.events,
            r.closed ? 'yes' : 'open',
          ]);
        }
        if (rows.length > 0) await out(t.toString());
        await out(
          `${rows.length} ${opts.window} window rows${rows.length > opts.limit ? ` (last ${opts.limit} shown)` : ''}; ` +
            `watermark ${watermark ?? 'none yet'}; ${Object.keys(state.files).length} files in the speed layer`,
        );
      },
    );

  program
    .command('drift')
    .description('speed-layer totals vs batch totals (gold) for the days both layers have closed')
    .option('--lake <dir>', 'lake root')
    .option('--json', 'JSON output')
    .action(async (opts: { lake?: string; json?: boolean }) => {
      const cfg = kit.config(lakeOpts(opts));
      await kit.checkStorage(cfg);
      const report = await withLakeReader(cfg, cfg.lakeRoot, async (conn, lake) =>
        driftReport(conn, lake, cfg.streaming.watermarkLagMinutes, Object.keys(await readEventManifest(conn, lake))),
      );
      if (opts.json) {
        await out(JSON.stringify(report, null, 2));
        return;
      }
      if (report.days.length === 0) {
        await out(
          `no day is closed by both layers yet (batch closed through ${report.batchClosedThrough ?? '—'}, ` +
            `speed watermark ${report.speedWatermark ?? '—'})`,
        );
        return;
      }
      const t = new Table({
        style: { head: [], border: [] },
        head: [
          'day',
          'batch cost',
          'speed cost',
          'drift',
          'late cost',
          'unexplained',
          'batch ev',
          'speed ev',
          'late ev',
          'unexpl. ev',
        ],
      });
      for (const d of [...report.days, { usage_date: 'total', ...report.totals }]) {
        t.push([
          d.usage_date,
          d.batch_cost_usd,
          d.speed_cost_usd,
          d.drift_cost_usd,
          d.late_cost_usd,
          d.unexplained_cost_usd,
          d.batch_events,
          d.speed_events,
          d.late_events,
          d.unexplained_events,
        ]);
      }
      await out(t.toString());
      await out(
        `closed through ${report.closedThrough} (batch ${report.batchClosedThrough}, speed watermark ${report.speedWatermark}); ` +
          `drift = batch − speed; late events are batch-only by design, so unexplained should be 0` +
          (report.filesNotInSpeed > 0
            ? `; ${report.filesNotInSpeed} bronze files were never streamed (batch-only)`
            : ''),
      );
    });

  program
    .command('bench-stream')
    .description('measure file landed → speed-layer row queryable latency (p50/p95) through watcher + workflows')
    .option('--scale <S>', 'scale factor of the generated stream', kit.positiveNumber, 1)
    .option('--seed <N>', 'seed', kit.integer, 42)
    .option('--files <n>', 'files to drop, one at a time', kit.integer, 60)
    .option('--interval <seconds>', 'watcher poll interval', kit.positiveNumber)
    .option('--dir <dir>', 'working directory for data and lake')
    .option('--json', 'JSON output')
    .action(
      async (opts: { scale: number; seed: number; files: number; interval?: number; dir?: string; json?: boolean }) => {
        await runStreamBench(opts);
      },
    );
}

/**
 * Writes a line and waits until it is flushed: the CLI exits with process.exit() right after the action, which
 * would cut a large `--json` document written to a pipe.
 */
function out(text: string): Promise<void> {
  return new Promise((resolve, reject) => process.stdout.write(`${text}\n`, (e) => (e ? reject(e) : resolve())));
}
