import { loadConfig } from '../../config/env';
import { acquireThreads, createDuckDb, currentThreads } from '../../lake/duckdb';

const config = (env: Record<string, string>) => loadConfig({ CPA_LAKE_ROOT: '/tmp/cpa-threads-test', ...env });

describe('DuckDB threads: one until the first heavy step, then all of them (CPA_DUCKDB_HEAVY_ROWS)', () => {
  it('uses one thread for small steps, all of them from the first heavy step on, and never lowers the count', async () => {
    const cfg = config({ CPA_DUCKDB_THREADS: '2', CPA_DUCKDB_HEAVY_ROWS: '1000' });
    const db = await createDuckDb(cfg, { needS3: false });
    try {
      expect(await currentThreads(db)).toBe(1);
      await acquireThreads(db, cfg, 999);
      expect(await currentThreads(db)).toBe(1);
      // Two heavy steps at once raise it once.
      await Promise.all([acquireThreads(db, cfg, 1000), acquireThreads(db, cfg, 5000)]);
      expect(await currentThreads(db)).toBe(2);
      // Lowering it while other connections run queries deadlocked DuckDB (lake/duckdb.ts): a small step keeps two.
      await acquireThreads(db, cfg, 10);
      expect(await currentThreads(db)).toBe(2);
    } finally {
      db.closeSync();
    }
  });

  it('keeps CPA_DUCKDB_THREADS throughout when the threshold is 0 or there is one thread', async () => {
    for (const [env, threads] of [
      [{ CPA_DUCKDB_THREADS: '2', CPA_DUCKDB_HEAVY_ROWS: '0' }, 2],
      [{ CPA_DUCKDB_THREADS: '1', CPA_DUCKDB_HEAVY_ROWS: '10' }, 1],
    ] as const) {
      const cfg = config(env);
      const db = await createDuckDb(cfg, { needS3: false });
      try {
        expect(await currentThreads(db)).toBe(threads);
        await acquireThreads(db, cfg, 1_000_000);
        expect(await currentThreads(db)).toBe(threads);
      } finally {
        db.closeSync();
      }
    }
  });
});
