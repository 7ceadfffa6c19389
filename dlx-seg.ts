import { loadConfig } from './config/env';
import { createDuckDb } from './lake/duckdb';
import { attachLake, publishTable } from './lake/lakehouse';
(async () => {
  for (let k = 0; k < 30; k++) {
    const root = `/tmp/dlx/seg${k % 3}`;
    require('fs').rmSync(root, { recursive: true, force: true });
    const config = loadConfig({ CPA_LAKE_ROOT: root });
    const db = await createDuckDb(config);
    const lake = await attachLake(db, config, root);
    const conns = await Promise.all([db.connect(), db.connect(), db.connect()]);
    await Promise.all(conns.map(async (conn, i) => {
      await conn.run(`create temp table src as select i, 'x' || i as s from range(100) t(i)`);
      await publishTable({ conn, lake, lakeRoot: root, runId: 'r' }, { layer: 'bronze', table: `t${i}`, source: 'src' });
    }));
    for (const c of conns) c.closeSync();
    db.closeSync();
    process.stdout.write('.');
  }
  console.log('ok');
})();
