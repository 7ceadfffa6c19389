import crypto from 'node:crypto';
import type { DuckDBConnection } from '@duckdb/node-api';
import { joinUri } from '../config/env';
import { queryRows, sqlIdent, sqlString } from './duckdb';
import { isNotFound } from './storage';
import type { Storage } from './storage';

/**
 * The table catalog: every lake table is a directory of Parquet files (normally one per partition) plus a manifest
 * under `_meta/tables/<layer>/<table>.json` listing the committed partitions with their files, row count and
 * content hash. The manifest is the table: readers go through it and nothing else.
 *
 * Publishing never overwrites a committed file, on a local disk or on S3 (which has no rename): a write stages its
 * files under `_staging/<layer>/<table>/<writeId>/`, copies each one to a new, never-used name in the table
 * directory (one atomic PUT/CopyObject, or a link + rename, per file), then commits by replacing the manifest (one
 * atomic object write). A crash at any point before the commit leaves the previous manifest and every file it
 * lists untouched; after it, readers see the new partitions whole. After the commit, staging leftovers (also of
 * killed writes) and files no manifest lists are deleted; files the commit superseded stay readable for a grace
 * period (`retired`) for readers that had just read the previous manifest. See docs/decisions.md, "Atomic publish
 * on S3".
 */

export const NULL_PARTITION = '__HIVE_DEFAULT_PARTITION__';

export interface ColumnDef {
  name: string;
  type: string;
}

export interface PartitionEntry {
  rows: number;
  hash: string;
  files: string[];
}

export interface TableManifest {
  layer: string;
  table: string;
  partitionBy: string | null;
  columns: ColumnDef[];
  partitions: Record<string, PartitionEntry>;
  updatedAt: string;
  runId: string;
  /**
   * Files a commit superseded (key → when), kept for {@link RETIRED_GRACE_MS} so a reader that read the previous
   * manifest just before the commit can still open them; deleted by a later publish.
   */
  retired?: Record<string, string>;
}

/** How long superseded files stay readable after the commit that replaced them. */
export const RETIRED_GRACE_MS = 15 * 60_000;

export interface PublishResult {
  rows: number;
  partitions: number;
  written: string[];
  deleted: string[];
  unchanged: number;
}

export interface LakeContext {
  conn: DuckDBConnection;
  storage: Storage;
  lakeRoot: string;
  runId: string;
}

export function tableUri(lakeRoot: string, layer: string, table: string): string {
  return joinUri(lakeRoot, layer, table);
}

function manifestUri(lakeRoot: string, layer: string, table: string): string {
  return joinUri(lakeRoot, '_meta', 'tables', layer, `${table}.json`);
}

export async function readManifest(
  storage: Storage,
  lakeRoot: string,
  layer: string,
  table: string,
): Promise<TableManifest | undefined> {
  // One GET, not HEAD + GET: manifests are read before every view and publish, and on S3 each request is a round trip.
  const bytes = await storage.readBytes(manifestUri(lakeRoot, layer, table)).catch((e: unknown) => {
    if (isNotFound(e)) return undefined;
    throw e;
  });
  return bytes && (JSON.parse(bytes.toString('utf8')) as TableManifest);
}

/** All committed file URIs of a table. */
export function manifestFiles(lakeRoot: string, m: TableManifest): string[] {
  const base = tableUri(lakeRoot, m.layer, m.table);
  return Object.keys(m.partitions)
    .sort()
    .flatMap((p) => m.partitions[p].files.map((f) => joinUri(base, f)));
}

/**
 * Creates (or replaces) a temp view over a table's committed files. When the table has never been written, the
 * view is empty with `fallbackColumns` (or the manifest's columns when it exists but holds no rows).
 */
export async function registerView(
  ctx: Pick<LakeContext, 'conn' | 'storage' | 'lakeRoot'>,
  layer: string,
  table: string,
  view: string,
  fallbackColumns?: ColumnDef[],
): Promise<TableManifest | undefined> {
  const m = await readManifest(ctx.storage, ctx.lakeRoot, layer, table);
  const files = m ? manifestFiles(ctx.lakeRoot, m) : [];
  let body: string;
  if (files.length > 0) {
    body = `select * from read_parquet([${files.map(sqlString).join(', ')}], hive_partitioning = false)`;
  } else {
    const cols = m?.columns ?? fallbackColumns;
    if (!cols) throw new Error(`table ${layer}.${table} has not been built yet`);
    body = `select ${cols.map((c) => `cast(null as ${c.type}) as ${sqlIdent(c.name)}`).join(', ')} where false`;
  }
  await ctx.conn.run(`create or replace temp view ${sqlIdent(view)} as ${body}`);
  return m;
}

/**
 * Publishes the rows of `source` (a temp table or view) as `layer.table`: only partitions whose content hash
 * changed are written; partitions that disappeared are deleted (restricted to those `owns` accepts, so two
 * writers can share a table by partition). Re-publishing identical content writes nothing.
 */
export async function publishTable(
  ctx: LakeContext,
  spec: { layer: string; table: string; source: string; partitionBy?: string; owns?: (p: string) => boolean },
): Promise<PublishResult> {
  const { conn, storage, lakeRoot, runId } = ctx;
  const { layer, table, source } = spec;
  const partitionBy = spec.partitionBy ?? null;
  const owns = spec.owns ?? (() => true);
  const src = sqlIdent(source);

  const columns = (await queryRows(conn, `describe ${src}`)).map((r) => ({
    name: String(r.column_name),
    type: String(r.column_type),
  }));
  const partExpr = partitionBy ? `coalesce(cast(${sqlIdent(partitionBy)} as varchar), '${NULL_PARTITION}')` : `''`;
  const stats = await queryRows(
    conn,
    `select ${partExpr} as p, count(*)::bigint as n, sum(hash(t))::varchar as h from ${src} t group by 1`,
  );
  const old = await readManifest(storage, lakeRoot, layer, table);
  const schemaChanged = !old || JSON.stringify(old.columns) !== JSON.stringify(columns);

  const next: Record<string, PartitionEntry> = {};
  const changed: string[] = [];
  for (const s of stats) {
    const p = String(s.p);
    const entry = { rows: Number(s.n), hash: String(s.h), files: [] as string[] };
    const prev = old?.partitions[p];
    if (!schemaChanged && prev && prev.hash === entry.hash && prev.rows === entry.rows) {
      next[p] = prev;
    } else {
      changed.push(p);
      next[p] = entry;
    }
  }
  // Partitions of the old manifest that this writer does not own are carried over untouched.
  const deleted: string[] = [];
  for (const [p, entry] of Object.entries(old?.partitions ?? {})) {
    if (next[p]) continue;
    if (owns(p)) deleted.push(p);
    else next[p] = entry;
  }

  const base = tableUri(lakeRoot, layer, table);
  const stagingRoot = stagingUri(lakeRoot, layer, table);
  if (changed.length > 0) {
    // A fresh name per write: the files of the committed manifest are never overwritten, so a crash cannot touch them.
    const writeId = `${Date.now().toString(36)}${crypto.randomBytes(4).toString('hex')}`;
    const staging = joinUri(stagingRoot, writeId);
    await storage.prepareDir(staging);
    await conn.run(`create or replace temp table _publish_changed (p varchar)`);
    const appender = await conn.createAppender('_publish_changed', 'main', 'temp');
    for (const p of changed) {
      appender.appendVarchar(p);
      appender.endRow();
    }
    appender.closeSync();
    const selected = `select * from ${src} t where ${partExpr} in (select p from _publish_changed)`;
    if (partitionBy) {
      await conn.run(
        `copy (${selected}) to ${sqlString(staging)} (format parquet, compression zstd, partition_by (${sqlIdent(partitionBy)}), write_partition_columns true, filename_pattern ${sqlString(`part-${writeId}-{i}`)}, overwrite_or_ignore true)`,
      );
    } else {
      await conn.run(
        `copy (${selected}) to ${sqlString(joinUri(staging, `part-${writeId}-0.parquet`))} (format parquet, compression zstd)`,
      );
    }
    const staged = await storage.list(staging);
    for (const obj of staged) {
      const p = partitionBy ? partitionOfKey(obj.key, partitionBy) : '';
      if (!changed.includes(p)) {
        throw new Error(`staged file ${obj.key} does not belong to a changed partition of ${layer}.${table}`);
      }
      next[p].files.push(obj.key);
    }
    for (const p of changed) next[p].files.sort();
    await forEachLimit(staged, PROMOTE_CONCURRENCY, (obj) => storage.copy(obj.uri, joinUri(base, obj.key)));
  }

  const now = Date.now();
  const retired = Object.fromEntries(
    Object.entries(old?.retired ?? {}).filter(([, at]) => now - Date.parse(at) < RETIRED_GRACE_MS),
  );
  const committing = changed.length > 0 || deleted.length > 0 || schemaChanged;
  if (committing) {
    const listed = new Set(Object.values(next).flatMap((e) => e.files));
    for (const f of Object.values(old?.partitions ?? {}).flatMap((e) => e.files)) {
      if (!listed.has(f)) retired[f] = new Date(now).toISOString();
    }
    const manifest: TableManifest = {
      layer,
      table,
      partitionBy,
      columns,
      partitions: next,
      updatedAt: new Date(now).toISOString(),
      runId,
      ...(Object.keys(retired).length > 0 ? { retired } : {}),
    };
    // The commit point: one atomic object write.
    await storage.writeBytes(manifestUri(lakeRoot, layer, table), JSON.stringify(manifest, null, 1));
  }

  // After the commit nothing below changes what a reader of the manifest sees.
  const leftovers = await storage.deletePrefix(stagingRoot);
  const expired = Object.keys(old?.retired ?? {}).some((f) => !(f in retired));
  if (committing || leftovers > 0 || expired) {
    const keep = new Set([...Object.values(next).flatMap((e) => e.files), ...Object.keys(retired)]);
    await sweepUnlisted(storage, base, partitionBy, keep, owns);
  }
  const rows = Object.values(next).reduce((a, e) => a + e.rows, 0);
  return {
    rows,
    partitions: Object.keys(next).length,
    written: changed.sort(),
    deleted: deleted.sort(),
    unchanged: Object.keys(next).length - changed.length,
  };
}

/** Where one table's writes stage their files (`<writeId>/` below it). */
export function stagingUri(lakeRoot: string, layer: string, table: string): string {
  return joinUri(lakeRoot, '_staging', layer, table);
}

/** Parallel server-side copies; a few at a time is enough to hide S3 request latency. */
const PROMOTE_CONCURRENCY = 8;

async function forEachLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * Deletes the files of a table directory that are neither committed nor retired within the grace period, in the
 * partitions this writer owns: superseded files past their grace, and copies promoted by a write that was killed
 * before its commit.
 */
async function sweepUnlisted(
  storage: Storage,
  base: string,
  partitionBy: string | null,
  keep: Set<string>,
  owns: (p: string) => boolean,
): Promise<void> {
  const unlisted = (await storage.list(base)).filter((o) => {
    if (keep.has(o.key)) return false;
    if (!partitionBy) return true;
    const seg = o.key.split('/').find((s) => s.startsWith(`${partitionBy}=`));
    return seg !== undefined && owns(decodeURIComponent(seg.slice(partitionBy.length + 1)));
  });
  await storage.delete(unlisted.map((o) => o.uri));
}

function partitionOfKey(key: string, partitionBy: string): string {
  const seg = key.split('/').find((s) => s.startsWith(`${partitionBy}=`));
  if (!seg) throw new Error(`staged file ${key} has no ${partitionBy}= directory`);
  return decodeURIComponent(seg.slice(partitionBy.length + 1));
}
