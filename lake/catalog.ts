import type { DuckDBConnection } from '@duckdb/node-api';
import { joinUri } from '../config/env';
import { queryRows, sqlIdent, sqlString } from './duckdb';
import type { Storage } from './storage';

/**
 * The table catalog: every lake table is a directory of Parquet files, one file per partition, plus a manifest
 * under `_meta/tables/<layer>/<table>.json` listing the committed partitions with their row count and content
 * hash. Writers stage files, promote each partition file with an atomic replace, then commit the manifest.
 * Readers that go through the manifest see only committed partitions; a plain glob over the directory works too
 * because a partition is always exactly one complete file.
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
}

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
  const uri = manifestUri(lakeRoot, layer, table);
  if (!(await storage.exists(uri))) return undefined;
  return JSON.parse((await storage.readBytes(uri)).toString('utf8')) as TableManifest;
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
  if (changed.length > 0) {
    const staging = joinUri(lakeRoot, '_staging', runId, layer, table);
    await storage.deletePrefix(staging);
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
        `copy (${selected}) to ${sqlString(staging)} (format parquet, compression zstd, partition_by (${sqlIdent(partitionBy)}), write_partition_columns true, filename_pattern 'data_{i}', overwrite_or_ignore true)`,
      );
    } else {
      await conn.run(`copy (${selected}) to ${sqlString(joinUri(staging, 'data_0.parquet'))} (format parquet, compression zstd)`);
    }
    const staged = await storage.list(staging);
    for (const obj of staged) {
      const p = partitionBy ? partitionOfKey(obj.key, partitionBy) : '';
      if (!next[p]) throw new Error(`staged file ${obj.key} does not belong to a known partition of ${layer}.${table}`);
      next[p].files.push(obj.key);
      await storage.move(obj.uri, joinUri(base, obj.key));
    }
    for (const p of changed) {
      next[p].files.sort();
      const stale = (old?.partitions[p]?.files ?? []).filter((f) => !next[p].files.includes(f));
      for (const f of stale) await storage.deletePrefix(joinUri(base, f));
    }
    await storage.deletePrefix(staging);
  }
  for (const p of deleted) {
    for (const f of old!.partitions[p].files) await storage.deletePrefix(joinUri(base, f));
  }

  if (changed.length > 0 || deleted.length > 0 || schemaChanged) {
    const manifest: TableManifest = {
      layer,
      table,
      partitionBy,
      columns,
      partitions: next,
      updatedAt: new Date().toISOString(),
      runId,
    };
    await storage.writeBytes(manifestUri(lakeRoot, layer, table), JSON.stringify(manifest, null, 1));
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

function partitionOfKey(key: string, partitionBy: string): string {
  const seg = key.split('/').find((s) => s.startsWith(`${partitionBy}=`));
  if (!seg) throw new Error(`staged file ${key} has no ${partitionBy}= directory`);
  return decodeURIComponent(seg.slice(partitionBy.length + 1));
}
