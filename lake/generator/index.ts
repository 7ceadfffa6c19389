/**
 * Deterministic test-data generator (SPEC §11): the eight landing sources at scale factor S.
 *
 * Same (scale, seed, startDate, days) → byte-identical files. Events are generated and written one micro-batch
 * file at a time, so memory does not grow with S (S = 100 is 4.3 M events). Every injected quirk is counted in
 * `_generator_report.json` under the rule id the pipeline uses, so tests can compare quarantine counts exactly.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';

import { z } from 'zod';

import { writeBatchSources, type CsvTable } from './batch';
import { formatDay } from './format';
import { EventStream } from './events';
import { eventFileName, makePlan } from './plan';
import { emptyQuirkCounts, type QuirkCounts } from './quirks';
import { FilePipeline } from './writer';

export { CSV_HEADERS } from './batch';
export { makePlan, type GeneratorPlan } from './plan';
export { CSV_QUIRKS, EVENT_QUIRKS, SERVICE_VARIANTS, regionVariants, type QuirkCounts } from './quirks';

export const EVENTS_DIR = 'usage_events_stream';
export const REPORT_FILE = '_generator_report.json';

const optionsSchema = z.object({
  scale: z.number().positive().max(10_000),
  seed: z.number().int().min(Number.MIN_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER),
  out: z.string().min(1),
  startDate: z
    .string()
    .regex(/^\d{4}-\d{2}-\d{2}$/, 'startDate must be YYYY-MM-DD')
    .default('2025-07-03'),
  days: z.number().int().min(1).max(3_660).default(60),
});

export interface GenerateOptions {
  scale: number;
  seed: number;
  out: string;
  /** First event day, default '2025-07-03' (the reference's). */
  startDate?: string;
  /** Days of events, default 60. */
  days?: number;
  /** Called after each events file with (events lines written, total events lines). */
  onProgress?: (done: number, total: number) => void;
}

export interface GeneratorReport {
  scale: number;
  seed: number;
  start_date: string;
  end_date: string;
  days: number;
  orgs: number;
  /** Events JSONL files. */
  files: number;
  /** Lines in all events files, malformed lines and duplicates included. */
  events_written: number;
  /** Distinct event_id values over the parseable lines. */
  distinct_event_ids: number;
  /** Data rows (header excluded) per CSV, duplicates included. */
  csv_rows: Record<CsvTable, number>;
  /**
   * Exact number of records carrying each quirk; an event carries at most one. `late_events`: non-duplicate events
   * whose timestamp is more than 2 h older than the maximum timestamp of all earlier files (file-name order).
   * `duplicate_event_id`: lines whose event_id appeared on an earlier line (exact copies of clean events).
   */
  quirks: QuirkCounts;
}

/** Validates options with one readable line per problem (the CLI prints it as the exit reason). */
function parseOptions(opts: GenerateOptions): z.output<typeof optionsSchema> {
  const parsed = optionsSchema.safeParse(opts);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => `${issue.path.join('.') || 'options'}: ${issue.message}`);
  throw new Error(`invalid generator options: ${problems.join('; ')}`);
}

/** Refuses to mix with another run's events: stale extra part files would silently join the dataset. */
async function assertNoForeignEventFiles(eventsDir: string, expected: ReadonlySet<string>): Promise<void> {
  const existing = await fsp.readdir(eventsDir);
  const foreign = existing.filter((name) => /^events_part_\d+\.jsonl$/.test(name) && !expected.has(name));
  if (foreign.length > 0) {
    throw new Error(
      `${eventsDir} already holds ${foreign.length} events file(s) of another run (e.g. ${foreign[0]}); ` +
        'generate into an empty directory',
    );
  }
}

/** Generates all sources into `opts.out` (created if missing) and returns the report it also writes there. */
export async function generate(opts: GenerateOptions): Promise<GeneratorReport> {
  const { scale, seed, out, startDate, days } = parseOptions(opts);
  const plan = makePlan(scale, seed, startDate, days);
  const eventsDir = path.join(out, EVENTS_DIR);
  await fsp.mkdir(eventsDir, { recursive: true });
  const fileNames = Array.from({ length: plan.files }, (_, k) => eventFileName(k, plan.files));
  await assertNoForeignEventFiles(eventsDir, new Set(fileNames));

  const counts = emptyQuirkCounts();
  const batch = await writeBatchSources(plan, out, counts);

  const stream = new EventStream(plan, batch.resources, counts);
  const pipeline = new FilePipeline();
  for (const [k, name] of fileNames.entries()) {
    const file = stream.generateFile(k);
    await pipeline.write(path.join(eventsDir, name), Buffer.from(file.text, 'latin1'));
    opts.onProgress?.(stream.totals.linesWritten, plan.events);
  }

  const report: GeneratorReport = {
    scale,
    seed,
    start_date: startDate,
    end_date: formatDay(plan.startDay + days - 1),
    days,
    orgs: plan.orgs,
    files: plan.files,
    events_written: stream.totals.linesWritten,
    distinct_event_ids: stream.totals.distinctEventIds,
    csv_rows: { ...batch.rows },
    quirks: counts,
  };
  // Written after every other file is in place (and atomically, like them): its presence marks a complete dataset.
  await pipeline.drain();
  await pipeline.write(path.join(out, REPORT_FILE), Buffer.from(`${JSON.stringify(report, null, 2)}\n`));
  await pipeline.drain();
  return report;
}
