import type { DuckDBInstance } from '@duckdb/node-api';
import { loadConfig } from '../../config/env';
import type { Config } from '../../config/env';
import { createActivities } from '../../activities';
import type { Activities } from '../../activities';
import { createDuckDb } from '../../lake/duckdb';

/**
 * The real activities driven directly (no Temporal), on one DuckDB instance per suite: created before the suite's
 * tests, closed after them. Call at describe level; `acts` and `db` are set once `beforeAll` has run.
 */
export function directActivities(): { config: Config; db: DuckDBInstance; acts: Activities } {
  const suite = { config: loadConfig({ CPA_LAKE_ROOT: '/tmp/unused' }) } as {
    config: Config;
    db: DuckDBInstance;
    acts: Activities;
  };
  beforeAll(async () => {
    suite.db = await createDuckDb(suite.config);
    suite.acts = createActivities({ config: suite.config, db: suite.db });
  });
  afterAll(() => suite.db?.closeSync());
  return suite;
}
