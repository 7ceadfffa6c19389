import type { DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import type { Config } from '../config/env';
import { createDuckDb, ensureS3 } from './duckdb';
import { attachLake } from './lakehouse';
import type { AttachedLake } from './lakehouse';
import { isS3 } from './storage';

/**
 * Read access to a lake outside an activity (CLI commands, tests): one DuckDB instance per process, created on first
 * use, with the lake attached through its catalog like the workers do.
 */
let shared: Promise<DuckDBInstance> | undefined;

export function readerInstance(config: Config): Promise<DuckDBInstance> {
  shared ??= createDuckDb(config, { needS3: false });
  return shared;
}

/** Closes the shared reader instance (a CLI about to exit, a test suite's afterAll). */
export async function closeReader(): Promise<void> {
  const p = shared;
  shared = undefined;
  if (p) (await p).closeSync();
}

/** Runs `fn` with a connection (UTC) on which `lakeRoot` is attached. */
export async function withLakeReader<T>(
  config: Config,
  lakeRoot: string,
  fn: (conn: DuckDBConnection, lake: AttachedLake) => Promise<T>,
  db?: DuckDBInstance,
): Promise<T> {
  const instance = db ?? (await readerInstance(config));
  if (isS3(lakeRoot)) await ensureS3(instance, config);
  const lake = await attachLake(instance, config, lakeRoot);
  const conn = await instance.connect();
  try {
    await conn.run(`set TimeZone = 'UTC'`);
    return await fn(conn, lake);
  } finally {
    conn.closeSync();
  }
}
