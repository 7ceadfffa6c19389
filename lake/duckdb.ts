import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import type { DuckDBConnection, DuckDBValue } from '@duckdb/node-api';
import type { Config } from '../config/env';
import { REPO_ROOT } from '../config/paths';
import { extensionSettings, loadExtension } from './extensions';
import { isS3 } from './storage';

export type Row = Record<string, unknown>;
export type Params = Record<string, DuckDBValue>;

/**
 * One DuckDB instance per process with explicit settings: threads and memory limit from config, a temp directory
 * for spilling, insertion order not preserved (big Parquet I/O; every model that needs an order says ORDER BY).
 * DuckDB is stateless compute here: Parquet in the lake is the truth, the instance is in memory.
 * S3 access (httpfs + a secret from config) is set up here when the configured lake or landing is on S3, and
 * lazily by {@link ensureS3} when a run targets an S3 lake the worker was not started with.
 */
export async function createDuckDb(config: Config, opts: { needS3?: boolean } = {}): Promise<DuckDBInstance> {
  const tempDir = spillDir(config.duckdb.tempDir ?? path.join(os.tmpdir(), 'cpa-duckdb-spill'));
  const settings: Record<string, string> = {
    threads: String(config.duckdb.threads),
    memory_limit: config.duckdb.memoryLimit,
    temp_directory: tempDir,
    preserve_insertion_order: 'false',
  };
  Object.assign(settings, await extensionSettings(config));
  const adaptive = config.duckdb.threads > 1 && config.duckdb.heavyRows > 0;
  if (adaptive) settings.threads = '1';
  const instance = await DuckDBInstance.create(':memory:', settings);
  if (adaptive)
    governors.set(instance, { max: config.duckdb.threads, raised: false, busy: 0, turn: Promise.resolve() });
  const needS3 = opts.needS3 ?? (isS3(config.lakeRoot) || isS3(config.landingRoot));
  if (needS3) await ensureS3(instance, config);
  return instance;
}

/**
 * DuckDB runs one thread while no heavy step runs, and all of them (`threads`) from the first heavy step on, until
 * the process has no work on the instance at all. Why one: measured on the reference data (43 k events, 2 cores) a
 * whole run took 7.4 s of workflow time with one thread and 9.9 s with two — its ~1,000 small statements (catalog
 * reads, commits, tables of a few thousand rows) pay for the second thread's scheduling and gain nothing — while at
 * S=10 two threads are faster (18.9 s against 22.1 s).
 * Why back to one only when idle: lowering DuckDB's thread count while other connections run queries deadlocked
 * (DuckDB 1.5.5, seen in an S=10 bench, the process at 0 % CPU for 11 minutes; gdb: a query's cleanup holds the
 * scheduler's lock and joins a worker thread to remove it; that worker waits for a Parquet scan's lock; the scan's
 * DuckLake file listing, on another thread, runs a catalog query whose own cleanup waits for the scheduler's lock).
 * Raising the count only starts threads and waits for none. So the count is lowered only when no unit of work
 * ({@link withWork}: every activity of the worker) runs, and new work waits the few milliseconds that takes.
 * `threads` is a setting of the whole instance.
 */
interface Governor {
  max: number;
  raised: boolean;
  /** Units of work running on the instance ({@link withWork}). */
  busy: number;
  /** A change of the thread count in progress: raising (inside work) or lowering (while no work runs). */
  turn: Promise<void>;
  lowering?: Promise<void>;
}
const governors = new WeakMap<DuckDBInstance, Governor>();

/** Gives the instance all of its threads when `rows` reaches CPA_DUCKDB_HEAVY_ROWS (kept until the instance is idle). */
export async function acquireThreads(instance: DuckDBInstance, config: Config, rows: number): Promise<void> {
  const g = governors.get(instance);
  if (g && !g.raised && rows >= config.duckdb.heavyRows) {
    g.turn = g.turn
      .catch(() => undefined)
      .then(async () => {
        if (g.raised) return;
        await setThreads(instance, g.max);
        g.raised = true;
      });
    await g.turn;
  }
}

/**
 * Runs one unit of work that uses the instance (the worker wraps every activity in it). When the last unit ends with
 * the count raised, it is lowered back to one before any new unit starts: no query runs during the change.
 */
export async function withWork<T>(instance: DuckDBInstance, fn: () => Promise<T>): Promise<T> {
  const g = governors.get(instance);
  if (!g) return fn();
  while (g.lowering) await g.lowering;
  g.busy++;
  try {
    return await fn();
  } finally {
    g.busy--;
    if (g.busy === 0 && g.raised) {
      // Set synchronously with the check: a unit starting from now on waits for it.
      g.lowering = g.turn
        .catch(() => undefined)
        .then(async () => {
          await setThreads(instance, 1);
          g.raised = false;
        })
        .catch(() => undefined)
        .finally(() => {
          g.lowering = undefined;
        });
    }
  }
}

async function setThreads(instance: DuckDBInstance, n: number): Promise<void> {
  const conn = await instance.connect();
  try {
    // The new count takes effect in the cleanup of a query (the SET's own); the select makes sure it has.
    await conn.run(`set threads = ${n}`);
    await conn.run(`select 1`);
  } finally {
    conn.closeSync();
  }
}

/** The instance's current DuckDB thread count (what {@link acquireThreads} set). */
export async function currentThreads(instance: DuckDBInstance): Promise<number> {
  const conn = await instance.connect();
  try {
    const [r] = await queryRows(conn, `select current_setting('threads')::integer as n`);
    return Number(r.n);
  } finally {
    conn.closeSync();
  }
}

/**
 * This process's spill directory, `<base>/<pid>`: processes never share spill files, and the directories of
 * processes that no longer run (killed before DuckDB could delete its temp files) are removed here, so a crash
 * leaves no spill debris beyond the next start.
 */
const spillDirs = new Set<string>();

export function spillDir(base: string): string {
  fs.mkdirSync(base, { recursive: true });
  for (const name of fs.readdirSync(base)) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid || processAlive(Number(name))) continue;
    fs.rmSync(path.join(base, name), { recursive: true, force: true });
  }
  const dir = path.join(base, String(process.pid));
  fs.mkdirSync(dir, { recursive: true });
  if (!spillDirs.has(dir)) {
    spillDirs.add(dir);
    process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  }
  return dir;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Thrown when DuckDB cannot get the httpfs extension; the message says how to provide it. */
export class HttpfsUnavailableError extends Error {
  override name = 'HttpfsUnavailableError';
}

const s3Ready = new WeakMap<DuckDBInstance, Promise<void>>();

/** Loads httpfs and creates the S3 secret from config, once per instance (idempotent, safe to call per activity). */
export function ensureS3(instance: DuckDBInstance, config: Config): Promise<void> {
  let ready = s3Ready.get(instance);
  if (!ready) {
    ready = configureS3(instance, config);
    // A failed attempt is not cached: the next activity (a Temporal retry) tries again.
    ready.catch(() => s3Ready.delete(instance));
    s3Ready.set(instance, ready);
  }
  return ready;
}

async function configureS3(instance: DuckDBInstance, config: Config): Promise<void> {
  const conn = await instance.connect();
  try {
    await loadExtension(conn, config, 'httpfs', (m) => new HttpfsUnavailableError(m));
    const { endpoint, region, accessKeyId, secretAccessKey, urlStyle } = config.s3;
    const parts = [`TYPE s3`, `REGION ${sqlString(region)}`, `URL_STYLE ${sqlString(urlStyle)}`];
    if (accessKeyId && secretAccessKey) {
      parts.push(`KEY_ID ${sqlString(accessKeyId)}`, `SECRET ${sqlString(secretAccessKey)}`);
    }
    if (endpoint) {
      const u = new URL(endpoint);
      parts.push(`ENDPOINT ${sqlString(u.host)}`, `USE_SSL ${u.protocol === 'https:' ? 'true' : 'false'}`);
    }
    await conn.run(`CREATE OR REPLACE SECRET cpa_s3 (${parts.join(', ')})`);
    // DuckDB sizes each multipart-upload buffer as max file size / 10,000 parts: 80 MB at the 800 GB default, held
    // per open file, so a partitioned COPY of 60 days ran out of memory at 4 GB. 50 GB (the minimum) gives 5 MB parts
    // and still allows 50 GB per partition file.
    await conn.run(`SET GLOBAL s3_uploader_max_filesize = '50GB'`);
  } finally {
    conn.closeSync();
  }
}

/** Runs a query with named parameters ($name) and returns JSON-safe row objects. */
export async function queryRows(conn: DuckDBConnection, sql: string, params?: Params): Promise<Row[]> {
  const reader = await conn.runAndReadAll(sql, params);
  return reader.getRowObjectsJson() as Row[];
}

/**
 * Quotes a string literal for the few places DuckDB cannot bind parameters (COPY targets, CREATE SECRET).
 * Inputs are lake paths built by the program from validated keys; control characters are refused outright.
 */
export function sqlString(s: string): string {
  if (/[\u0000-\u001f]/.test(s)) throw new Error(`refusing a control character in a SQL literal: ${JSON.stringify(s)}`);
  return `'${s.replace(/'/g, "''")}'`;
}

/** An identifier from the program's own allow-list (table and column names), double-quoted. */
export function sqlIdent(s: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(s)) throw new Error(`not an allowed identifier: ${s}`);
  return `"${s}"`;
}

/**
 * Sets the variables a model file reads with getvariable(), each value bound as a parameter (never interpolated).
 */
export async function setVariables(conn: DuckDBConnection, vars: Params): Promise<void> {
  for (const [name, value] of Object.entries(vars))
    await conn.run(`set variable ${sqlIdent(name)} = $value`, { value });
}

// Read from the sources, also when the code runs compiled from dist/ (the build copies no SQL).
const sqlDir = path.join(REPO_ROOT, 'lake', 'sql');
const sqlCache = new Map<string, string>();

/** Loads a model file from lake/sql (e.g. 'silver/usage_events.sql'). */
export function loadSql(rel: string): string {
  let sql = sqlCache.get(rel);
  if (sql === undefined) {
    sql = fs.readFileSync(path.join(sqlDir, rel), 'utf8');
    sqlCache.set(rel, sql);
  }
  return sql;
}
