import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { DuckDBConnection, DuckDBInstance, Json } from '@duckdb/node-api';
import { openLake } from '../../activities/common';
import { emptyOwnBaseline } from '../../activities/models';
import { BRONZE_EVENT_COLUMNS, CSV_CONTRACTS, INGEST_COLUMNS } from '../../config/contracts';
import { loadConfig } from '../../config/env';
import type { Config } from '../../config/env';
import type { ColumnDef } from '../../config/contracts';
import { createDuckDb, loadSql, sqlIdent } from '../../lake/duckdb';
import { findModel, SILVER_MODELS } from '../../lake/tables';

/**
 * A tiny harness for rule tests: builds typed input relations (bronze_<t>, silver_<t>) from partial fixture rows,
 * runs one model file on them with exactly the connection setup the activities use (`openLake`: aliases,
 * macros, variables) and returns the output rows as JSON (DECIMAL/BIGINT/DATE/TIMESTAMP as strings).
 */

/** A fixture cell; bound as text and cast to the column's type (so decimals stay exact). */
export type Cell = string | number | boolean | null;
export type Fixture = Record<string, Cell>;
export type OutRow = Record<string, Json>;

export const TEST_SALT = 'rules-test-salt-0001';

/** A kept silver event with only what the gold marts read, on `usageDate`, with `over` applied. */
export function silverEvent(over: Fixture, usageDate = '2025-07-20'): Fixture {
  return {
    org_id: 'org-1',
    usage_date: usageDate,
    service: 'compute',
    metric: 'requests',
    value: 0,
    cost_usd_increment: '0',
    schema_version: 1,
    is_anomaly: false,
    ...over,
  };
}
const MODEL_META = new Set(['_rule', '_detail', '_raw']);

export class RulesLake {
  private readonly schemas = new Map<string, ColumnDef[]>();

  private constructor(
    readonly db: DuckDBInstance,
    readonly config: Config,
    readonly dir: string,
  ) {}

  /** One in-memory DuckDB per test file; `env` overrides config (e.g. CPA_ANOMALY_EVENT_BY_METRIC). */
  static async create(env: Record<string, string> = {}): Promise<RulesLake> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cpa-rules-'));
    const config = loadConfig({
      CPA_LAKE_ROOT: path.join(dir, 'lake'),
      CPA_EMAIL_SALT: TEST_SALT,
      CPA_DUCKDB_THREADS: '1',
      CPA_DUCKDB_MEMORY_LIMIT: '512MB',
      CPA_DUCKDB_TEMP_DIR: path.join(dir, 'spill'),
      ...env,
    });
    return new RulesLake(await createDuckDb(config, { needS3: false }), config, dir);
  }

  /** A fresh connection (temp tables and variables are per connection, so sessions never see each other). */
  async session(): Promise<RulesSession> {
    const ctx = await openLake(
      { config: this.config, db: this.db },
      { lake: this.config.lakeRoot, landing: this.config.landingRoot, runId: 'rules-test' },
    );
    // Models that read their window from their own output see none here: every day is in the fixture rows.
    for (const m of SILVER_MODELS) await emptyOwnBaseline(ctx.conn, m);
    return new RulesSession(ctx.conn, this);
  }

  /** Output columns of a silver model (without _rule/_detail/_raw), i.e. what gold reads as silver_<table>. */
  async silverColumns(table: string): Promise<ColumnDef[]> {
    const key = `silver.${table}`;
    const cached = this.schemas.get(key);
    if (cached) return cached;
    const model = findModel('silver', table);
    const s = await this.session();
    try {
      for (const input of model.inputs) {
        const cols = input.layer === 'bronze' ? bronzeColumns(input.table) : await this.silverColumns(input.table);
        await s.table(`${input.layer}_${input.table}`, cols, []);
      }
      await s.conn.run(`create temp table _schema as select * from (\n${loadSql(model.sql)}\n) limit 0`);
      const cols = (await s.query(`describe _schema`))
        .map((r) => ({ name: String(r.column_name), type: String(r.column_type) }))
        .filter((c) => !MODEL_META.has(c.name));
      this.schemas.set(key, cols);
      return cols;
    } finally {
      s.close();
    }
  }

  close(): void {
    this.db.closeSync();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Bronze columns of a table: the CSV contract plus ingest columns, or the unioned events schema. */
export function bronzeColumns(table: string): ColumnDef[] {
  if (table === 'usage_events') return BRONZE_EVENT_COLUMNS;
  const contract = CSV_CONTRACTS.find((c) => c.bronze === table);
  if (!contract) throw new Error(`no bronze contract for ${table}`);
  return [...contract.columns, ...INGEST_COLUMNS];
}

export class RulesSession {
  constructor(
    readonly conn: DuckDBConnection,
    private readonly lake: RulesLake,
  ) {}

  async query(sql: string): Promise<OutRow[]> {
    return (await this.conn.runAndReadAll(sql)).getRowObjectsJson();
  }

  /** Creates temp table `name` with `columns` and inserts `rows` (missing columns NULL) with bound parameters. */
  async table(name: string, columns: ColumnDef[], rows: Fixture[]): Promise<void> {
    const known = new Set(columns.map((c) => c.name));
    await this.conn.run(
      `create or replace temp table ${sqlIdent(name)} (${columns.map((c) => `${sqlIdent(c.name)} ${c.type}`).join(', ')})`,
    );
    const list = columns.map((c) => sqlIdent(c.name)).join(', ');
    const values = columns.map((c, i) => `cast(cast($${i + 1} as varchar) as ${c.type})`).join(', ');
    for (const row of rows) {
      const unknown = Object.keys(row).filter((k) => !known.has(k));
      if (unknown.length > 0) throw new Error(`fixture for ${name} has unknown column(s): ${unknown.join(', ')}`);
      const params = columns.map((c) => {
        const v = row[c.name];
        return v === undefined || v === null ? null : String(v);
      });
      await this.conn.run(`insert into ${sqlIdent(name)} (${list}) select ${values}`, params);
    }
  }

  /** bronze_<table> with the bronze types of config/contracts.ts. */
  async bronze(table: string, rows: Fixture[]): Promise<void> {
    await this.table(`bronze_${table}`, bronzeColumns(table), rows);
  }

  /** silver_<table> with the output types of the silver model. */
  async silver(table: string, rows: Fixture[]): Promise<void> {
    await this.table(`silver_${table}`, await this.lake.silverColumns(table), rows);
  }

  /** Runs a model file (e.g. 'silver/orgs.sql') over the relations of this session; rows ordered by `orderBy`. */
  async model(rel: string, orderBy: string[]): Promise<OutRow[]> {
    await this.conn.run(`create or replace temp table _out as select * from (\n${loadSql(rel)}\n)`);
    return this.query(`select * from _out order by ${orderBy.map((c) => `${sqlIdent(c)} nulls last`).join(', ')}`);
  }

  /**
   * Runs lake/sql/bronze/usage_events_lines.sql and usage_events.sql over `files` (key → content), written to a temp
   * dir, the way ingestEventBatch does: `_event_files(path, source_file)`, variables event_paths and ingest_ts.
   */
  async bronzeEvents(files: Record<string, string>, ingestTs = '2025-08-01T00:00:00Z'): Promise<OutRow[]> {
    const dir = fs.mkdtempSync(path.join(this.lake.dir, 'landing-'));
    const entries = Object.entries(files).map(([key, content], i) => {
      const p = path.join(dir, `f${i}.jsonl`);
      fs.writeFileSync(p, content);
      return { path: p, key };
    });
    await this.table(
      '_event_files',
      [
        { name: 'path', type: 'VARCHAR' },
        { name: 'source_file', type: 'VARCHAR' },
      ],
      entries.map((e) => ({ path: e.path, source_file: e.key })),
    );
    await this.conn.run(`set variable event_paths = (select list(path order by source_file) from _event_files)`);
    await this.conn.run(`set variable ingest_ts = $ts`, { ts: ingestTs });
    await this.conn.run(`create or replace temp table _event_lines as ${loadSql('bronze/usage_events_lines.sql')}`);
    return this.model('bronze/usage_events.sql', ['source_file', 'source_line']);
  }

  close(): void {
    this.conn.closeSync();
  }
}

/** Index rows by a key column; throws on a missing or duplicate key so a test never asserts on the wrong row. */
export function byKey(rows: OutRow[], key: string): Record<string, OutRow> {
  const out: Record<string, OutRow> = {};
  for (const r of rows) {
    const k = String(r[key]);
    if (k in out) throw new Error(`duplicate ${key} ${k} in model output`);
    out[k] = r;
  }
  return out;
}
