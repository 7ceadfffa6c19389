import { loadConfig } from '../../config/env';
import { acquireThreads, createDuckDb, currentThreads, withWork } from '../../lake/duckdb';

const config = (env: Record<string, string>) => loadConfig({ CPA_LAKE_ROOT: '/tmp/cpa-threads-test', ...env });

describe('DuckDB threads: one, all of them from the first heavy step on, one again when no work runs', () => {
  it('raises the count inside work and lowers it only after the last unit of work has ended', async () => {
    const cfg = config({ CPA_DUCKDB_THREADS: '2', CPA_DUCKDB_HEAVY_ROWS: '1000' });
    const db = await createDuckDb(cfg, { needS3: false });
    try {
      expect(await currentThreads(db)).toBe(1);
      await withWork(db, async () => {
        await acquireThreads(db, cfg, 999);
        expect(await currentThreads(db)).toBe(1);
      });

      // Two units: a heavy one raises the count; it stays while the other still runs, even after the heavy one ended.
      let endLight!: () => void;
      const light = withWork(db, () => new Promise<void>((r) => (endLight = r)));
      await withWork(db, async () => {
        await Promise.all([acquireThreads(db, cfg, 1000), acquireThreads(db, cfg, 5000)]);
        expect(await currentThreads(db)).toBe(2);
      });
      expect(await currentThreads(db)).toBe(2);
      endLight();
      await light;
      // The last unit ended: the next unit starts after the count is back to one (lowered while nothing ran).
      expect(await withWork(db, () => currentThreads(db))).toBe(1);

      // A failing unit ends too.
      await expect(
        withWork(db, async () => {
          await acquireThreads(db, cfg, 5000);
          throw new Error('step failed');
        }),
      ).rejects.toThrow('step failed');
      expect(await withWork(db, () => currentThreads(db))).toBe(1);
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
        await withWork(db, () => acquireThreads(db, cfg, 1_000_000));
        expect(await withWork(db, () => currentThreads(db))).toBe(threads);
      } finally {
        db.closeSync();
      }
    }
  });
});
