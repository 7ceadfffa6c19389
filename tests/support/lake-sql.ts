import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import type { Config } from '../../config/env';
import { attachSpec } from '../../lake/lakehouse';

export type Query = (
  sql: string,
  params?: Record<string, string | number | boolean | null>,
) => Promise<Array<Record<string, unknown>>>;

/** The offline extension directory of `scripts/tools.sh duckdb` (or CPA_DUCKDB_EXTENSION_DIR). */
export function extensionDir(): string {
  return (
    process.env.CPA_DUCKDB_EXTENSION_DIR ??
    path.join(process.env.CPA_CACHE_DIR ?? path.join(os.homedir(), '.cache', 'cpa'), 'duckdb_extensions')
  );
}

/**
 * What an analyst does: a fresh DuckDB (not the project's connection code) attaches the lake's DuckLake read-only as
 * `lake` and runs SQL on it: `select * from lake.gold.org_daily_usage_by_service`. Local lakes need only the path;
 * an s3:// lake needs `config` (its PostgreSQL catalog and S3 settings).
 */
export async function withLakeSql<T>(lakeRoot: string, fn: (q: Query) => Promise<T>, config?: Config): Promise<T> {
  const db = await DuckDBInstance.create(':memory:', {
    extension_directory: extensionDir(),
    autoinstall_known_extensions: 'false',
  });
  const conn = await db.connect();
  try {
    await conn.run(`set TimeZone = 'UTC'`);
    let target: string;
    let options = 'READ_ONLY';
    if (lakeRoot.startsWith('s3://')) {
      if (!config) throw new Error(`reading ${lakeRoot} needs the config (catalog, S3 settings)`);
      const { endpoint, region, accessKeyId, secretAccessKey, urlStyle } = config.s3;
      const u = new URL(endpoint!);
      await conn.run(`load httpfs`);
      await conn.run(
        `create secret (type s3, key_id '${accessKeyId}', secret '${secretAccessKey}', region '${region}', ` +
          `endpoint '${u.host}', use_ssl ${u.protocol === 'https:'}, url_style '${urlStyle}')`,
      );
      const spec = attachSpec(config, lakeRoot);
      target = spec.target;
      options = [...spec.options.filter((o) => o.startsWith('METADATA_SCHEMA')), 'READ_ONLY'].join(', ');
    } else {
      const catalog = path.join(lakeRoot, '_meta', 'catalog.sqlite');
      if (!fs.existsSync(catalog)) throw new Error(`no DuckLake catalog at ${catalog}`);
      target = `ducklake:sqlite:${catalog}`;
    }
    await conn.run(`attach '${target.replace(/'/g, "''")}' as lake (${options})`);
    return await fn(
      async (sql, params) =>
        (await conn.runAndReadAll(sql, params)).getRowObjectsJson() as Array<Record<string, unknown>>,
    );
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

/** `lake.<layer>.<table>` when the table exists in the attached lake, else an empty relation. */
export async function tableRef(q: Query, layer: string, table: string): Promise<string> {
  const rows = await q(
    `select 1 from duckdb_tables() where database_name = 'lake' and schema_name = $s and table_name = $t`,
    { s: layer, t: table },
  );
  return rows.length > 0 ? `lake.${layer}.${table}` : `(select null as rule where false)`;
}

/** Per gold mart: `count:sum(hash(row))` through the catalog — equal digests mean equal gold. */
export async function goldDigest(lakeRoot: string, marts: string[]): Promise<Record<string, string>> {
  return withLakeSql(lakeRoot, async (q) => {
    const out: Record<string, string> = {};
    for (const mart of marts) {
      const [r] = await q(
        `select count(*)::varchar || ':' || coalesce(sum(hash(t))::varchar, '0') as h from lake.gold.${mart} t`,
      );
      out[mart] = String(r.h);
    }
    return out;
  });
}

/** The latest run records of `meta.runs` (one per run id), newest first. */
export async function runRecords(lakeRoot: string): Promise<Array<Record<string, unknown>>> {
  return withLakeSql(lakeRoot, async (q) =>
    (
      await q(
        `select summary from lake.meta.runs qualify row_number() over (partition by run_id order by recorded_at desc) = 1
         order by started_at desc`,
      )
    ).map((r) => JSON.parse(String(r.summary)) as Record<string, unknown>),
  );
}
