import fs from 'node:fs';
import path from 'node:path';
import type { DuckDBInstance } from '@duckdb/node-api';
import { loadConfig } from '../../config/env';
import { createActivities } from '../../activities';
import { readEventManifest } from '../../activities/bronze';
import { createDuckDb } from '../../lake/duckdb';
import { withLake } from '../../activities/common';
import { tmpDir } from '../support/env';

/**
 * The events manifest remembers each file's listing version (size + mtime) next to its sha256: an unchanged file
 * is not re-read on the next run, a touched file with the same bytes is recognised by its hash and not ingested
 * again, and a changed file (even of the same size) is.
 */
describe('events manifest', () => {
  let db: DuckDBInstance;
  let acts: ReturnType<typeof createActivities>;
  const config = loadConfig({ CPA_LAKE_ROOT: '/tmp/unused' });
  beforeAll(async () => {
    db = await createDuckDb(config);
    acts = createActivities({ config, db });
  });
  afterAll(() => db.closeSync());

  const ev = (id: string, cost: string) =>
    `{"event_id": "${id}", "timestamp": "2025-08-01T10:00:00Z", "org_id": "o", "service": "compute", "cost_usd_increment": ${cost}, "schema_version": 1}\n`;

  it('skips unchanged and touched files, ingests a changed file of the same size', async () => {
    const landing = tmpDir('manifest-landing');
    const lake = tmpDir('manifest-lake');
    const file = path.join(landing, 'usage_events_stream', 'events_part_0000.jsonl');
    fs.mkdirSync(path.dirname(file));
    fs.writeFileSync(file, ev('a', '1.5'));
    const t = { lake, landing, runId: 'r1' };
    expect((await acts.ingestEventFiles(t)).extra).toMatchObject({ files_ingested: 1, files_skipped: 0 });

    expect((await acts.ingestEventFiles({ ...t, runId: 'r2' })).extra).toMatchObject({
      files_ingested: 0,
      files_skipped: 1,
    });

    const later = new Date(Date.now() + 60_000);
    fs.utimesSync(file, later, later);
    expect((await acts.ingestEventFiles({ ...t, runId: 'r3' })).extra).toMatchObject({
      files_ingested: 0,
      files_skipped: 1,
    });
    const st = fs.statSync(file);
    const entry = await withLake(
      { config, db },
      lake,
      async (conn, l) => (await readEventManifest(conn, l))['usage_events_stream/events_part_0000.jsonl'],
    );
    expect(entry.version).toBe(`${st.size}-${Math.trunc(st.mtimeMs)}`);

    fs.writeFileSync(file, ev('b', '2.5'));
    const evenLater = new Date(Date.now() + 120_000);
    fs.utimesSync(file, evenLater, evenLater);
    expect(fs.statSync(file).size).toBe(st.size);
    const m = await acts.ingestEventFiles({ ...t, runId: 'r4' });
    expect(m.extra).toMatchObject({ files_ingested: 1, files_skipped: 0 });
    expect(m.rowsOut).toBe(2);
  });
});
