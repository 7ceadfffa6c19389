import { loadConfig } from '../../../config/env';
import { createDuckDb, sqlIdent } from '../../../lake/duckdb';
import { attachLake, publishTables } from '../../../lake/lakehouse';
import { isS3 } from '../../../lake/storage';
import { bigTableSql } from './big-table';

/**
 * A child process that publishes the big test table (big-table.ts) as `test.<table>` of a lake's DuckLake, for the
 * killed-write tests:
 *   node -r tsx/cjs publish-child.ts <lake> <table> <version> <rows> [pause-before-commit]
 * It prints `publishing` once the source rows are built and the lake is attached (the data files are written next,
 * inside the publish transaction), and `published` after the commit. With `pause-before-commit` it prints
 * `written` from inside the transaction once every data file is written, and then hangs there, waiting to be killed.
 */
async function main(): Promise<void> {
  const [lake, table, version, rows, mode] = process.argv.slice(2);
  const config = loadConfig({ ...process.env, CPA_LAKE_ROOT: lake });
  const db = await createDuckDb(config, { needS3: isS3(lake) });
  const attached = await attachLake(db, config, lake);
  const conn = await db.connect();
  // Not one of the pipeline's schemas: the test table never mixes with them. A no-op (no snapshot) once it exists.
  await conn.run(`create schema if not exists ${sqlIdent(attached.alias)}.test`);
  await conn.run(`create temp table _src as ${bigTableSql(version, Number(rows))}`);
  const pause =
    mode === 'pause-before-commit'
      ? [
          async (): Promise<void> => {
            process.stdout.write('written\n');
            // A pending promise alone would let Node exit: the timer keeps the process (and the transaction) alive.
            await new Promise<void>(() => setInterval(() => undefined, 60_000));
          },
        ]
      : undefined;
  process.stdout.write('publishing\n');
  await publishTables(
    { conn, lake: attached, lakeRoot: lake, runId: `child-${version}` },
    [{ layer: 'test', table, source: '_src', partitionBy: 'part' }],
    { step: `test.${table}`, extra: pause },
  );
  process.stdout.write('published\n');
  conn.closeSync();
  db.closeSync();
}

main().catch((e: unknown) => {
  process.stderr.write(`publish-child: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
