import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { ensureRegistryTables } from './models';
import { isUtf8 } from 'node:buffer';
import { parse as parseCsv } from 'csv-parse/sync';
import { ApplicationFailure } from '@temporalio/common';
import { structValue } from '@duckdb/node-api';
import type { DuckDBConnection } from '@duckdb/node-api';
import { BRONZE_EVENT_COLUMNS, CSV_CONTRACTS, QUARANTINE_COLUMNS } from '../config/contracts';
import type { CsvContract } from '../config/contracts';
import { emptyView, lakeWrite, partitionVersions, publishTables, registerView } from '../lake/lakehouse';
import type { AttachedLake, PublishSpec } from '../lake/lakehouse';
import { acquireThreads, loadSql, queryRows, setVariables, sqlIdent } from '../lake/duckdb';
import { partitionFilter } from '../lake/incremental';
import { firstField, longestField, recordAt, scanCsv } from '../lake/csv-scan';
import type { CsvScan } from '../lake/csv-scan';
import {
  assertLiteralPath,
  isNotFound,
  readLandingFile,
  RefusedFileError,
  resolveLandingKey,
  scratchDir,
  storageFor,
} from '../lake/storage';
import type { RefusedEntry, Storage } from '../lake/storage';
import {
  eventCandidates,
  partitionsByFile,
  partitionsOf,
  pendingEventFiles,
  readEventManifest,
  readLandedFiles,
  recordedPartitions,
  writeLandedFiles,
} from '../lake/landing';
import type { ManifestEntry } from '../lake/landing';
import { checkLocalLanding, LandingUnusableError, noSources } from '../lake/preflight';
import { classify, contractViolation, emptyMetrics, heartbeat, nullRates, onCancel, openLake, warn } from './common';
import type { ActivityDeps, RunTarget, StepMetrics } from './common';
import { firstLine } from '../lake/errors';

export { EVENTS_PREFIX, readEventManifest } from '../lake/landing';

const sha256 = (b: Buffer): string => crypto.createHash('sha256').update(b).digest('hex');

/**
 * Checks the header line of a CSV against its contract (names and order). Returns a message naming file, line 1
 * and the first differing column, or undefined when it matches.
 */
export function checkHeader(file: string, firstLine: string, contract: CsvContract): string | undefined {
  const expected = contract.columns.map((c) => c.name);
  if (firstLine.trim() === '') return `${file} line 1 column 1: empty file, expected header ${expected.join(',')}`;
  let found: string[];
  try {
    found = (parseCsv(firstLine, { relax_column_count: true }) as string[][])[0].map((s) =>
      s.replace(/^\uFEFF/, '').trim(),
    );
  } catch (e) {
    return `${file} line 1 column 1: header is not valid CSV (${(e as Error).message})`;
  }
  for (let i = 0; i < Math.max(expected.length, found.length); i++) {
    if (found[i] !== expected[i]) {
      const what = found[i] === undefined ? 'missing' : `found '${found[i]}'`;
      return `${file} line 1 column ${i + 1}: expected header '${expected[i] ?? '(none)'}', ${what}`;
    }
  }
  return undefined;
}

/**
 * Ingests one CSV snapshot into its bronze table. The file is checked against its contract first (header, then
 * every value's type, with DuckDB's reject table giving line and column); a file that breaks it is rejected whole
 * with a non-retryable ContractViolation and nothing is written. Idempotent: an unchanged file (same sha256) is
 * skipped, a changed one replaces the bronze table.
 */
export async function ingestCsvSource(deps: ActivityDeps, input: RunTarget & { table: string }): Promise<StepMetrics> {
  const started = Date.now();
  const contract = CSV_CONTRACTS.find((c) => c.bronze === input.table);
  if (!contract) throw contractViolation(`unknown CSV source table ${input.table}`);
  const metrics = emptyMetrics(`bronze.${contract.bronze}`, 'bronze', contract.bronze);
  const ctx = await openLake(deps, input);
  // The first step of a run to open the lake creates the run's missing tables, in one catalog transaction.
  await ensureRegistryTables(deps, ctx.lake);
  const { conn } = ctx;
  const done = onCancel(conn);
  const scratch = await scratchDir('csv');
  try {
    const uri = resolveLandingKey(input.landing, contract.file);
    const landingStorage = storageForLanding(deps, input);
    let bytes: Buffer;
    try {
      bytes = await readLandingFile(landingStorage, input.landing, uri, contract.file);
    } catch (e) {
      if (isNotFound(e)) {
        metrics.extra.missing_source = 1;
        return await finish(ctx, input, metrics, started);
      }
      // A symlink, FIFO, directory… is never read: the previous bronze stays, the run's metrics say why.
      if (!(e instanceof RefusedFileError)) throw e;
      refuse(metrics, e);
      return await finish(ctx, input, metrics, started);
    }
    const hash = sha256(bytes);
    const prev = (await readLandedFiles(conn, ctx.lake, 'csv', contract.file))[contract.file];
    if (prev && prev.sha256 === hash) {
      metrics.rowsIn = prev.rows;
      metrics.rowsOut = prev.rows;
      metrics.extra.unchanged_source = 1;
      metrics.partitionsConsidered = 1;
      return await finish(ctx, input, metrics, started);
    }
    if (!isUtf8(bytes)) {
      const line = firstInvalidUtf8Line(bytes);
      throw contractViolation(`${contract.file} line ${line} column 1: not valid UTF-8`, { file: contract.file, line });
    }
    const header = bytes
      .subarray(0, Math.max(0, bytes.indexOf(0x0a) === -1 ? bytes.length : bytes.indexOf(0x0a)))
      .toString('utf8');
    const headerProblem = checkHeader(contract.file, header, contract);
    if (headerProblem) throw contractViolation(headerProblem, { file: contract.file, line: 1 });

    // Rows in = the file's non-empty records (a quoted field may span lines); every one must come out of DuckDB or
    // the file is rejected whole: DuckDB's reader drops a row with a field beyond its buffer (≈ 32 MB) silently.
    const scan = scanCsv(bytes);
    const dataRecords = scan.lines.length - 1;
    metrics.rowsIn = dataRecords;
    await acquireThreads(deps.db, deps.config, dataRecords);
    for (let k = 1; k < scan.lengths.length; k++) {
      if (scan.lengths[k] > CSV_MAX_ROW_BYTES) {
        const f = longestField(scan, k);
        const name = contract.columns[f.column - 1]?.name;
        throw contractViolation(
          `${contract.file} line ${scan.lines[k]} column ${f.column}${name ? ` (${name})` : ''}: row of ` +
            `${scan.lengths[k]} bytes exceeds the maximum CSV row size of ${CSV_MAX_ROW_BYTES} bytes`,
          { file: contract.file, line: scan.lines[k], column: f.column },
        );
      }
    }
    // DuckDB expands glob characters in any path it reads: the scratch name is the contract's, checked literal.
    const local = assertLiteralPath(path.join(scratch, contract.file));
    await fsp.writeFile(local, scan.data);
    await conn.run(loadSql('bronze/csv_reset.sql'));
    await setVariables(conn, {
      csv_path: local,
      csv_columns: structValue(Object.fromEntries(contract.columns.map((c) => [c.name, c.type]))),
      csv_max_line_bytes: CSV_READER_LINE_BYTES,
    });
    try {
      await conn.run(`create or replace temp table _csv_raw as ${loadSql('bronze/csv_read.sql')}`);
    } catch (e) {
      // A file DuckDB's reader cannot get through at all (its own errors name no line): reject it whole by name.
      const msg = firstLine(e);
      throw contractViolation(`${contract.file} line 1 column 1: file could not be read as CSV (${msg})`, {
        file: contract.file,
        line: 1,
        column: 1,
      });
    }
    const [read] = await queryRows(conn, loadSql('bronze/csv_read_check.sql'));
    if (read.rejected) {
      const col = Number(read.column_idx) || 1;
      const name = read.column_name ? ` (${String(read.column_name)})` : '';
      const msg = firstLine(read.error_message);
      const line = physicalLine(scan, read.line_byte_position, read.line);
      throw contractViolation(`${contract.file} line ${line} column ${col}${name}: ${msg}`, {
        file: contract.file,
        line,
        column: col,
      });
    }
    const readRows = Number(read.read_rows);
    if (readRows !== dataRecords) {
      const line = await firstMissingLine(conn, scan, contract.columns[0].name);
      throw contractViolation(
        `${contract.file} line ${line} column 1: the CSV reader returned ${readRows} of ${dataRecords} rows ` +
          `and rejected none; the file is rejected whole`,
        { file: contract.file, line, column: 1 },
      );
    }
    await loadLineMap(conn, scan);
    await setVariables(conn, { ingest_ts: new Date().toISOString(), source_file: contract.file });
    // One row out per record read (csv_out.sql joins the line map on the record number, unique).
    await conn.run(`create or replace temp table _bronze_out as ${loadSql('bronze/csv_out.sql')}`);
    const entry: ManifestEntry = {
      key: contract.file,
      sha256: hash,
      size: bytes.length,
      version: hash,
      rows: readRows,
      ingestedAt: new Date().toISOString(),
      runId: input.runId,
    };
    // The table and the file's manifest record commit in one transaction: never one without the other.
    const [pub] = await publishTables(ctx, [{ layer: 'bronze', table: contract.bronze, source: '_bronze_out' }], {
      step: `bronze.${contract.bronze}`,
      extra: [(c) => writeLandedFiles(c, ctx.lake, 'csv', [entry])],
    });
    metrics.rowsOut = pub.rows;
    metrics.partitionsWritten = pub.written.length;
    metrics.partitionsUnchanged = pub.unchanged;
    // A changed snapshot recomputes the whole table (one unit).
    metrics.partitionsConsidered = 1;
    metrics.partitionsRecomputed = 1;
    metrics.partitionsChanged = pub.written.length + pub.deleted.length;
    metrics.nullRates = await nullRates(conn, '_bronze_out', contract.key);
    return await finish(ctx, input, metrics, started);
  } catch (e) {
    throw classify(e, `bronze.${contract.bronze}`);
  } finally {
    done();
    conn.closeSync();
    await fsp.rm(scratch, { recursive: true, force: true });
  }
}

/** Longest CSV record accepted (bytes, line end excluded); a longer one rejects its file with line and column. */
export const CSV_MAX_ROW_BYTES = 2_000_000;
/** DuckDB's max_line_size, set above CSV_MAX_ROW_BYTES so the reader never cuts a record the scan accepted. */
const CSV_READER_LINE_BYTES = CSV_MAX_ROW_BYTES + 4096;

/** The physical line of a DuckDB reject: from its byte position when known, else from its record number. */
function physicalLine(scan: CsvScan, bytePos: unknown, recordNo: unknown): number {
  if (bytePos !== null && bytePos !== undefined && scan.starts.length > 0) {
    return scan.lines[recordAt(scan, Math.max(0, Number(bytePos) - 1))];
  }
  const k = Number(recordNo) - 1;
  return scan.lines[k] ?? Number(recordNo);
}

/** The line of the first record the reader did not return (compared by first field, in file order). */
async function firstMissingLine(conn: DuckDBConnection, scan: CsvScan, firstColumn: string): Promise<number> {
  await setVariables(conn, { csv_first_column: firstColumn });
  const rows = await queryRows(conn, loadSql('bronze/csv_read_keys.sql'));
  for (let k = 1; k < scan.lines.length; k++) {
    const got = rows[k - 1];
    if (got === undefined || String(got.v) !== firstField(scan, k)) return scan.lines[k];
  }
  return scan.lines[scan.lines.length - 1];
}

/**
 * Fills `_csv_lines` (record number → the physical line it starts on) for lake/sql/bronze/csv_out.sql: only when a
 * quoted field spans lines; otherwise it stays empty and a record's line is its number + 1.
 */
async function loadLineMap(conn: DuckDBConnection, scan: CsvScan): Promise<void> {
  await conn.run(`create or replace temp table _csv_lines (ordinality bigint, line integer)`);
  if (!scan.irregular) return;
  const app = await conn.createAppender('_csv_lines', 'main', 'temp');
  for (let k = 1; k < scan.lines.length; k++) {
    app.appendBigInt(BigInt(k));
    app.appendInteger(scan.lines[k]);
    app.endRow();
  }
  app.closeSync();
}

function storageForLanding(deps: ActivityDeps, input: RunTarget): Storage {
  // Landing and lake may live on different backends (e.g. local landing, S3 lake).
  return storageFor(input.landing, deps.config);
}

/** Counts a refused landing entry in `extra.files_refused` and logs its key and why (SPEC §12: never silently). */
function refuse(metrics: StepMetrics, r: RefusedEntry): void {
  metrics.extra.files_refused = (metrics.extra.files_refused ?? 0) + 1;
  warn(`${metrics.step}: landing file ${r.key} refused: ${r.reason}`, { key: r.key, reason: r.reason });
}

function countLines(b: Buffer): number {
  let n = 0;
  for (let i = b.indexOf(0x0a); i !== -1; i = b.indexOf(0x0a, i + 1)) n++;
  return b.length > 0 && b[b.length - 1] !== 0x0a ? n + 1 : n;
}

function firstInvalidUtf8Line(b: Buffer): number {
  let line = 1;
  let start = 0;
  for (let i = 0; i <= b.length; i++) {
    if (i === b.length || b[i] === 0x0a) {
      if (!isUtf8(b.subarray(start, i))) return line;
      line++;
      start = i + 1;
    }
  }
  return line;
}

async function finish(
  ctx: { conn: DuckDBConnection; lake: AttachedLake },
  target: RunTarget,
  m: StepMetrics,
  started: number,
): Promise<StepMetrics> {
  m.durationMs = Date.now() - started;
  return m;
}

/**
 * A landing without a single events file must still hold some expected source: a mistyped `--landing` (missing
 * directory, wrong prefix) fails the run instead of succeeding on an empty lake.
 */
async function checkLandingHasSources(storage: Storage, landing: string): Promise<void> {
  try {
    if (storage.kind === 'local') return await checkLocalLanding(landing);
  } catch (e) {
    if (e instanceof LandingUnusableError) throw ApplicationFailure.nonRetryable(e.message, e.name);
    throw e;
  }
  for (const c of CSV_CONTRACTS) if (await storage.exists(resolveLandingKey(landing, c.file))) return;
  throw ApplicationFailure.nonRetryable(noSources(landing), 'LandingUnusable');
}

/** Max bytes of event files parsed in one DuckDB statement; bounds memory at any scale. */
const EVENT_BATCH_BYTES = 256 * 1024 * 1024;

/**
 * Ingests landed events files into bronze usage_events: pending files (not in the manifest, or changed since) in
 * ascending key order, or exactly `keys` when given. Lines that are not JSON objects go to
 * quarantine/usage_events (rule malformed_json) with file and line; every other line is typed and deduplicated by
 * event_id against bronze (first seen wins, across files and runs). New rows are appended to their usage_date
 * partitions and the rows they displace deleted; nothing else is rewritten. Idempotent: a file already in the
 * manifest with the same sha256 is skipped, and a crash between publish and manifest update re-ingests to the same
 * content.
 */
export async function ingestEventFiles(
  deps: ActivityDeps,
  input: RunTarget & { keys?: string[] },
): Promise<StepMetrics> {
  const started = Date.now();
  const metrics = emptyMetrics('bronze.usage_events', 'bronze', 'usage_events');
  const ctx = await openLake(deps, input);
  const { conn } = ctx;
  const done = onCancel(conn);
  const scratch = await scratchDir('events');
  const landingStorage = storageForLanding(deps, input);
  let inflight: Promise<void> = Promise.resolve();
  try {
    const manifest = await readEventManifest(conn, ctx.lake);
    const { candidates, refused } = await eventCandidates(landingStorage, input.landing, input.keys);
    for (const r of refused) refuse(metrics, r);
    if (!input.keys && candidates.length === 0 && refused.length === 0) {
      await checkLandingHasSources(landingStorage, input.landing);
    }
    const { pending, unchanged } = pendingEventFiles(candidates, manifest);
    let filesSkipped = unchanged;
    const touched: ManifestEntry[] = [];

    // Group pending files into bounded batches; hashing happens while reading each file once.
    type Pending = { key: string; path: string; sha: string; size: number; lines: number; version: string };
    let batch: Pending[] = [];
    let batchBytes = 0;
    // Each batch is parsed and published (DuckDB) while the next one is read, hashed and linked (Node): one batch in
    // DuckDB at a time, in key order; a batch's failure surfaces at the next flush (or the final one).
    const flush = async (): Promise<void> => {
      await inflight;
      if (batch.length === 0) return;
      const files = batch;
      batch = [];
      batchBytes = 0;
      const entries = (filePartitions: Map<string, string[]>): ManifestEntry[] =>
        files.map((p) => ({
          key: p.key,
          sha256: p.sha,
          size: p.size,
          version: p.version,
          rows: p.lines,
          ingestedAt: new Date().toISOString(),
          runId: input.runId,
          partitions: recordedPartitions(manifest[p.key], filePartitions.get(p.key)),
        }));
      inflight = (async () => {
        const lines = files.reduce((a, f) => a + f.lines, 0);
        // A heavy batch gives DuckDB all its threads; they stay until no activity runs (lake/duckdb.ts).
        await acquireThreads(deps.db, deps.config, lines);
        const recorded = await ingestEventBatch(ctx, input, files, metrics, entries);
        for (const e of recorded) manifest[e.key] = e;
        heartbeat({ filesDone: metrics.extra.files_ingested });
      })();
      inflight.catch(() => undefined);
    };
    let i = 0;
    const read = readAhead(pending, landingStorage.kind === 's3' ? S3_READ_AHEAD : 1, (c) =>
      readLandingFile(landingStorage, input.landing, c.uri, c.key).catch((e: unknown) => {
        if (isNotFound(e)) throw contractViolation(`file ${c.key} does not exist under the landing root`);
        throw e;
      }),
    );
    for (const [k, c] of pending.entries()) {
      const prev = manifest[c.key];
      let bytes: Buffer;
      try {
        bytes = await read(k);
      } catch (e) {
        // The one file asked for by key is refused as bad input; in a batch run it is reported and the rest ingested.
        if (!(e instanceof RefusedFileError)) throw e;
        if (input.keys) throw contractViolation(e.message, { file: e.key, reason: e.reason });
        refuse(metrics, e);
        continue;
      }
      const sha = sha256(bytes);
      if (prev && prev.sha256 === sha) {
        // Same content under a new listing version (touched, re-uploaded): remember the version, ingest nothing.
        if (c.version && prev.version !== c.version) {
          manifest[c.key] = { ...prev, version: c.version, ingestedAt: new Date().toISOString() };
          touched.push(manifest[c.key]);
        }
        filesSkipped++;
        continue;
      }
      // DuckDB reads a scratch name made here, never the landing name: it expands `*`, `?` and `[…]` in any path it
      // is given (no literal-path switch), so `a[1].jsonl` would read `a1.jsonl` or nothing. A local valid file is
      // hard-linked (no copy); read_text needs valid UTF-8, so lines that are not are replaced by a marker and
      // quarantined as malformed_json with their line number instead of failing the whole file.
      const local = assertLiteralPath(path.join(scratch, `f${i++}.jsonl`));
      const valid = isUtf8(bytes);
      const linked =
        valid &&
        landingStorage.kind === 'local' &&
        (await fsp.link(c.uri, local).then(
          () => true,
          () => false,
        ));
      if (!linked) await fsp.writeFile(local, valid ? bytes : sanitizeUtf8(bytes));
      batch.push({ key: c.key, path: local, sha, size: bytes.length, lines: countLines(bytes), version: c.version });
      batchBytes += bytes.length;
      metrics.extra.files_ingested = (metrics.extra.files_ingested ?? 0) + 1;
      if (batchBytes >= EVENT_BATCH_BYTES) await flush();
    }
    await flush();
    await inflight;
    if (touched.length > 0) {
      await lakeWrite(conn, ctx.lake, async () => () => writeLandedFiles(conn, ctx.lake, 'usage_events', touched));
    }
    metrics.extra.files_skipped = filesSkipped;
    metrics.extra.files_ingested ??= 0;
    return await finish(ctx, input, metrics, started);
  } catch (e) {
    throw classify(e, 'bronze.usage_events');
  } finally {
    // Never close the connection or remove the scratch files under a batch still running.
    await inflight.catch(() => undefined);
    done();
    conn.closeSync();
    await fsp.rm(scratch, { recursive: true, force: true });
  }
}

/** Landing files fetched ahead of use on S3, where each GET is a round trip (files are read one at a time locally). */
const S3_READ_AHEAD = 4;

/**
 * `read(k)` resolves item k's bytes, having started the reads of the next `ahead - 1` items. Reads started ahead are
 * marked handled, so a failure surfaces when (and only if) its item is awaited.
 */
function readAhead<T>(items: T[], ahead: number, fetch: (item: T) => Promise<Buffer>): (k: number) => Promise<Buffer> {
  const pending = new Map<number, Promise<Buffer>>();
  return (k) => {
    for (let j = k; j < Math.min(items.length, k + ahead); j++) {
      if (pending.has(j)) continue;
      const p = fetch(items[j]);
      p.catch(() => undefined);
      pending.set(j, p);
    }
    const p = pending.get(k)!;
    pending.delete(k);
    return p;
  };
}

/**
 * The file with each line that is not valid UTF-8 replaced by a marker line holding its bytes in base64 (quarantined
 * as malformed_json by lake/sql/bronze/usage_events.sql). Lines are found with indexOf and checked natively; only the
 * bad lines are rebuilt, the valid stretches between them are copied as they are.
 */
export function sanitizeUtf8(b: Buffer): Buffer {
  const out: Buffer[] = [];
  let copied = 0;
  for (let start = 0; start <= b.length;) {
    let end = b.indexOf(0x0a, start);
    if (end === -1) end = b.length;
    const line = b.subarray(start, end);
    if (!isUtf8(line)) {
      out.push(b.subarray(copied, start), Buffer.from(`\u0000invalid UTF-8, base64:${line.toString('base64')}`));
      copied = end;
    }
    start = end + 1;
  }
  out.push(b.subarray(copied));
  return Buffer.concat(out);
}

async function ingestEventBatch(
  ctx: Awaited<ReturnType<typeof openLake>>,
  input: RunTarget,
  batch: Array<{ key: string; path: string }>,
  metrics: StepMetrics,
  entries: (filePartitions: Map<string, string[]>) => ManifestEntry[],
): Promise<ManifestEntry[]> {
  const { conn } = ctx;
  await conn.run(`create or replace temp table _event_files (path varchar, source_file varchar)`);
  const app = await conn.createAppender('_event_files', 'main', 'temp');
  for (const f of batch) {
    app.appendVarchar(f.path);
    app.appendVarchar(f.key);
    app.endRow();
  }
  app.closeSync();
  await conn.run(`set variable event_paths = (select list(path order by source_file) from _event_files)`);
  await setVariables(conn, { ingest_ts: new Date().toISOString() });
  // Split first, parse second: the split reads one row per file (one thread); the parse then runs in parallel.
  await conn.run(`create or replace temp table _event_lines as ${loadSql('bronze/usage_events_lines.sql')}`);
  await conn.run(`create or replace temp table _parsed as ${loadSql('bronze/usage_events.sql')}`);
  await conn.run(`drop table _event_lines`);
  const filePartitions = await partitionsByFile(conn, '_parsed');

  // Existing bronze of the days the batch's rows fall in (SPEC §9a: the id index is per usage_date, so dedup and
  // the partition rewrite read those days only, never all of bronze), and malformed lines (to merge quarantine).
  const batchDays = new Set([...filePartitions.values()].flat());
  await registerView(
    ctx,
    'bronze',
    'usage_events',
    'bronze_existing',
    BRONZE_EVENT_COLUMNS,
    partitionFilter('usage_date', batchDays),
  );
  await registerView(ctx, 'quarantine', 'usage_events', 'quarantine_existing', QUARANTINE_COLUMNS);

  const [counts] = await queryRows(
    conn,
    `select count(*) filter (where _rule is null)::bigint as parsed, count(*) filter (where _rule is not null)::bigint as malformed
     from _parsed`,
  );
  metrics.rowsIn += Number(counts.parsed) + Number(counts.malformed);

  // First in landing order wins (lake/sql/bronze/usage_events_first_seen.sql), then the existing rows those displace.
  // Days bronze does not hold yet (every batch of a from-scratch run but the days it shares with the one before) read
  // an empty view instead: the lookup, the displaced rows and the rows to remove then never scan the lake.
  const [{ e: hasExisting }] = await queryRows(conn, `select exists (select 1 from bronze_existing) as e`);
  if (!hasExisting) await emptyView(conn, 'bronze_existing', BRONZE_EVENT_COLUMNS);
  // The existing rows' keys whose id the batch has, read from the lake once for both statements below (each read them
  // from the days' Parquet files: 340 + 158 ms of a one-day run at S=100).
  await conn.run(
    `create or replace temp table bronze_lookup as select b.event_id, b.usage_date, b.source_file
     from bronze_existing as b semi join _parsed as p on p.event_id = b.event_id`,
  );
  await conn.run(`create or replace temp table _new_events as ${loadSql('bronze/usage_events_first_seen.sql')}`);
  await conn.run(`create or replace temp table _displaced as ${loadSql('bronze/usage_events_displaced.sql')}`);
  const [newCount] = await queryRows(
    conn,
    `select (select count(*) from _new_events)::bigint as n, (select count(*) from _displaced)::bigint as displaced`,
  );
  metrics.extra.duplicates_dropped =
    (metrics.extra.duplicates_dropped ?? 0) + Number(counts.parsed) - Number(newCount.n) + Number(newCount.displaced);
  metrics.extra.duplicates_displaced = (metrics.extra.duplicates_displaced ?? 0) + Number(newCount.displaced);
  metrics.quarantined.malformed_json = (metrics.quarantined.malformed_json ?? 0) + Number(counts.malformed);

  const affected = await partitionsOf(conn, '_new_events');
  const specs: PublishSpec[] = [];
  if (affected.size > 0) {
    // The new rows are appended to their days (nothing of a day is rewritten; SPEC §9a); existing rows displaced by an
    // earlier file's row are deleted in the same commit. Columns in the table's order and types.
    await conn.run(
      `create or replace temp table _bronze_removed as select b.* from bronze_existing as b
       semi join _displaced as d on d.event_id = b.event_id and d.source_file = b.source_file
         and d.usage_date is not distinct from b.usage_date`,
    );
    await conn.run(
      `create or replace temp view _bronze_out as select ${BRONZE_EVENT_COLUMNS.map(
        (c) => `cast(${sqlIdent(c.name)} as ${c.type}) as ${sqlIdent(c.name)}`,
      ).join(', ')} from _new_events`,
    );
    specs.push({
      layer: 'bronze',
      table: 'usage_events',
      source: '_bronze_out',
      partitionBy: 'usage_date',
      append: { remove: '_bronze_removed', removeKeys: ['event_id', 'source_file', 'usage_date'] },
    });
    metrics.nullRates = await nullRates(conn, '_new_events', [
      'event_id',
      'event_ts',
      'org_id',
      'service',
      'cost_usd_increment',
    ]);
  }
  if (Number(counts.malformed) > 0) {
    // Malformed lines are keyed by (file, line) (lake/sql/bronze/usage_events_malformed.sql).
    await conn.run(`create or replace temp table _malformed_out as ${loadSql('bronze/usage_events_malformed.sql')}`);
    specs.push({
      layer: 'quarantine',
      table: 'usage_events',
      source: '_malformed_out',
      partitionBy: 'rule',
      owns: (p) => p === 'malformed_json',
    });
  }
  // Bronze rows, malformed lines and the files' manifest records commit in one transaction: a crash leaves the
  // files pending with nothing of them written, so a retry ingests them exactly once.
  const recorded = entries(filePartitions);
  const results = await publishTables(ctx, specs, {
    step: 'bronze.usage_events',
    extra: [(c) => writeLandedFiles(c, ctx.lake, 'usage_events', recorded)],
  });
  if (affected.size > 0) {
    const pub = results[0];
    metrics.rowsOut = pub.rows;
    metrics.partitionsWritten += pub.written.length;
    metrics.partitionsUnchanged = pub.unchanged;
    // SPEC §9a figures: the days the batch's new rows fall in are the ones bronze recomputed.
    metrics.partitionsConsidered += batchDays.size;
    metrics.partitionsRecomputed += affected.size;
    metrics.partitionsChanged += pub.written.length + pub.deleted.length;
    // The usage days this batch rewrote (a per-file run tags itself with them: CpaLogicalDate).
    metrics.changedPartitions = [
      ...new Set([...(metrics.changedPartitions ?? []), ...pub.written, ...pub.deleted]),
    ].sort();
  } else {
    const v = await partitionVersions(conn, ctx.lake, 'bronze', 'usage_events');
    metrics.rowsOut = [...v.values()].reduce((a, x) => a + x.rows, 0);
  }
  await conn.run(
    `drop view if exists _bronze_out; drop table if exists _event_lines; drop table if exists _parsed; drop table if exists _new_events;
     drop table if exists _displaced; drop table if exists _bronze_removed; drop table if exists bronze_lookup`,
  );
  return recorded;
}
