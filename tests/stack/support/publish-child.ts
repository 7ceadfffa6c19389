import { loadConfig } from '../../../config/env';
import { publishTable } from '../../../lake/catalog';
import { createDuckDb } from '../../../lake/duckdb';
import { isS3, storageFor } from '../../../lake/storage';
import type { Storage } from '../../../lake/storage';
import { bigTableSql } from './big-table';

/**
 * A child process that publishes the big test table (big-table.ts) to a lake, for the killed-write tests:
 *   node -r tsx/cjs publish-child.ts <lake> <table> <version> <rows> [pause-after-first-promote]
 * It prints `staging` right before the publish starts (the COPY to staging comes first), `promoted <key>` after a
 * promoted file when pausing (and then hangs, waiting to be killed), and `published` when done.
 */
async function main(): Promise<void> {
  const [lake, table, version, rows, mode] = process.argv.slice(2);
  const config = loadConfig({ ...process.env, CPA_LAKE_ROOT: lake });
  const db = await createDuckDb(config, { needS3: isS3(lake) });
  const conn = await db.connect();
  await conn.run(`create temp table _src as ${bigTableSql(version, Number(rows))}`);
  let storage: Storage = storageFor(lake, config);
  if (mode === 'pause-after-first-promote') {
    const inner = storage;
    let started = 0;
    storage = Object.assign(Object.create(inner) as Storage, {
      copy: async (src: string, dst: string): Promise<void> => {
        if (started++ >= 1) return new Promise<void>(() => undefined);
        await inner.copy(src, dst);
        process.stdout.write(`promoted ${dst}\n`);
      },
    });
  }
  process.stdout.write('staging\n');
  await publishTable(
    { conn, storage, lakeRoot: lake, runId: `child-${version}` },
    { layer: 'test', table, source: '_src', partitionBy: 'part' },
  );
  process.stdout.write('published\n');
  conn.closeSync();
  db.closeSync();
}

main().catch((e: unknown) => {
  process.stderr.write(`publish-child: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
