import { loadConfig } from '../../config/env';
import { acquireThreads, createDuckDb, currentThreads, withThreads } from '../../lake/duckdb';

const config = (env: Record<string, string>) => loadConfig({ CPA_LAKE_ROOT: '/tmp/cpa-threads-test', ...env });

describe('DuckDB threads follow the work in flight (CPA_DUCKDB_HEAVY_ROWS)', () => {
  it('uses one thread for small steps and all of them while a heavy step runs, until the last one ends', async () => {
    const cfg = config({ CPA_DUCKDB_THREADS: '2', CPA_DUCKDB_HEAVY_ROWS: '1000' });
    const db = await createDuckDb(cfg, { needS3: false });
    try {
      expect(await currentThreads(db)).toBe(1);
      expect(await withThreads(db, cfg, 999, () => currentThreads(db))).toBe(1);
      expect(await withThreads(db, cfg, 1000, () => currentThreads(db))).toBe(2);
      expect(await currentThreads(db)).toBe(1);

      // Two heavy steps overlap: the first to end leaves the threads to the other.
      const releaseA = await acquireThreads(db, cfg, 5000);
      const releaseB = await acquireThreads(db, cfg, 5000);
      expect(await currentThreads(db)).toBe(2);
      await releaseA();
      await releaseA(); // a second call of the same release changes nothing
      expect(await currentThreads(db)).toBe(2);
      await releaseB();
      expect(await currentThreads(db)).toBe(1);

      // A failing heavy step gives its threads back too.
      await expect(
        withThreads(db, cfg, 5000, async () => {
          throw new Error('step failed');
        }),
      ).rejects.toThrow('step failed');
      expect(await currentThreads(db)).toBe(1);
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
        expect(await withThreads(db, cfg, 1_000_000, () => currentThreads(db))).toBe(threads);
        expect(await currentThreads(db)).toBe(threads);
      } finally {
        db.closeSync();
      }
    }
  });
});
