import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { ApplicationFailure } from '@temporalio/common';
import { EVENTS_PREFIX } from '../../activities/bronze';
import { listLanding, RefusedFileError, unsafeS3KeyReason } from '../../lake/storage';
import type { Storage, StoredObject } from '../../lake/storage';
import { hashLandingFile } from '../../worker/watcher';
import { REFERENCE_LANDING, tmpDir } from '../support/env';
import { tableRef, withLakeSql } from '../support/lake-sql';
import { directActivities } from '../support/activities';

/**
 * Hostile landing files (issue 9, SPEC §12): names DuckDB would expand as globs are read literally, exactly once;
 * anything but a regular file inside the landing root (symlinks in or out of it, FIFOs, devices, directories named
 * like files) is refused and reported, never read, and never costs a good file next to it a single record.
 */
describe('hostile landing files', () => {
  const suite = directActivities();
  const { config } = suite;

  /** A file's events: unique ids, one null id (dedup cannot hide a file read twice), costs summing to a known total. */
  function events(tag: string, n: number): { text: string; rows: number; cost: number } {
    const lines: string[] = [];
    let cost = 0;
    for (let i = 0; i < n; i++) {
      const c = Math.round((i + 1) * 1.25 * 100) / 100;
      cost += c;
      lines.push(
        JSON.stringify({
          event_id: i === 0 ? null : `${tag}-${i}`,
          timestamp: `2025-08-0${1 + (i % 3)}T10:00:00Z`,
          org_id: 'org_a',
          resource_id: 'res_a',
          service: 'compute',
          region: 'us-east',
          metric: 'requests',
          value: 1,
          unit: 'count',
          cost_usd_increment: c,
          schema_version: 1,
        }),
      );
    }
    return { text: lines.join('\n') + '\n', rows: n, cost: Math.round(cost * 100) / 100 };
  }

  async function q(lake: string, layer: string, table: string, sql: string): Promise<Record<string, unknown>[]> {
    if (!fs.existsSync(path.join(lake, '_meta', 'catalog.sqlite'))) return [];
    return withLakeSql(lake, async (run) => {
      const ref = await tableRef(run, layer, table);
      return ref.startsWith('lake.') ? run(`with t as (select * from ${ref}) ${sql}`) : [];
    });
  }

  async function perFile(lake: string): Promise<Record<string, { n: number; cost: number }>> {
    const rows = await q(
      lake,
      'bronze',
      'usage_events',
      `select source_file, count(*)::integer n, round(sum(cost_usd_increment)::double, 2) as cost from t group by 1`,
    );
    return Object.fromEntries(rows.map((r) => [String(r.source_file), { n: Number(r.n), cost: Number(r.cost) }]));
  }

  async function rejection(p: Promise<unknown>): Promise<ApplicationFailure> {
    return p.then(
      () => {
        throw new Error('expected a rejection');
      },
      (e: unknown) => e as ApplicationFailure,
    );
  }

  // Each glob character in several positions, with decoys the pattern would match, plus spaces, quotes and unicode.
  const GLOB_NAMES = [
    'a[1].jsonl',
    '[ab]c.jsonl',
    'part[0-9]x.jsonl',
    'x*.jsonl',
    '*.jsonl',
    'st**ar.jsonl',
    'q?.jsonl',
    '??.jsonl',
    '{a,b}.jsonl',
    'b{1}.jsonl',
    'sp ace.jsonl',
    "it's.jsonl",
    '~tilde.jsonl',
    'ünï©ødé 日本.jsonl',
    'sub[1]/inner?.jsonl',
  ];
  const DECOYS = [
    'a1.jsonl',
    'ac.jsonl',
    'bc.jsonl',
    'part5x.jsonl',
    'xy.jsonl',
    'qz.jsonl',
    'ab.jsonl',
    'a.jsonl',
    'sub1/innerz.jsonl',
  ];

  it('reads every file whose name has glob characters exactly once, as it is, in batch runs and by key', async () => {
    const landing = tmpDir('glob-landing');
    const expected: Record<string, { n: number; cost: number }> = {};
    [...GLOB_NAMES, ...DECOYS].forEach((name, k) => {
      const file = path.join(landing, EVENTS_PREFIX, name);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      const e = events(`f${k}`, 3 + (k % 4));
      fs.writeFileSync(file, e.text);
      expected[`${EVENTS_PREFIX}/${name}`] = { n: e.rows, cost: e.cost };
    });
    const lake = tmpDir('glob-lake');
    const m = await suite.acts.ingestEventFiles({ lake, landing, runId: 'r1' });
    expect(m.extra.files_ingested).toBe(GLOB_NAMES.length + DECOYS.length);
    expect(m.quarantined.malformed_json ?? 0).toBe(0);
    expect(await perFile(lake)).toEqual(expected);
    // Every file is recorded with the partitions its rows fell in, so a later change is found and retried.
    const landed = await q(lake, 'meta', 'landed_files', `select key, partitions from t`);
    expect(landed).toHaveLength(GLOB_NAMES.length + DECOYS.length);
    for (const r of landed) expect((r.partitions as string[]).length).toBeGreaterThan(0);
    // A re-run reads nothing again and changes nothing.
    const again = await suite.acts.ingestEventFiles({ lake, landing, runId: 'r2' });
    expect(again.extra).toMatchObject({ files_ingested: 0, files_skipped: GLOB_NAMES.length + DECOYS.length });
    expect(await perFile(lake)).toEqual(expected);

    // By key (cpa ingest-file, the watcher): exactly that file, never a file its name matches as a pattern.
    const byKey = tmpDir('glob-key-lake');
    const sofar: Record<string, { n: number; cost: number }> = {};
    for (const name of ['*.jsonl', 'a[1].jsonl', 'q?.jsonl', 'sub[1]/inner?.jsonl']) {
      const key = `${EVENTS_PREFIX}/${name}`;
      await suite.acts.ingestEventFiles({ lake: byKey, landing, runId: 'k', keys: [key] });
      sofar[key] = expected[key];
      expect(await perFile(byKey)).toEqual(sofar);
    }
  });

  /** A landing with one good events file and every kind of entry that must be refused next to it. */
  function hostileLanding(): { landing: string; good: { n: number; cost: number }; refused: string[] } {
    const landing = tmpDir('hostile-landing');
    const outside = tmpDir('hostile-outside');
    const dir = path.join(landing, EVENTS_PREFIX);
    fs.mkdirSync(dir);
    const good = events('good', 7);
    fs.writeFileSync(path.join(dir, 'good.jsonl'), good.text);
    fs.writeFileSync(path.join(outside, 'secret.jsonl'), events('secret', 5).text);
    fs.mkdirSync(path.join(outside, 'dir'));
    fs.writeFileSync(path.join(outside, 'dir', 'e.jsonl'), events('outdir', 4).text);
    const refused: Record<string, () => void> = {
      'link-inside.jsonl': () => fs.symlinkSync(path.join(dir, 'good.jsonl'), path.join(dir, 'link-inside.jsonl')),
      'link-relative.jsonl': () => fs.symlinkSync('good.jsonl', path.join(dir, 'link-relative.jsonl')),
      'link-outside.jsonl': () =>
        fs.symlinkSync(path.join(outside, 'secret.jsonl'), path.join(dir, 'link-outside.jsonl')),
      'passwd.jsonl': () => fs.symlinkSync('/etc/passwd', path.join(dir, 'passwd.jsonl')),
      'devnull.jsonl': () => fs.symlinkSync('/dev/null', path.join(dir, 'devnull.jsonl')),
      'dangling.jsonl': () => fs.symlinkSync(path.join(outside, 'missing'), path.join(dir, 'dangling.jsonl')),
      'fifo.jsonl': () => execFileSync('mkfifo', [path.join(dir, 'fifo.jsonl')]),
      'dir.jsonl': () => {
        fs.mkdirSync(path.join(dir, 'dir.jsonl'));
        fs.writeFileSync(path.join(dir, 'dir.jsonl', 'inner.jsonl'), events('inner', 2).text);
      },
      'linkdir.jsonl': () => fs.symlinkSync(path.join(outside, 'dir'), path.join(dir, 'linkdir.jsonl')),
    };
    for (const make of Object.values(refused)) make();
    // A linked directory that does not look like a file is not walked (its files resolve outside the root anyway).
    fs.symlinkSync(path.join(outside, 'dir'), path.join(dir, 'outdir'));
    return { landing, good: { n: good.rows, cost: good.cost }, refused: Object.keys(refused) };
  }

  it('refuses symlinks, FIFOs, devices and directories in a batch run, reports each, and ingests the good file fully', async () => {
    const { landing, good, refused } = hostileLanding();
    const lake = tmpDir('hostile-lake');
    const warned = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    const m = await suite.acts.ingestEventFiles({ lake, landing, runId: 'r1' });
    // One log line per refused entry, naming its key and why.
    const lines = warned.mock.calls.map((c) => String(c[0]));
    warned.mockRestore();
    expect(lines.sort()).toEqual(
      [...refused]
        .sort()
        .map((n) => expect.stringMatching(new RegExp(`landing file ${EVENTS_PREFIX}/${n} refused: it is a`))),
    );
    expect(m.extra.files_refused).toBe(refused.length);
    expect(m.extra.files_ingested).toBe(1);
    expect(m.quarantined.malformed_json ?? 0).toBe(0);
    expect(await perFile(lake)).toEqual({ [`${EVENTS_PREFIX}/good.jsonl`]: good });
    expect(await q(lake, 'quarantine', 'usage_events', 'select * from t')).toEqual([]);
    jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    const again = await suite.acts.ingestEventFiles({ lake, landing, runId: 'r2' });
    jest.restoreAllMocks();
    expect(again.extra).toMatchObject({ files_refused: refused.length, files_ingested: 0, files_skipped: 1 });
  });

  it('refuses each of them by key (ingest-file, the watcher) as bad input naming the key and why, without reading it', async () => {
    const { landing, refused } = hostileLanding();
    const keys = [...refused, 'outdir/e.jsonl'].map((n) => `${EVENTS_PREFIX}/${n}`);
    const lake = tmpDir('hostile-key-lake');
    for (const key of keys) {
      const err = await rejection(suite.acts.ingestEventFiles({ lake, landing, runId: 'k', keys: [key] }));
      expect({ key, type: err.type, nonRetryable: err.nonRetryable }).toEqual({
        key,
        type: 'ContractViolation',
        nonRetryable: true,
      });
      expect(err.message).toContain(`landing file ${key} refused: `);
      expect(await perFile(lake)).toEqual({});
      const hashed = await hashLandingFile(config, landing, key).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(hashed).toBeInstanceOf(RefusedFileError);
    }
  });

  it('refuses CSV snapshots that are symlinks (in or out of the root), FIFOs or directories, keeping the rest', async () => {
    const landing = tmpDir('hostile-csv');
    const outside = tmpDir('hostile-csv-outside');
    fs.copyFileSync(path.join(REFERENCE_LANDING, 'users.csv'), path.join(outside, 'users.csv'));
    fs.symlinkSync(path.join(outside, 'users.csv'), path.join(landing, 'users.csv'));
    fs.copyFileSync(path.join(REFERENCE_LANDING, 'resources.csv'), path.join(landing, 'resources-real.csv'));
    fs.symlinkSync('resources-real.csv', path.join(landing, 'resources.csv'));
    execFileSync('mkfifo', [path.join(landing, 'nps_surveys.csv')]);
    fs.mkdirSync(path.join(landing, 'support_tickets.csv'));
    fs.symlinkSync('/dev/zero', path.join(landing, 'marketing_touches.csv'));
    fs.copyFileSync(path.join(REFERENCE_LANDING, 'customers_orgs.csv'), path.join(landing, 'customers_orgs.csv'));
    const lake = tmpDir('hostile-csv-lake');
    jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    for (const table of ['users', 'resources', 'nps_surveys', 'tickets', 'marketing_touches']) {
      const m = await suite.acts.ingestCsvSource({ lake, landing, runId: 'r', table });
      expect({ table, refused: m.extra.files_refused, rows: m.rowsOut }).toEqual({ table, refused: 1, rows: 0 });
    }
    jest.restoreAllMocks();
    const orgs = await suite.acts.ingestCsvSource({ lake, landing, runId: 'r', table: 'orgs' });
    expect(orgs.extra.files_refused).toBeUndefined();
    const lines = fs.readFileSync(path.join(REFERENCE_LANDING, 'customers_orgs.csv'), 'utf8').trim().split('\n');
    expect(orgs.rowsOut).toBe(lines.length - 1);
    // Nothing of the refused file reached bronze (the run creates its tables ahead, so users exists, empty).
    expect(await q(lake, 'bronze', 'users', 'select count(*)::integer n from t')).toEqual([{ n: 0 }]);
  });

  it('refuses S3 keys a filesystem would read differently (.., ., empty segments, backslashes)', async () => {
    const keys = [
      'ok.jsonl',
      'a/../b.jsonl',
      '../x.jsonl',
      './x.jsonl',
      'a//b.jsonl',
      '/abs.jsonl',
      'a\\b.jsonl',
      'd/ok2.jsonl',
    ];
    const fake = {
      kind: 's3',
      list: async (): Promise<StoredObject[]> =>
        keys.map((key) => ({ key, uri: `s3://b/landing/${EVENTS_PREFIX}/${key}`, size: 1, version: '1' })),
    } as unknown as Storage;
    const { files, refused } = await listLanding(fake, `s3://b/landing/${EVENTS_PREFIX}`, (k) => k.endsWith('.jsonl'));
    expect(files.map((f) => f.key)).toEqual(['ok.jsonl', 'd/ok2.jsonl']);
    expect(refused.map((r) => r.key)).toEqual(keys.filter((k) => unsafeS3KeyReason(k) !== undefined));
    expect(refused).toHaveLength(6);
  });
});
