// The floor for bronze events ingestion (issue 8): DuckDB alone, 2 threads, reads every landed events file of a
// landing directory as JSON lines and writes date-partitioned Parquet — no rules, no dedup, no catalog.
//   node scripts/bench-floor.mjs LANDING [RUNS]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';

const landing = path.resolve(process.argv[2]);
const runs = Number(process.argv[3] ?? 3);
const glob = path.join(landing, 'usage_events_stream', '*.jsonl');
// Every field as text, as bronze reads it (typed later); a line that is not a JSON object is skipped here.
const COLUMNS = [
  'event_id',
  'timestamp',
  'org_id',
  'resource_id',
  'service',
  'region',
  'metric',
  'value',
  'unit',
  'cost_usd_increment',
  'schema_version',
  'carbon_kg',
  'genai_tokens',
]
  .map((c) => `'${c}': 'VARCHAR'`)
  .join(', ');
for (let i = 1; i <= runs; i++) {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'cpa-floor-'));
  const db = await DuckDBInstance.create(':memory:', { threads: '2', memory_limit: '4GB' });
  const conn = await db.connect();
  const t = performance.now();
  await conn.run(
    `copy (select *, try_cast("timestamp" as timestamptz)::date as usage_date
           from read_json('${glob}', format = 'newline_delimited', ignore_errors = true, columns = {${COLUMNS}}))
     to '${out}' (format parquet, partition_by (usage_date))`,
  );
  const s = (performance.now() - t) / 1000;
  const [row] = (
    await conn.runAndReadAll(`select count(*)::bigint as n from read_parquet('${out}/**/*.parquet')`)
  ).getRowObjectsJson();
  console.log(`floor run ${i}: ${s.toFixed(2)} s, ${row.n} rows`);
  conn.closeSync();
  db.closeSync();
  fs.rmSync(out, { recursive: true, force: true });
}
