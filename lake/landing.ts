import type { DuckDBConnection } from '@duckdb/node-api';
import { joinUri } from '../config/env';
import { NULL_PARTITION, qualified } from './lakehouse';
import type { AttachedLake } from './lakehouse';
import { queryRows, sqlIdent, sqlString } from './duckdb';
import { listLanding, resolveLandingKey, UnsafeKeyError } from './storage';
import type { RefusedEntry, Storage } from './storage';

/**
 * What the lake knows of the landing zone: the landed-files manifest (`meta.landed_files`), which events files are
 * there and which of them are pending, and the bronze partitions each file's rows can be in. Bronze ingestion
 * (activities/bronze.ts) and the speed layer (activities/speed.ts) read it; bronze writes it, in the transaction that
 * publishes the files' rows.
 */

/** The landing prefix of the events micro-batch files (`usage_events_stream/*.jsonl`). */
export const EVENTS_PREFIX = 'usage_events_stream';

/** The events files bronze lists: `.jsonl`, nothing hidden (`.x`) or private (`_x`) on the way (relative key). */
export function isEventFileKey(relKey: string): boolean {
  return relKey.endsWith('.jsonl') && !relKey.split('/').some((s) => s.startsWith('.') || s.startsWith('_'));
}

/** One landed file as recorded in the lake's `meta.landed_files`. */
export interface ManifestEntry {
  key: string;
  sha256: string;
  size: number;
  version: string;
  rows: number;
  ingestedAt: string;
  runId: string;
  /**
   * Events files: the usage_date partitions of bronze that can hold this file's rows (those of its parsed lines, a
   * superset of where its first-seen rows went). The speed layer reads only these to find the file's rows.
   */
  partitions?: string[];
}

export type EventManifest = Record<string, ManifestEntry>;

/** `source` of meta.landed_files rows: 'csv' for the CSV snapshots, 'usage_events' for events files. */
export type LandedSource = 'csv' | 'usage_events';

/** The latest record per landed file of a source (append-only table: the newest row per key wins). */
export async function readLandedFiles(
  conn: DuckDBConnection,
  lake: AttachedLake,
  source: LandedSource,
  key?: string,
): Promise<Record<string, ManifestEntry>> {
  const rows = await queryRows(
    conn,
    `select key, sha256, size, version, rows, partitions, run_id, strftime(ingested_at, '%Y-%m-%dT%H:%M:%S.%gZ') as ingested_at
     from ${qualified(lake, 'meta', 'landed_files')}
     where source = $source ${key === undefined ? '' : 'and key = $key'}
     qualify row_number() over (partition by key order by ingested_at desc) = 1`,
    key === undefined ? { source } : { source, key },
  );
  const out: Record<string, ManifestEntry> = {};
  for (const r of rows) {
    out[String(r.key)] = {
      key: String(r.key),
      sha256: String(r.sha256),
      size: Number(r.size),
      version: String(r.version),
      rows: Number(r.rows),
      ingestedAt: String(r.ingested_at),
      runId: String(r.run_id),
      ...(r.partitions ? { partitions: (r.partitions as string[]).map(String) } : {}),
    };
  }
  return out;
}

export function readEventManifest(conn: DuckDBConnection, lake: AttachedLake): Promise<EventManifest> {
  return readLandedFiles(conn, lake, 'usage_events');
}

/** Appends landed-file records (inside the caller's publish transaction when there is one), 500 rows a statement. */
export async function writeLandedFiles(
  conn: DuckDBConnection,
  lake: AttachedLake,
  source: LandedSource,
  entries: ManifestEntry[],
): Promise<void> {
  const row = (e: ManifestEntry): string =>
    `(${[source, e.key, e.sha256].map(sqlString).join(', ')}, ${Math.trunc(e.size)}, ${sqlString(e.version)}, ` +
    `${Math.trunc(e.rows)}, ${e.partitions ? `[${e.partitions.map(sqlString).join(', ')}]::varchar[]` : 'null'}, ` +
    `${sqlString(e.runId)}, ${sqlString(e.ingestedAt)}::timestamptz)`;
  for (let i = 0; i < entries.length; i += 500) {
    await conn.run(
      `insert into ${qualified(lake, 'meta', 'landed_files')} values ${entries
        .slice(i, i + 500)
        .map(row)
        .join(', ')}`,
    );
  }
}

/** An events file to ingest: its key, where it is, and its listing version ('' when not listed: asked for by key). */
export interface EventCandidate {
  key: string;
  uri: string;
  size: number;
  version: string;
}

/**
 * The events files an ingest considers, in ascending key order, and the entries named like events files that are
 * refused (symlinks, FIFOs, devices, directories, unsafe S3 keys): exactly `keys` when given (each must be
 * `usage_events_stream/….jsonl` inside the landing root, else {@link UnsafeKeyError}; not listed, so never refused
 * here — reading refuses them), else every events file listed under the landing prefix.
 */
export async function eventCandidates(
  storage: Storage,
  landing: string,
  keys?: string[],
): Promise<{ candidates: EventCandidate[]; refused: RefusedEntry[] }> {
  let candidates: EventCandidate[];
  let refused: RefusedEntry[] = [];
  if (keys) {
    candidates = keys.map((key) => {
      if (!key.startsWith(`${EVENTS_PREFIX}/`) || !key.endsWith('.jsonl')) {
        throw new UnsafeKeyError(`file key '${key}' is not an events file (${EVENTS_PREFIX}/*.jsonl)`);
      }
      return { key, uri: resolveLandingKey(landing, key), size: -1, version: '' };
    });
  } else {
    const listed = await listLanding(storage, joinUri(landing, EVENTS_PREFIX), isEventFileKey);
    const withPrefix = <T extends { key: string }>(o: T): T => ({ ...o, key: `${EVENTS_PREFIX}/${o.key}` });
    candidates = listed.files
      .map(withPrefix)
      .map((o) => ({ key: o.key, uri: o.uri, size: o.size, version: o.version }));
    refused = listed.refused.map(withPrefix);
  }
  candidates.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return { candidates, refused };
}

/**
 * Splits candidates by the manifest: files whose listing version (size + mtime / ETag) equals the manifest's were
 * ingested as they are and are not re-read (`unchanged`); the rest are pending, in the given order.
 */
export function pendingEventFiles(
  candidates: EventCandidate[],
  manifest: EventManifest,
): { pending: EventCandidate[]; unchanged: number } {
  let unchanged = 0;
  const pending = candidates.filter((c) => {
    const same = c.version !== '' && manifest[c.key]?.version === c.version;
    if (same) unchanged++;
    return !same;
  });
  return { pending, unchanged };
}

/**
 * The usage_date partitions (NULL_PARTITION for rows of no day) of the rows of temp table `table` whose `_rule` is
 * null, per source_file.
 */
export async function partitionsByFile(conn: DuckDBConnection, table: string): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const r of await queryRows(
    conn,
    `select source_file, array_sort(list(distinct coalesce(cast(usage_date as varchar), '${NULL_PARTITION}'))) as ps
     from ${sqlIdent(table)} where _rule is null group by source_file`,
  )) {
    out.set(String(r.source_file), (r.ps as string[]).map(String));
  }
  return out;
}

/** The usage_date partitions (NULL_PARTITION for rows of no day) of the rows of temp table `table`. */
export async function partitionsOf(conn: DuckDBConnection, table: string): Promise<Set<string>> {
  const rows = await queryRows(
    conn,
    `select distinct coalesce(cast(usage_date as varchar), '${NULL_PARTITION}') as p from ${sqlIdent(table)}`,
  );
  return new Set(rows.map((r) => String(r.p)));
}

/**
 * The partitions to record for a (re-)ingested file: a changed file keeps the rows of its earlier versions, so the
 * union with what the manifest knew; unknown (undefined) when an earlier version was recorded without them.
 */
export function recordedPartitions(prev: ManifestEntry | undefined, now: string[] | undefined): string[] | undefined {
  if (prev && !prev.partitions) return undefined;
  return [...new Set([...(prev?.partitions ?? []), ...(now ?? [])])].sort();
}
