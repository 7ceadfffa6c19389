import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import type { ColumnDef } from '../config/contracts';
import type { Config } from '../config/env';
import { joinUri } from '../config/env';
import { queryRows, sqlIdent, sqlString } from './duckdb';
import { crashPoint } from './crash-points';
import { extensionSettings, loadExtension } from './extensions';
import { checkFence } from './fence';
import { prepareLocalLake } from './preflight';
import { isS3, storageFor } from './storage';
import { firstLine } from './errors';

/**
 * The lake is one DuckLake (SPEC §2): Parquet data files under the lake root and a catalog that is
 * `<lake>/_meta/catalog.sqlite` for a local lake, or a PostgreSQL database (`CPA_LAKE_CATALOG`) for an S3 lake, with
 * one metadata schema per lake so several lakes can share a database. Schemas `bronze`, `silver`, `gold`,
 * `quarantine`, `speed` and `meta`; table names are the registry's. Any DuckDB with the ducklake extension can attach
 * it read-only (README, "Reading the lake").
 *
 * A DuckDB instance attaches each lake once, under an alias derived from the lake root; every connection of the
 * instance then reads and writes it through that alias. Writes go through {@link publishTables}: one DuckLake
 * transaction per publish, so a reader or a crash sees the previous snapshot or the next, never half of one.
 */

export const LAKE_SCHEMAS = ['bronze', 'silver', 'gold', 'quarantine', 'speed', 'meta'] as const;

/** The partition value recorded for rows whose partition column is NULL (the name Hive uses). */
export const NULL_PARTITION = '__HIVE_DEFAULT_PARTITION__';

export type { ColumnDef };

/** A table a reader needs has never been published (run the pipeline first). */
export class NotBuiltYet extends Error {
  override name = 'NotBuiltYet';
}

/** Thrown when the lake cannot be attached for a reason retrying does not fix; the message says what to do. */
export class LakeUnavailableError extends Error {
  override name = 'LakeUnavailableError';
}

const unavailable = (message: string): Error => new LakeUnavailableError(message);

/** A lake as an instance sees it: the catalog alias to qualify table names with. */
export interface AttachedLake {
  root: string;
  alias: string;
}

/** Everything a transform needs to read and publish: a connection and the attached lake. */
export interface LakeContext {
  conn: DuckDBConnection;
  lake: AttachedLake;
  lakeRoot: string;
  runId: string;
}

/** How often each lake root was (re-)attached in this process: a re-attach gets a new alias. */
const generations = new Map<string, number>();

const attachments = new WeakMap<DuckDBInstance, Map<string, Promise<AttachedLake & { inode?: number }>>>();

/** `lake_<10 hex>`: a stable alias (and PostgreSQL metadata schema) per lake root. */
export function lakeAlias(lakeRoot: string): string {
  return `lake_${crypto.createHash('sha256').update(lakeRoot).digest('hex').slice(0, 10)}`;
}

export function catalogPath(lakeRoot: string): string {
  return path.join(lakeRoot, '_meta', 'catalog.sqlite');
}

/**
 * The ATTACH target and options of a lake's DuckLake. Local: SQLite catalog under `_meta/`. S3: the PostgreSQL
 * catalog of `CPA_LAKE_CATALOG` (a libpq connection string or postgres:// URI), metadata schema = the lake alias.
 */
export function attachSpec(config: Config, lakeRoot: string): { target: string; options: string[] } {
  const dataPath = `${lakeRoot.replace(/\/+$/, '')}/`;
  if (isS3(lakeRoot)) {
    const pg = config.lakeCatalog;
    if (!pg) {
      throw new LakeUnavailableError(
        `lake ${lakeRoot} is on S3 and needs a PostgreSQL catalog: set CPA_LAKE_CATALOG (e.g. ` +
          `"host=127.0.0.1 port=5432 dbname=cpa_lake user=cpa"; \`npm run stack:up\` writes it to .cpa-stack.env)`,
      );
    }
    const conninfo = pg.replace(/^postgres(ql)?:(?!\/\/)/, '');
    return {
      target: `ducklake:postgres:${conninfo}`,
      options: [`DATA_PATH ${sqlString(dataPath)}`, `METADATA_SCHEMA ${sqlString(lakeAlias(lakeRoot))}`],
    };
  }
  // WAL lets readers run beside a committing writer; the busy timeout makes a second writer wait for the lock.
  return {
    target: `ducklake:sqlite:${catalogPath(lakeRoot)}`,
    options: [`DATA_PATH ${sqlString(dataPath)}`, `META_JOURNAL_MODE 'WAL'`, `META_BUSY_TIMEOUT 10000`],
  };
}

/**
 * Attaches the lake's DuckLake to the instance (once; idempotent and safe to call per activity) and creates its
 * schemas. A local lake whose catalog file was removed or replaced since (a test or `cpa bench` wiping the lake) is
 * re-attached. A lake in the pre-DuckLake layout (JSON manifests under `_meta/tables`) is refused with a message:
 * lakes are rebuilt from their landing, there is no migration.
 */
export async function attachLake(instance: DuckDBInstance, config: Config, lakeRoot: string): Promise<AttachedLake> {
  let perInstance = attachments.get(instance);
  if (!perInstance) {
    perInstance = new Map();
    attachments.set(instance, perInstance);
  }
  const cached = perInstance.get(lakeRoot);
  if (cached) {
    const a = await cached.catch(() => undefined);
    if (a && (isS3(lakeRoot) || inodeOf(catalogPath(lakeRoot)) === a.inode)) return a;
    perInstance.delete(lakeRoot);
  }
  // A re-attach (the catalog file was replaced) gets a fresh alias: the old one is never detached under a
  // connection that may still be reading through it.
  const generation = (generations.get(lakeRoot) ?? -1) + 1;
  generations.set(lakeRoot, generation);
  const p = doAttach(instance, config, lakeRoot, generation);
  perInstance.set(lakeRoot, p);
  p.catch(() => perInstance.delete(lakeRoot));
  const a = await p;
  return { root: a.root, alias: a.alias };
}

function inodeOf(file: string): number | undefined {
  try {
    return fs.statSync(file).ino;
  } catch {
    return undefined;
  }
}

async function doAttach(
  instance: DuckDBInstance,
  config: Config,
  lakeRoot: string,
  generation: number,
): Promise<AttachedLake & { inode?: number }> {
  const alias = generation === 0 ? lakeAlias(lakeRoot) : `${lakeAlias(lakeRoot)}_${generation}`;
  const spec = attachSpec(config, lakeRoot);
  // A file, an uncreatable or unwritable path: LakeUnusableError naming it (never a recursive mkdir, which spins on /proc).
  if (!isS3(lakeRoot)) await prepareLocalLake(lakeRoot);
  if (!(await hasCatalog(config, lakeRoot)) && (await hasLegacyManifests(config, lakeRoot))) {
    throw new LakeUnavailableError(
      `lake ${lakeRoot} is in the pre-DuckLake layout (_meta/tables/*.json); lakes are rebuilt from their landing: ` +
        `remove it (or point --lake at a new location) and run again`,
    );
  }
  const conn = await instance.connect();
  try {
    await loadExtension(conn, config, 'ducklake', unavailable);
    await loadExtension(conn, config, isS3(lakeRoot) ? 'postgres_scanner' : 'sqlite_scanner', unavailable);
    // Two processes initialising a new catalog at once: the loser's CREATE of DuckLake's own tables finds the
    // SQLite database locked (seen in the two-writer test); the next attempt finds it initialised.
    const attach = async (as: string, options: string[]): Promise<void> => {
      for (let attempt = 1; ; attempt++) {
        try {
          await conn.run(`attach ${sqlString(spec.target)} as ${sqlIdent(as)} (${options.join(', ')})`);
          return;
        } catch (e) {
          if (attempt >= 10 || !/database is locked|SQLITE_BUSY/i.test((e as Error).message)) throw e;
          await new Promise((r) => setTimeout(r, 100 * attempt * (0.5 + Math.random())));
        }
      }
    };
    // WAL is a property of the SQLite file: set once, when the catalog is created. An attachment with
    // META_JOURNAL_MODE runs `PRAGMA journal_mode=WAL` on every catalog connection it opens, which takes a lock:
    // beside a committing writer it waited in SQLite's busy handler, whose sleeps are whole seconds in this build
    // (three 1.01 s stalls in a 7 s reference run). So a new catalog is made with it, and every attachment after
    // goes without.
    const journal = (o: string): boolean => o.startsWith('META_JOURNAL_MODE');
    if (spec.options.some(journal) && !fs.existsSync(catalogPath(lakeRoot))) {
      await attach(`${alias}_init`, spec.options);
      await conn.run(`detach ${sqlIdent(`${alias}_init`)}`);
    }
    await attach(
      alias,
      spec.options.filter((o) => !journal(o)),
    );
    // Concurrent writers settle commit races inside DuckLake; give a busy catalog more patience than the default.
    await conn.run(`set ducklake_max_retry_count = 50`);
    // Two processes creating a new lake at once race on these creates; the loser's retry finds them made. Within
    // a process they take their turn with the lake's writers (lakeWrite), as every other catalog write does.
    await withWriteTurn(lakeRoot, async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          await initCatalog(conn, alias);
          break;
        } catch (e) {
          if (attempt >= 10 || !/Failed to commit|conflict|locked/i.test((e as Error).message)) throw e;
          await new Promise((r) => setTimeout(r, 100 * attempt * (0.5 + Math.random())));
        }
      }
    });
  } catch (e) {
    if (e instanceof LakeUnavailableError) throw e;
    const msg = firstLine(e);
    throw new LakeUnavailableError(`cannot attach the lake catalog of ${lakeRoot}: ${redact(msg, config)}`);
  } finally {
    conn.closeSync();
  }
  return { root: lakeRoot, alias, inode: isS3(lakeRoot) ? undefined : inodeOf(catalogPath(lakeRoot)) };
}

/** How often the catalog keeper (below) moves to a fresh SQLite read transaction. */
const KEEPER_RENEW_MS = 20_000;

interface Keeper {
  users: number;
  turn: Promise<void>;
  stop?: () => Promise<void>;
}
const keepers = new WeakMap<DuckDBInstance, Map<string, Keeper>>();

/**
 * Runs `fn` (a pipeline step on a local lake) with one SQLite connection to the lake's catalog held open by this
 * process. DuckDB's SQLite extension opens a new SQLite connection for every transaction and closes it at the end;
 * when the last open connection to a WAL database closes, SQLite checkpoints it and deletes the -wal and -shm files
 * under an exclusive lock, and a connection opening meanwhile waits in the busy handler, which in this build sleeps
 * whole seconds (measured: 1–5 statements stalled 1.01 s each in every 7 s reference run; the -wal file came and went
 * with every transaction). The keeper is a transaction on a plain `sqlite` attachment of the catalog file that read
 * one row: its connection stays open, so no step's connection is the last. It holds a read snapshot, which keeps
 * checkpoints from resetting the WAL past it, so a new keeper transaction replaces it every 20 s (opened before the
 * old one ends). It lives while steps run: when the last one ends, it ends too, before anything can remove or
 * replace the lake (a wiped lake whose old keeper closed later would have SQLite delete the new catalog's -wal by
 * name). A keeper that cannot open changes nothing: the step runs without it.
 */
export async function holdCatalog<T>(
  instance: DuckDBInstance,
  config: Config,
  lakeRoot: string,
  fn: () => Promise<T>,
): Promise<T> {
  // Never the first to touch a lake: a step decides whether a lake may be created (not inside the landing, …), so
  // a catalog that does not exist yet gets no keeper (the run's first steps on a new lake go without).
  if (isS3(lakeRoot) || !fs.existsSync(catalogPath(lakeRoot))) return fn();
  let perInstance = keepers.get(instance);
  if (!perInstance) {
    perInstance = new Map();
    keepers.set(instance, perInstance);
  }
  let k = perInstance.get(lakeRoot);
  if (!k) {
    k = { users: 0, turn: Promise.resolve() };
    perInstance.set(lakeRoot, k);
  }
  const keeper = k;
  keeper.users++;
  keeper.turn = keeper.turn.then(async () => {
    if (keeper.users > 0 && !keeper.stop) {
      keeper.stop = await openKeeper(instance, config, lakeRoot).catch(() => undefined);
    }
  });
  await keeper.turn;
  try {
    return await fn();
  } finally {
    keeper.users--;
    keeper.turn = keeper.turn.then(async () => {
      if (keeper.users === 0 && keeper.stop) {
        const stop = keeper.stop;
        keeper.stop = undefined;
        await stop().catch(() => undefined);
      }
    });
    await keeper.turn;
  }
}

/** Opens a keeper transaction on the catalog of `lakeRoot` (renewed every 20 s); returns what ends it. */
async function openKeeper(instance: DuckDBInstance, config: Config, lakeRoot: string): Promise<() => Promise<void>> {
  const lake = await attachLake(instance, config, lakeRoot);
  const file = catalogPath(lakeRoot);
  const inode = inodeOf(file);
  const keep = sqlIdent(`${lake.alias}_keep`);
  const setup = await instance.connect();
  try {
    await setup.run(`attach if not exists ${sqlString(file)} as ${keep} (type sqlite)`);
  } finally {
    setup.closeSync();
  }
  const begin = async (): Promise<DuckDBConnection> => {
    const c = await instance.connect();
    try {
      await c.run('begin transaction');
      await c.run(`select 1 from ${keep}.ducklake_metadata limit 1`);
      return c;
    } catch (e) {
      c.closeSync();
      throw e;
    }
  };
  const end = async (c: DuckDBConnection): Promise<void> => {
    // A catalog file replaced under the keeper: its connection is left open (see holdCatalog), never closed last.
    if (inodeOf(file) !== inode) return;
    await c.run('commit').catch(() => undefined);
    c.closeSync();
  };
  let current = await begin();
  let renewing = Promise.resolve();
  const timer = setInterval(() => {
    renewing = renewing.then(async () => {
      if (inodeOf(file) !== inode) return;
      const next = await begin().catch(() => undefined);
      if (!next) return;
      const old = current;
      current = next;
      await end(old);
    });
  }, KEEPER_RENEW_MS);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await renewing.catch(() => undefined);
    await end(current);
  };
}

function redact(msg: string, config: Config): string {
  const pw = /password=(\S+)/.exec(config.lakeCatalog ?? '')?.[1];
  return pw ? msg.split(pw).join('***') : msg;
}

async function hasCatalog(config: Config, lakeRoot: string): Promise<boolean> {
  return isS3(lakeRoot) ? true : fs.existsSync(catalogPath(lakeRoot));
}

async function hasLegacyManifests(config: Config, lakeRoot: string): Promise<boolean> {
  if (isS3(lakeRoot)) return false;
  const storage = storageFor(lakeRoot, config);
  return (await storage.list(joinUri(lakeRoot, '_meta', 'tables'))).some((o) => o.key.endsWith('.json'));
}

/**
 * The `meta` schema: what used to be JSON under `_meta/`, now tables any DuckDB can query. All append-only (the
 * latest row per key wins), so concurrent writers never delete from the same file and never conflict.
 * - `partitions`: one row per published partition version (content hash, rows) — the skip-unchanged check.
 * - `landed_files`: landing files ingested (sha256, listing version, the bronze partitions of its rows).
 * - `runs`: one row per run record written (the latest per run id is the run's state), with the snapshot range.
 * - `step_metrics`: each step's metrics per run (JSON, also in the Temporal history).
 * - `state`: small JSON documents by key (the speed layer's watermark).
 * - `lineage`: per derived partition, the code version of its model and the versions of the input partitions it was
 *   computed from (lake/incremental.ts), written in the transaction that publishes the partition.
 */
const META_TABLES: Record<string, string> = {
  partitions: `layer varchar, table_name varchar, partition varchar, rows bigint, hash varchar, deleted boolean,
    run_id varchar, written_at timestamptz`,
  landed_files: `source varchar, key varchar, sha256 varchar, size bigint, version varchar, rows bigint,
    partitions varchar[], run_id varchar, ingested_at timestamptz`,
  runs: `run_id varchar, workflow_id varchar, kind varchar, logical_date varchar, status varchar,
    started_at timestamptz, finished_at timestamptz, snapshot_first bigint, snapshot_last bigint, summary varchar,
    recorded_at timestamptz`,
  step_metrics: `run_id varchar, step varchar, layer varchar, table_name varchar, metrics varchar,
    recorded_at timestamptz`,
  state: `key varchar, value varchar, updated_at timestamptz`,
  lineage: `layer varchar, table_name varchar, partition varchar, code_version varchar, inputs varchar,
    data_hash varchar, rows bigint, run_id varchar, written_at timestamptz`,
  // Retried activity attempts, registered when they start: an older attempt still running elsewhere sees it and
  // does not commit (lake/fence.ts, activities/common.ts fencedActivity).
  attempts: `workflow_id varchar, workflow_run_id varchar, activity_id varchar, attempt integer, worker varchar,
    started_at timestamptz`,
};

/**
 * Data inlining (rows kept in the catalog database instead of Parquet files), set per schema:
 * - `meta` gets many small appends (a partition version, a file record, a step's metrics); as Parquet each would be
 *   a tiny file, and reading them back (every publish reads meta.partitions) would open hundreds. Inlined, their
 *   rows live in the catalog, read in one catalog query.
 * - `speed` keeps DuckLake's default (inserts of fewer than 10 rows inlined): a file's few windows per table.
 * - Everywhere else it is off (limit 0). With DuckLake's default, every table and every schema version of it gets an
 *   inlined-data table in the catalog database when it is created (85 SQLite tables for a 37-table lake), and every
 *   catalog round trip pays for that schema: measured on 40 partitioned tables, a `count(*)` per table took 0.69 s
 *   with the default and 0.31 s with inlining off (SQLite objects 113 → 33), DDL and inserts about 10 % less.
 *   Bronze, silver, gold and quarantine writes are whole partitions anyway.
 */
const INLINED_SCHEMAS: Record<string, number> = { meta: 1_000_000, speed: 10 };

/**
 * Makes what the lake's catalog is missing of its schemas, inlining options and `meta` tables, in at most two
 * transactions (schemas and the global option; then the per-schema options, which DuckLake refuses on a schema
 * created in the same transaction, and the tables). Each commit is a new schema version that every connection's
 * next statement reloads the catalog for: created one statement at a time, a new lake paid 16 commits here (about
 * 1 s of a reference run). An existing lake costs three reads and no commit.
 */
async function initCatalog(conn: DuckDBConnection, alias: string): Promise<void> {
  const db = { db: alias };
  const schemas = new Set(
    (await queryRows(conn, `select schema_name from duckdb_schemas() where database_name = $db`, db)).map((r) =>
      String(r.schema_name),
    ),
  );
  const tables = new Set(
    [...(await lakeTableNames(conn, { alias }))].filter((t) => t.startsWith('meta.')).map((t) => t.slice(5)),
  );
  const set = await queryRows(
    conn,
    `select scope, scope_entry, value from ${sqlIdent(alias)}.options() where option_name = 'data_inlining_row_limit'`,
  );
  const has = (scope: string, entry: string | null, value: number): boolean =>
    set.some((r) => r.scope === scope && (r.scope_entry ?? null) === entry && Number(r.value) === value);
  const first: string[] = LAKE_SCHEMAS.filter((x) => !schemas.has(x)).map(
    (x) => `create schema if not exists ${sqlIdent(alias)}.${sqlIdent(x)}`,
  );
  if (!has('GLOBAL', null, 0)) first.push(`call ${sqlIdent(alias)}.set_option('data_inlining_row_limit', 0)`);
  const second: string[] = Object.entries(INLINED_SCHEMAS)
    .filter(([schema, rows]) => !has('SCHEMA', schema, rows))
    .map(
      ([schema, rows]) =>
        `call ${sqlIdent(alias)}.set_option('data_inlining_row_limit', ${rows}, schema => ${sqlString(schema)})`,
    );
  for (const [t, cols] of Object.entries(META_TABLES)) {
    if (!tables.has(t)) second.push(`create table if not exists ${sqlIdent(alias)}.meta.${sqlIdent(t)} (${cols})`);
  }
  for (const statements of [first, second]) {
    if (statements.length === 0) continue;
    await conn.run('begin transaction');
    try {
      for (const sql of statements) await conn.run(sql);
      await conn.run('commit');
    } catch (e) {
      await conn.run('rollback').catch(() => undefined);
      throw e;
    }
  }
}

/** `alias.schema.table`, quoted. */
export function qualified(lake: AttachedLake, layer: string, table: string): string {
  return `${sqlIdent(lake.alias)}.${sqlIdent(layer)}.${sqlIdent(table)}`;
}

/**
 * The table's columns in the lake, or undefined when it does not exist. `describe` binds that one table;
 * `duckdb_columns()` walks every table of every attached catalog (measured 2× slower on a 37-table lake, more under
 * load), and this runs once per published table and per lineage event.
 */
export async function lakeColumns(
  conn: DuckDBConnection,
  lake: AttachedLake,
  layer: string,
  table: string,
): Promise<ColumnDef[] | undefined> {
  let rows;
  try {
    rows = await queryRows(conn, `describe ${qualified(lake, layer, table)}`);
  } catch (e) {
    if (isMissingTable(e)) return undefined;
    throw e;
  }
  return rows.map((r) => ({ name: String(r.column_name), type: String(r.column_type) }));
}

/** DuckDB's error for a table that does not exist (binding a name in an existing schema). */
function isMissingTable(e: unknown): boolean {
  const msg = (e as { message?: unknown } | null)?.message;
  return typeof msg === 'string' && /^Catalog Error: Table with name .* does not exist/.test(msg);
}

/**
 * Creates (or replaces) a temp view over a lake table, restricted by `where` when given. When the table has never
 * been written, the view is empty with `fallbackColumns`. Returns whether the table exists. One catalog statement:
 * every statement on a DuckLake costs a catalog round trip (10–30 ms on SQLite), so existence is learnt from the
 * view's own binding, not from a separate lookup.
 */
export async function registerView(
  ctx: Pick<LakeContext, 'conn' | 'lake'>,
  layer: string,
  table: string,
  view: string,
  fallbackColumns?: ColumnDef[],
  where?: string,
  select = '*',
): Promise<boolean> {
  try {
    await ctx.conn.run(
      `create or replace temp view ${sqlIdent(view)} as select ${select} from ${qualified(ctx.lake, layer, table)}` +
        (where ? ` where ${where}` : ''),
    );
    return true;
  } catch (e) {
    if (!isMissingTable(e)) throw e;
  }
  if (!fallbackColumns) throw new NotBuiltYet(`table ${layer}.${table} has not been built yet`);
  await emptyView(ctx.conn, view, fallbackColumns);
  return false;
}

/** `select … where false` with the given typed columns: no rows, the shape of a table that is not there. */
export function emptySelect(columns: ColumnDef[]): string {
  return `select ${columns.map((c) => `cast(null as ${c.type}) as ${sqlIdent(c.name)}`).join(', ')} where false`;
}

/** A temp view with no rows and the given typed columns (an input that was never written, or is not needed). */
export async function emptyView(conn: DuckDBConnection, view: string, columns: ColumnDef[]): Promise<void> {
  await conn.run(`create or replace temp view ${sqlIdent(view)} as ${emptySelect(columns)}`);
}

/** The current partition versions of a table from `meta.partitions` (deleted partitions left out). */
export async function partitionVersions(
  conn: DuckDBConnection,
  lake: AttachedLake,
  layer: string,
  table: string,
): Promise<Map<string, { rows: number; hash: string }>> {
  const rows = await queryRows(
    conn,
    `select partition, rows, hash, deleted from ${qualified(lake, 'meta', 'partitions')}
     where layer = $layer and table_name = $table
     qualify row_number() over (partition by partition order by written_at desc, deleted desc) = 1`,
    { layer, table },
  );
  const out = new Map<string, { rows: number; hash: string }>();
  for (const r of rows) if (!r.deleted) out.set(String(r.partition), { rows: Number(r.rows), hash: String(r.hash) });
  return out;
}

export interface PublishSpec {
  layer: string;
  table: string;
  /** A temp table or view holding the table's rows (all of them, or those of the partitions this writer owns). */
  source: string;
  partitionBy?: string;
  /**
   * The table's current partition versions as the caller already read them (a model build's plan), saving a catalog
   * read; absent, or on a retried commit, they are read from `meta.partitions`.
   */
  known?: Map<string, { rows: number; hash: string }>;
  /** Partitions this writer may delete when `source` no longer has them (default: all). */
  owns?: (p: string) => boolean;
  /**
   * A predicate over the table's rows: this publish replaces exactly the rows it matches (in every partition), and
   * `source` holds their new content. Used where a partition-scoped run owns rows across partitions (the
   * quarantine of the days it recomputed). Without it, a publish replaces whole partitions.
   */
  scope?: string;
  /**
   * The source's per-partition (rows, content hash), when the caller computed them already with
   * {@link sourceStats}: hashing every row is a full pass over the source (4 M rows for silver events at S=100).
   */
  stats?: Map<string, { rows: number; hash: string }>;
  /**
   * Append instead of replace: `source` holds only the rows added to their partitions, and `remove` (optional) a
   * relation of whole existing rows to delete, matched on `removeKeys` (null-safe). Nothing else of the partitions is
   * rewritten; their new versions are the old ones plus the added rows' and minus the removed rows' (row counts and
   * the content hash, a sum of row hashes, both add up). A table re-created for new columns keeps its rows (carried)
   * and has its versions read back. Bronze events use it: a batch adds rows to days that other batches wrote.
   */
  append?: { remove?: string; removeKeys?: string[] };
}

export interface PublishResult {
  rows: number;
  partitions: number;
  written: string[];
  deleted: string[];
  unchanged: number;
}

interface Plan {
  spec: PublishSpec;
  target: string;
  columns: ColumnDef[];
  partExpr: string;
  stats: Map<string, { rows: number; hash: string }>;
  changed: string[];
  deleted: string[];
  recreate: boolean;
  /** A re-create replaces a table that exists (with other columns); else the table is missing and only created. */
  replaces: boolean;
  carry?: string;
  /** Partitions the table holds now (by their versions): the only ones a rewrite has rows to delete from. */
  present?: Set<string>;
  /** An append's new versions of the partitions it touches (absent for a re-created table: read back). */
  appended?: Map<string, { rows: number; hash: string }>;
  /** An append has existing rows to delete (its `remove` relation is not empty). */
  removes?: boolean;
  result: PublishResult;
}

/** The partition expression a publish groups a table's rows by (`''` for an unpartitioned table). */
export function publishPartitionExpr(partitionBy?: string): string {
  return partitionBy ? `coalesce(cast(${sqlIdent(partitionBy)} as varchar), '${NULL_PARTITION}')` : `''`;
}

/** Per-partition (rows, content hash) of a publish source, as {@link publishTables} computes them (`spec.stats`). */
export function sourceStats(
  conn: DuckDBConnection,
  source: string,
  partitionBy?: string,
): Promise<Map<string, { rows: number; hash: string }>> {
  return partitionStats(conn, sqlIdent(source), publishPartitionExpr(partitionBy));
}

/** Per-partition (rows, hash) of a relation; `where` restricts the rows. */
async function partitionStats(
  conn: DuckDBConnection,
  relation: string,
  partExpr: string,
  where = 'true',
): Promise<Map<string, { rows: number; hash: string }>> {
  const stats = new Map<string, { rows: number; hash: string }>();
  for (const s of await queryRows(
    conn,
    `select ${partExpr} as p, count(*)::bigint as n, sum(hash(t))::varchar as h from ${relation} t where ${where} group by 1`,
  )) {
    stats.set(String(s.p), { rows: Number(s.n), hash: String(s.h) });
  }
  return stats;
}

/** Names the commit: `snapshots()` shows who wrote what (author cpa, message = steps, extra = run id). */
export interface CommitInfo {
  runId: string;
  step: string;
}

/**
 * Publishes the rows of each spec's `source` as `layer.table`, all in one DuckLake transaction: only partitions
 * whose content hash changed are rewritten (delete their rows, insert the new ones), partitions that disappeared are
 * deleted (restricted to those `owns` accepts, so several writers can share a table by partition), and each new
 * partition version is recorded in `meta.partitions` in the same transaction, so data and versions never disagree.
 * `extra` statements (e.g. the landed-files manifest) join the same transaction. Re-publishing identical content
 * writes nothing and creates no snapshot. A changed column list recreates the table (rows of partitions this
 * writer does not own are carried over by name).
 */
export async function publishTables(
  ctx: LakeContext,
  specs: PublishSpec[],
  opts: { step: string; extra?: Array<(conn: DuckDBConnection) => Promise<void>> } = { step: 'publish' },
): Promise<PublishResult[]> {
  const { conn, lake } = ctx;
  const plans: Plan[] = [];
  for (const [i, spec] of specs.entries()) plans.push(await plan(ctx, spec, i));
  const writes = plans.some((p) => p.changed.length > 0 || p.deleted.length > 0 || p.recreate);
  if (!writes && !(opts.extra && opts.extra.length > 0)) return plans.map((p) => p.result);

  for (const p of plans) if (p.recreate) await createTable(conn, lake, p);
  let current = plans;
  try {
    await lakeWrite(conn, lake, async (attempt) => {
      // A retried commit plans again: another writer may have changed the versions this plan was made against.
      if (attempt > 0) {
        for (const p of current) if (p.carry) await conn.run(`drop table if exists ${sqlIdent(p.carry)}`);
        current = [];
        for (const [i, spec] of specs.entries()) current.push(await plan(ctx, { ...spec, known: undefined }, i));
      }
      return async () => {
        const now = new Date().toISOString();
        for (const p of current) await apply(ctx, p, now);
        for (const f of opts.extra ?? []) await f(conn);
        await conn.run(`call ${sqlIdent(lake.alias)}.set_commit_message('cpa', $msg, extra_info => $extra)`, {
          msg: opts.step,
          extra: JSON.stringify({ run_id: ctx.runId, step: opts.step }),
        });
      };
    });
  } finally {
    for (const p of current)
      if (p.carry) await conn.run(`drop table if exists ${sqlIdent(p.carry)}`).catch(() => undefined);
  }
  crashPoint(`after-commit:${opts.step}`);
  return current.map((p) => p.result);
}

/** Commit-time errors that another writer caused and a retry of the whole transaction resolves. */
function isTransientCommitError(e: unknown): boolean {
  const msg = e instanceof Error ? e.message : String(e);
  return /database is locked|SQLITE_BUSY|could not serialize|deadlock detected|Transaction conflict/i.test(msg);
}

/**
 * After a failed write attempt: rethrows unless another writer caused it and attempts remain, else waits a jittered,
 * doubling backoff (50 ms up to 2 s) before the caller tries again. Shared by {@link lakeWrite} and {@link lakeDdl}.
 */
async function retryOrThrow(e: unknown, attempt: number, maxAttempts: number): Promise<void> {
  if (!isTransientCommitError(e) || attempt + 1 >= maxAttempts) throw e;
  await new Promise((r) => setTimeout(r, Math.min(2000, 50 * 2 ** attempt) * (0.5 + Math.random())));
}

const writeLocks = new Map<string, Promise<void>>();

/**
 * Runs one lake write transaction: `prepare(attempt)` runs outside the transaction (planning) and returns the body,
 * which runs between BEGIN and COMMIT. Writers of one process take turns per lake (a SQLite catalog has one write
 * lock, and a reader upgrading to writer while another connection writes fails without waiting); a commit that loses
 * a race with another process (the catalog was locked, or PostgreSQL reported a serialization failure) is rolled back
 * and retried from `prepare` with backoff. Conflicts DuckLake cannot settle (two writers deleting the same file)
 * surface as errors after the retries, and the activity's retry policy takes over.
 */
export async function lakeWrite(
  conn: DuckDBConnection,
  lake: AttachedLake,
  prepare: (attempt: number) => Promise<() => Promise<void>>,
  maxAttempts = 8,
): Promise<void> {
  await withWriteTurn(lake.root, async () => {
    for (let attempt = 0; ; attempt++) {
      const body = await prepare(attempt);
      try {
        await conn.run('begin transaction');
        await body();
        // A zombie attempt (its activity already handed to another worker) must not commit: see lake/fence.ts.
        await checkFence();
        await conn.run('commit');
        return;
      } catch (e) {
        await conn.run('rollback').catch(() => undefined);
        await retryOrThrow(e, attempt, maxAttempts);
      }
    }
  });
}

/** Runs `fn` when it is this caller's turn to write the lake at `root` in this process (FIFO, across instances). */
async function withWriteTurn<T>(root: string, fn: () => Promise<T>): Promise<T> {
  const prev = writeLocks.get(root) ?? Promise.resolve();
  let release!: () => void;
  const mine = new Promise<void>((r) => (release = r));
  const chained = prev.then(() => mine);
  writeLocks.set(root, chained);
  await prev;
  try {
    return await fn();
  } finally {
    release();
    if (writeLocks.get(root) === chained) writeLocks.delete(root);
  }
}

/** {@link publishTables} for one table. */
export async function publishTable(ctx: LakeContext, spec: PublishSpec, step?: string): Promise<PublishResult> {
  const [r] = await publishTables(ctx, [spec], { step: step ?? `${spec.layer}.${spec.table}` });
  return r;
}

async function plan(ctx: LakeContext, spec: PublishSpec, i: number): Promise<Plan> {
  const { conn, lake } = ctx;
  const src = sqlIdent(spec.source);
  const owns = spec.owns ?? (() => true);
  const columns = (await queryRows(conn, `describe ${src}`)).map((r) => ({
    name: String(r.column_name),
    type: String(r.column_type),
  }));
  const partExpr = publishPartitionExpr(spec.partitionBy);
  const stats = spec.stats ?? (await partitionStats(conn, src, partExpr));
  const existing = await lakeColumns(conn, lake, spec.layer, spec.table);
  const recreate =
    !existing ||
    JSON.stringify(existing.map((c) => [c.name, c.type])) !== JSON.stringify(columns.map((c) => [c.name, c.type]));
  const old = existing
    ? (spec.known ?? (await partitionVersions(conn, lake, spec.layer, spec.table)))
    : new Map<string, { rows: number; hash: string }>();

  const target = qualified(lake, spec.layer, spec.table);
  if (spec.scope) return planScoped(ctx, spec, { target, columns, partExpr, stats, old, recreate, existing, i });
  if (spec.append) return planAppend(ctx, spec, { target, columns, partExpr, stats, old, recreate, existing, i });

  const changed: string[] = [];
  for (const [p, s] of stats) {
    const prev = old.get(p);
    if (recreate || !prev || prev.hash !== s.hash || prev.rows !== s.rows) changed.push(p);
  }
  const deleted = [...old.keys()].filter((p) => !stats.has(p) && owns(p));
  const kept = [...old.keys()].filter((p) => !stats.has(p) && !owns(p));

  // Rows of partitions another writer owns survive a schema change.
  const carry =
    recreate && existing && kept.length > 0 ? await carryOut(conn, i, target, inList(partExpr, kept)) : undefined;
  const rowsAfter =
    [...stats.values()].reduce((a, s) => a + s.rows, 0) + kept.reduce((a, p) => a + (old.get(p)?.rows ?? 0), 0);
  return {
    spec,
    target,
    columns,
    partExpr,
    stats,
    changed: changed.sort(),
    deleted: deleted.sort(),
    recreate,
    replaces: existing !== undefined,
    carry,
    present: new Set(old.keys()),
    result: {
      rows: rowsAfter,
      partitions: stats.size + kept.length,
      written: [...changed].sort(),
      deleted: [...deleted].sort(),
      unchanged: stats.size + kept.length - changed.length,
    },
  };
}

/** What {@link plan} has read when it hands a publish to {@link planAppend} or {@link planScoped}. */
interface PlanInput {
  target: string;
  columns: ColumnDef[];
  partExpr: string;
  stats: Map<string, { rows: number; hash: string }>;
  old: Map<string, { rows: number; hash: string }>;
  recreate: boolean;
  existing: ColumnDef[] | undefined;
  i: number;
}

/** The fields of a {@link Plan} that come as they are from its {@link PlanInput}. */
function planned(p: PlanInput): Pick<Plan, 'target' | 'columns' | 'partExpr' | 'stats' | 'recreate' | 'replaces'> {
  const { target, columns, partExpr, stats, recreate } = p;
  return { target, columns, partExpr, stats, recreate, replaces: p.existing !== undefined };
}

/** `a + b − c` of content hashes (decimal sums of row hashes; '' = no rows). */
function addHashes(a: string | undefined, b: string | undefined, c: string | undefined): string {
  const n = (h: string | undefined): bigint => (h ? BigInt(h) : 0n);
  return (n(a) + n(b) - n(c)).toString();
}

/** The plan of an append ({@link PublishSpec.append}). */
async function planAppend(ctx: LakeContext, spec: PublishSpec, p: PlanInput): Promise<Plan> {
  const { conn } = ctx;
  const remove = spec.append?.remove;
  const removed = remove
    ? await partitionStats(conn, sqlIdent(remove), p.partExpr)
    : new Map<string, { rows: number; hash: string }>();
  const versions = new Map(p.old);
  for (const part of new Set([...p.stats.keys(), ...removed.keys()])) {
    const [o, a, r] = [p.old.get(part), p.stats.get(part), removed.get(part)];
    versions.set(part, {
      rows: (o?.rows ?? 0) + (a?.rows ?? 0) - (r?.rows ?? 0),
      hash: addHashes(o?.hash, a?.hash, r?.hash),
    });
  }
  const touched = [...new Set([...p.stats.keys(), ...removed.keys()])].sort();
  const written = touched.filter((part) => versions.get(part)!.rows > 0);
  const deleted = touched.filter((part) => versions.get(part)!.rows <= 0 && p.old.has(part));
  // Every existing row but the removed ones moves to the re-created table.
  const carry =
    p.recreate && p.existing
      ? await carryOut(
          conn,
          p.i,
          p.target,
          remove ? `not exists (select 1 from ${sqlIdent(remove)} r where ${removeMatch(spec)})` : 'true',
        )
      : undefined;
  const live = [...versions.entries()].filter(([, v]) => v.rows > 0);
  return {
    spec,
    ...planned(p),
    changed: written,
    deleted,
    carry,
    present: new Set(p.old.keys()),
    appended: p.recreate ? undefined : versions,
    removes: removed.size > 0,
    result: {
      rows: live.reduce((a, [, v]) => a + v.rows, 0),
      partitions: live.length,
      written,
      deleted,
      unchanged: live.length - written.length,
    },
  };
}

/**
 * Copies the rows of `target` (as `t`) that `where` keeps out of the table before it is re-created; the publish
 * inserts them back into the new table. Returns the temp table's name.
 */
async function carryOut(conn: DuckDBConnection, i: number, target: string, where: string): Promise<string> {
  const carry = `_publish_carry_${i}`;
  await conn.run(`create or replace temp table ${sqlIdent(carry)} as select * from ${target} t where ${where}`);
  return carry;
}

/** The null-safe match of an existing row `t` with a row `r` of an append's `remove` relation. */
function removeMatch(spec: PublishSpec): string {
  const keys = spec.append?.removeKeys ?? [];
  if (keys.length === 0) throw new Error(`publish of ${spec.layer}.${spec.table}: append.remove needs removeKeys`);
  return keys.map((k) => `r.${sqlIdent(k)} is not distinct from t.${sqlIdent(k)}`).join(' and ');
}

/**
 * The plan of a scoped publish: the rows `spec.scope` matches are compared with `source` partition by partition;
 * any difference replaces them all (delete the scope, insert the source), and the changed partitions' versions are
 * read back from the table inside the transaction.
 */
async function planScoped(ctx: LakeContext, spec: PublishSpec, p: PlanInput): Promise<Plan> {
  const { conn } = ctx;
  const scoped = p.recreate
    ? new Map<string, { rows: number; hash: string }>()
    : await partitionStats(conn, p.target, p.partExpr, spec.scope);
  const changed = new Set<string>();
  for (const part of new Set([...p.stats.keys(), ...scoped.keys()])) {
    const a = p.stats.get(part);
    const b = scoped.get(part);
    if (p.recreate || !a || !b || a.rows !== b.rows || a.hash !== b.hash) changed.add(part);
  }
  const carry = p.recreate && p.existing ? await carryOut(conn, p.i, p.target, `not (${spec.scope})`) : undefined;
  const rowsOf = (part: string): number =>
    (p.old.get(part)?.rows ?? 0) - (scoped.get(part)?.rows ?? 0) + (p.stats.get(part)?.rows ?? 0);
  const parts = new Set([...p.old.keys(), ...p.stats.keys()]);
  const deleted = [...changed].filter((part) => rowsOf(part) === 0).sort();
  const written = [...changed].filter((part) => rowsOf(part) > 0).sort();
  return {
    spec,
    ...planned(p),
    changed: written,
    deleted,
    carry,
    result: {
      rows: [...parts].reduce((a, part) => a + rowsOf(part), 0),
      partitions: [...parts].filter((part) => rowsOf(part) > 0).length,
      written,
      deleted,
      unchanged: [...parts].filter((part) => rowsOf(part) > 0 && !changed.has(part)).length,
    },
  };
}

/**
 * Creates (or replaces) a table with the plan's columns and partitioning, before the transaction that fills it. A
 * new table is empty until that commit; a table whose columns changed (a code change) reads empty between the
 * commits, and a crash there leaves it empty until the next run refills it. Its partition versions go with it, so
 * the next publish rewrites everything.
 *
 * Each DDL statement is a transaction of its own (autocommit), never a statement inside BEGIN … COMMIT: DuckLake
 * 1.5.5 pins the cached catalog entries a statement binds against only until that statement ends, while a table
 * created or altered in an explicit transaction keeps pointing at its schema's cached entry until COMMIT. When the
 * cache evicts that entry in between (memory pressure from other connections' queries), the COMMIT reads freed
 * memory: the SIGSEGV of the recompute-invariant test, in DuckLakeTransaction::Commit → GetTransactionTableChanges
 * (fixed upstream after 1.5.5 by pinning for the whole transaction, duckdb/ducklake 9bf5e07). In autocommit the
 * commit runs inside the statement, while the pin holds.
 */
async function createTable(conn: DuckDBConnection, lake: AttachedLake, p: Plan): Promise<void> {
  const { spec, target } = p;
  // A missing table is only created: a writer in another process that created it first (and may have committed
  // its partitions since) keeps them. `create or replace` there lost the first writer's rows (seen in the
  // two-writers test under load).
  const create = p.replaces ? 'create or replace table' : 'create table if not exists';
  await lakeDdl(
    conn,
    lake,
    `${create} ${target} (${p.columns.map((c) => `${sqlIdent(c.name)} ${c.type}`).join(', ')})`,
  );
  if (spec.partitionBy) {
    await lakeDdl(conn, lake, `alter table ${target} set partitioned by (${fileLayout(p.columns, spec.partitionBy)})`);
  }
}

/**
 * How a table's rows are laid out in files (`ALTER TABLE … SET PARTITIONED BY`): by month for a DATE partition key,
 * by value otherwise. The partition (versions, lineage, a publish's delete) stays the day; a file per day cost every
 * commit catalog rows per file and column (docs/decisions.md "Files by month").
 */
export function fileLayout(columns: ColumnDef[], partitionBy: string): string {
  const col = columns.find((c) => c.name === partitionBy);
  const id = sqlIdent(partitionBy);
  return col && /^date$/i.test(col.type) ? `year(${id}), month(${id})` : id;
}

/**
 * One DDL statement on the lake as its own autocommit transaction (see {@link createTable} for why never inside
 * BEGIN … COMMIT), in this process's write turn for the lake, fenced like {@link lakeWrite}, and retried like it
 * when another process holds the catalog.
 */
export async function lakeDdl(conn: DuckDBConnection, lake: AttachedLake, sql: string, maxAttempts = 8): Promise<void> {
  await withWriteTurn(lake.root, async () => {
    for (let attempt = 0; ; attempt++) {
      try {
        await checkFence();
        await conn.run(sql);
        return;
      } catch (e) {
        await retryOrThrow(e, attempt, maxAttempts);
      }
    }
  });
}

/** A lake table as the registry will publish it: its columns (DuckDB types) and partition column. */
export interface TableDef {
  layer: string;
  table: string;
  columns: ColumnDef[];
  partitionBy?: string;
}

/** `layer.table` of every table the lake's catalog holds (one catalog read). */
export async function lakeTableNames(conn: DuckDBConnection, lake: Pick<AttachedLake, 'alias'>): Promise<Set<string>> {
  const rows = await queryRows(
    conn,
    `select schema_name || '.' || table_name as t from duckdb_tables() where database_name = $db`,
    { db: lake.alias },
  );
  return new Set(rows.map((r) => String(r.t)));
}

/**
 * Creates the tables of `defs` that the lake does not have yet, all in one catalog transaction. Each DDL commit
 * makes a new schema version, and every connection's next statement on the lake then reloads the whole catalog (a
 * query right after a DDL took 50–70 ms against 15–25 ms, measured 2026-12-06): a from-scratch run that created
 * its 40 tables one by one, as each step published, paid about 60 such commits and reloads in the middle of its
 * steps. Tables made here are empty until their first publish, which finds the columns it would have created
 * (or replaces the table when they differ: never wrong, only slower). Only CREATE and ALTER … SET PARTITIONED BY
 * share the transaction (no INSERT: see {@link createTable}), nothing else of this lake runs in it, and it is
 * skipped on any error: the publishes then create what is missing, one by one, as before. Returns how many it made.
 */
export async function createMissingTables(
  conn: DuckDBConnection,
  lake: AttachedLake,
  defs: TableDef[],
): Promise<number> {
  const existing = await lakeTableNames(conn, lake);
  const missing = defs.filter((d) => !existing.has(`${d.layer}.${d.table}`));
  if (missing.length === 0) return 0;
  await withWriteTurn(lake.root, async () => {
    await checkFence();
    await conn.run('begin transaction');
    try {
      for (const d of missing) {
        const target = qualified(lake, d.layer, d.table);
        await conn.run(
          `create table if not exists ${target} (${d.columns.map((c) => `${sqlIdent(c.name)} ${c.type}`).join(', ')})`,
        );
        if (d.partitionBy)
          await conn.run(`alter table ${target} set partitioned by (${fileLayout(d.columns, d.partitionBy)})`);
      }
      await conn.run('commit');
    } catch (e) {
      await conn.run('rollback').catch(() => undefined);
      throw e;
    }
  });
  return missing.length;
}

/** `expr in ('a', 'b', …)`, or false for no values. */
function inList(expr: string, values: string[]): string {
  return values.length === 0 ? 'false' : `${expr} in (${values.map(sqlString).join(', ')})`;
}

async function apply(ctx: LakeContext, p: Plan, now: string): Promise<void> {
  const { conn } = ctx;
  const { spec, target } = p;
  const src = sqlIdent(spec.source);
  if (spec.scope) {
    if (p.changed.length === 0 && p.deleted.length === 0 && !p.recreate) return;
    if (!p.recreate) await conn.run(`delete from ${target} where ${spec.scope}`);
    await conn.run(`insert into ${target} select * from ${src}`);
    if (p.carry) await conn.run(`insert into ${target} by name select * from ${sqlIdent(p.carry)}`);
    // The partitions' new versions, read back inside the transaction (rows outside the scope are part of them).
    const touched = [...p.changed, ...p.deleted];
    const after = await partitionStats(conn, target, p.partExpr, p.recreate ? 'true' : inList(p.partExpr, touched));
    await recordVersions(
      ctx,
      spec,
      now,
      (p.recreate ? [...after.keys()] : touched).map((part) => [part, after.get(part)]),
    );
    return;
  }
  if (spec.append) return applyAppend(ctx, p, now);
  if (p.recreate) {
    // The table was (re)created empty, with its partitioning, in its own transaction (createTable): DuckDB 1.5.5
    // crashed (SIGSEGV planning the INSERT) when CREATE, ALTER … SET PARTITIONED BY and INSERT shared one.
    await conn.run(`insert into ${target} select * from ${src}`);
    if (p.carry) await conn.run(`insert into ${target} by name select * from ${sqlIdent(p.carry)}`);
  } else if (p.changed.length > 0 || p.deleted.length > 0) {
    // Data and versions commit together, so a partition without a version has no rows: a first publish (every
    // table of a from-scratch run) skips the delete, a catalog scan of 40–130 ms a table.
    const replaced = [...p.changed.filter((x) => p.present?.has(x) ?? true), ...p.deleted];
    if (replaced.length > 0) await conn.run(`delete from ${target} where ${inList(p.partExpr, replaced)}`);
    if (p.changed.length > 0) {
      await conn.run(`insert into ${target} select * from ${src} t where ${inList(p.partExpr, p.changed)}`);
    }
  }
  await recordVersions(ctx, spec, now, [
    ...p.changed.map((part): [string, Version] => [part, p.stats.get(part)]),
    ...p.deleted.map((part): [string, Version] => [part, undefined]),
  ]);
}

type Version = { rows: number; hash: string } | undefined;

/** Appends partitions' new versions to `meta.partitions` (undefined: the partition is gone), 1,000 rows a statement. */
async function recordVersions(
  ctx: LakeContext,
  spec: PublishSpec,
  now: string,
  versions: Array<[string, Version]>,
): Promise<void> {
  const meta = qualified(ctx.lake, 'meta', 'partitions');
  const rows = versions.map(
    ([part, v]) =>
      `(${[spec.layer, spec.table, part].map(sqlString).join(', ')}, ${v?.rows ?? 0}, ${sqlString(v?.hash ?? '')}, ` +
      `${!v}, ${sqlString(ctx.runId)}, ${sqlString(now)}::timestamptz)`,
  );
  for (let i = 0; i < rows.length; i += 1000) {
    await ctx.conn.run(`insert into ${meta} values ${rows.slice(i, i + 1000).join(', ')}`);
  }
}

/** Writes an append ({@link planAppend}): removed rows deleted, added rows inserted, the new versions recorded. */
async function applyAppend(ctx: LakeContext, p: Plan, now: string): Promise<void> {
  const { conn } = ctx;
  const { spec, target } = p;
  const remove = spec.append?.remove;
  if (!p.recreate && remove && p.removes) {
    await conn.run(
      `delete from ${target} t where exists (select 1 from ${sqlIdent(remove)} r where ${removeMatch(spec)})`,
    );
  }
  await conn.run(`insert into ${target} select * from ${sqlIdent(spec.source)}`);
  if (p.carry) await conn.run(`insert into ${target} by name select * from ${sqlIdent(p.carry)}`);
  if (p.appended) {
    const versions = p.appended;
    await recordVersions(ctx, spec, now, [
      ...p.changed.map((part): [string, Version] => [part, versions.get(part)]),
      ...p.deleted.map((part): [string, Version] => [part, undefined]),
    ]);
    return;
  }
  // A re-created table: every partition's version read back (the row hashes depend on the new columns); the ones it
  // held before and no longer does are gone.
  const after = await partitionStats(conn, target, p.partExpr);
  const gone = [...(p.present ?? [])].filter((part) => !after.has(part));
  await recordVersions(ctx, spec, now, [
    ...[...after.entries()],
    ...gone.map((part): [string, Version] => [part, undefined]),
  ]);
}

/** The newest snapshot id of the lake. */
export async function currentSnapshot(conn: DuckDBConnection, lake: AttachedLake): Promise<number> {
  const [r] = await queryRows(conn, `select id from ${sqlIdent(lake.alias)}.current_snapshot()`);
  return Number(r.id);
}

/** Snapshot ids committed by a run (from the commit messages {@link publishTables} writes). */
export async function runSnapshots(conn: DuckDBConnection, lake: AttachedLake, runId: string): Promise<number[]> {
  const rows = await queryRows(
    conn,
    `select snapshot_id from ${sqlIdent(lake.alias)}.snapshots()
     where author = 'cpa' and json_extract_string(commit_extra_info, '$.run_id') = $run order by snapshot_id`,
    { run: runId },
  );
  return rows.map((r) => Number(r.snapshot_id));
}

/**
 * Removes an S3 lake's catalog (its metadata schema in CPA_LAKE_CATALOG's database), for `cpa bench` and tests that
 * rebuild a lake from scratch after deleting its objects. A local lake's catalog goes with its directory.
 */
export async function dropLakeCatalog(config: Config, lakeRoot: string): Promise<void> {
  if (!isS3(lakeRoot) || !config.lakeCatalog) return;
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const db = await DuckDBInstance.create(':memory:', await extensionSettings(config));
  const conn = await db.connect();
  try {
    await loadExtension(conn, config, 'postgres_scanner', unavailable);
    await conn.run(
      `attach ${sqlString(config.lakeCatalog.replace(/^postgres(ql)?:(?!\/\/)/, ''))} as pg (type postgres)`,
    );
    await conn.run(
      `call postgres_execute('pg', ${sqlString(`drop schema if exists "${lakeAlias(lakeRoot)}" cascade`)})`,
    );
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}
