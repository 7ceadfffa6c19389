import { loadConfig } from '../../../config/env';
import { createDuckDb } from '../../../lake/duckdb';
import { attachLake, publishTable } from '../../../lake/lakehouse';

/**
 * A separate writer process for the DuckLake tests:
 *   node -r tsx/cjs writer-child.ts <lake> <table> <first-part> <parts> <rows-per-part> <rounds> [date]
 * Round r publishes partitions first-part … first-part+parts-1 of silver.<table> with `v = r` in every row (the
 * partitions it owns; others' are left alone), and prints `committed r` after each commit, then `done`. With `date`,
 * partition p is the day 2025-08-01 + p (so writers of different days share the month's data files).
 */
async function main(): Promise<void> {
  const [lakeRoot, table, first, parts, rows, rounds, kind] = process.argv.slice(2);
  const part = kind === 'date' ? `date '2025-08-01' + p::integer` : 'p::integer';
  const config = loadConfig({ ...process.env, CPA_LAKE_ROOT: lakeRoot, CPA_DUCKDB_THREADS: '1' });
  const db = await createDuckDb(config, { needS3: false });
  const lake = await attachLake(db, config, lakeRoot);
  const conn = await db.connect();
  const lo = Number(first);
  const hi = lo + Number(parts) - 1;
  for (let r = 1; r <= Number(rounds); r++) {
    await conn.run(
      `create or replace temp table _src as
       select ${part} as part, i::bigint as i, ${r}::integer as v, repeat('x', 200) as pad
       from range(${lo}, ${hi + 1}) a(p), range(${Number(rows)}) b(i)`,
    );
    await publishTable(
      { conn, lake, lakeRoot, runId: `child-${lo}-${r}` },
      { layer: 'silver', table, source: '_src', partitionBy: 'part', owns: (p) => owned(p, lo, hi, kind) },
    );
    process.stdout.write(`committed ${r}\n`);
  }
  process.stdout.write('done\n');
  conn.closeSync();
  db.closeSync();
}

/** Whether partition `p` (an integer, or with `date` a day) is one of this writer's. */
function owned(p: string, lo: number, hi: number, kind?: string): boolean {
  const n = kind === 'date' ? (Date.parse(p) - Date.parse('2025-08-01')) / 86_400_000 : Number(p);
  return n >= lo && n <= hi;
}

main().catch((e: unknown) => {
  process.stderr.write(`writer-child: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
