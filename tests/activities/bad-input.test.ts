import fs from 'node:fs';
import path from 'node:path';
import type { ApplicationFailure } from '@temporalio/common';
import { tableRef, withLakeSql } from '../support/lake-sql';
import { REFERENCE_LANDING, tmpDir } from '../support/env';
import { directActivities } from '../support/activities';
import { sanitizeUtf8 } from '../../activities/bronze';

/**
 * Bad input never crashes a worker and never loses a good record (SPEC §3, §12): a CSV that breaks its contract
 * is rejected whole with file, line and column and nothing written; bad event lines are quarantined with their
 * line number and every good line of the same file is ingested.
 */
describe('bad input', () => {
  const suite = directActivities();

  function target(landing: string): { lake: string; landing: string; runId: string } {
    return { lake: tmpDir('bad-lake'), landing, runId: 'test-run' };
  }

  async function rows(
    lake: string,
    layer: string,
    table: string,
    sql = 'select * from t',
  ): Promise<Record<string, unknown>[]> {
    if (!fs.existsSync(path.join(lake, '_meta', 'catalog.sqlite'))) return [];
    return withLakeSql(lake, async (q) => q(`with t as (select * from ${await tableRef(q, layer, table)}) ${sql}`));
  }

  async function rejection(p: Promise<unknown>): Promise<ApplicationFailure> {
    return p.then(
      () => {
        throw new Error('expected a rejection');
      },
      (e: unknown) => e as ApplicationFailure,
    );
  }

  it('rejects a CSV with a wrong header whole, naming file, line and column, and writes nothing', async () => {
    const landing = tmpDir('bad-header');
    fs.writeFileSync(
      path.join(landing, 'users.csv'),
      'user_id,org_id,e_mail,role,active,created_at,last_login\nuser_1,org_1,a@b.co,dev,True,2025-07-01,\n',
    );
    const t = target(landing);
    const err = await rejection(suite.acts.ingestCsvSource({ ...t, table: 'users' }));
    expect(err.type).toBe('ContractViolation');
    expect(err.nonRetryable).toBe(true);
    expect(err.message).toBe("users.csv line 1 column 3: expected header 'email', found 'e_mail'");
    expect(await rows(t.lake, 'bronze', 'users')).toEqual([]);
    expect(fs.existsSync(path.join(t.lake, 'bronze', 'users'))).toBe(false);
  });

  it('rejects a CSV with a missing column or an extra one at the right column', async () => {
    const landing = tmpDir('bad-cols');
    fs.writeFileSync(path.join(landing, 'nps_surveys.csv'), 'org_id,survey_date,nps_score\norg_1,2025-07-01,5\n');
    const err = await rejection(suite.acts.ingestCsvSource({ ...target(landing), table: 'nps_surveys' }));
    expect(err.message).toBe("nps_surveys.csv line 1 column 4: expected header 'comment', missing");
  });

  it('rejects a CSV whose value does not parse, with the data line and column, and keeps the previous bronze', async () => {
    const landing = tmpDir('bad-value');
    const t = target(landing);
    fs.copyFileSync(path.join(REFERENCE_LANDING, 'support_tickets.csv'), path.join(landing, 'support_tickets.csv'));
    await suite.acts.ingestCsvSource({ ...t, table: 'tickets' });
    const before = await rows(t.lake, 'bronze', 'tickets', 'select count(*)::int n from t');
    const lines = fs.readFileSync(path.join(landing, 'support_tickets.csv'), 'utf8').split('\n');
    lines[9] = lines[9].replace(/,(True|False)$/, ',sometimes');
    fs.writeFileSync(path.join(landing, 'support_tickets.csv'), lines.join('\n'));
    const err = await rejection(suite.acts.ingestCsvSource({ ...t, table: 'tickets', runId: 'second' }));
    expect(err.message).toMatch(/^support_tickets\.csv line 10 column 8 \(sla_breached\): .*"sometimes"/);
    expect(await rows(t.lake, 'bronze', 'tickets', 'select count(*)::int n from t')).toEqual(before);
  });

  it('rejects an empty CSV and a CSV that is not UTF-8 with a clear message', async () => {
    const landing = tmpDir('bad-empty');
    fs.writeFileSync(path.join(landing, 'customers_orgs.csv'), '');
    expect((await rejection(suite.acts.ingestCsvSource({ ...target(landing), table: 'orgs' }))).message).toMatch(
      /^customers_orgs\.csv line 1 column 1: empty file/,
    );
    fs.writeFileSync(path.join(landing, 'resources.csv'), Buffer.from([0x72, 0x65, 0x73, 0xff, 0xfe, 0x0a]));
    expect((await rejection(suite.acts.ingestCsvSource({ ...target(landing), table: 'resources' }))).message).toBe(
      'resources.csv line 1 column 1: not valid UTF-8',
    );
  });

  it('quarantines malformed, truncated, binary and non-object JSON lines with file and line, and ingests the rest', async () => {
    const landing = tmpDir('bad-json');
    const dir = path.join(landing, 'usage_events_stream');
    fs.mkdirSync(dir);
    const good = (id: string) =>
      JSON.stringify({
        event_id: id,
        timestamp: '2025-08-01T10:00:00Z',
        org_id: 'org_a',
        resource_id: 'res_a',
        service: 'compute',
        region: 'us-east',
        metric: 'requests',
        value: 5,
        unit: 'count',
        cost_usd_increment: 0.5,
        schema_version: 1,
      });
    const content = Buffer.concat([
      Buffer.from(`${good('e1')}\n{"event_id": "e2", "timestamp": \n`),
      Buffer.from([0x00, 0xff, 0xfe, 0x41, 0x0a]),
      Buffer.from(`[1,2,3]\n\n${good('e3')}\n${good('e4').slice(0, 40)}`),
    ]);
    fs.writeFileSync(path.join(dir, 'events_part_0000.jsonl'), content);
    const t = target(landing);
    const m = await suite.acts.ingestEventFiles(t);
    expect(m.quarantined).toEqual({ malformed_json: 4 });
    const bronze = await rows(
      t.lake,
      'bronze',
      'usage_events',
      'select event_id, source_line from t order by source_line',
    );
    expect(bronze).toEqual([
      { event_id: 'e1', source_line: 1 },
      { event_id: 'e3', source_line: 6 },
    ]);
    const q = await rows(
      t.lake,
      'quarantine',
      'usage_events',
      'select rule, source_file, source_line from t order by source_line',
    );
    expect(q).toEqual(
      [2, 3, 4, 7].map((line) => ({
        rule: 'malformed_json',
        source_file: 'usage_events_stream/events_part_0000.jsonl',
        source_line: line,
      })),
    );
  });

  it('keeps one bronze row per event_id across files and across runs (first seen wins)', async () => {
    const landing = tmpDir('dupes');
    const dir = path.join(landing, 'usage_events_stream');
    fs.mkdirSync(dir);
    const ev = (id: string, cost: number) =>
      JSON.stringify({
        event_id: id,
        timestamp: '2025-08-01T10:00:00Z',
        org_id: 'o',
        service: 'compute',
        cost_usd_increment: cost,
        schema_version: 1,
      });
    fs.writeFileSync(path.join(dir, 'events_part_0000.jsonl'), `${ev('a', 1)}\n${ev('b', 2)}\n`);
    fs.writeFileSync(path.join(dir, 'events_part_0001.jsonl'), `${ev('b', 99)}\n${ev('c', 3)}\n`);
    const t = target(landing);
    const first = await suite.acts.ingestEventFiles(t);
    expect(first.extra.duplicates_dropped).toBe(1);
    fs.writeFileSync(path.join(dir, 'events_part_0002.jsonl'), `${ev('a', 42)}\n${ev('d', 4)}\n`);
    const second = await suite.acts.ingestEventFiles({ ...t, runId: 'r2' });
    expect(second.extra).toMatchObject({ files_ingested: 1, files_skipped: 2, duplicates_dropped: 1 });
    const bronze = await rows(
      t.lake,
      'bronze',
      'usage_events',
      'select event_id, cost_usd_increment::double c from t order by event_id',
    );
    expect(bronze).toEqual([
      { event_id: 'a', c: 1 },
      { event_id: 'b', c: 2 },
      { event_id: 'c', c: 3 },
      { event_id: 'd', c: 4 },
    ]);
    // A late file whose key sorts before events_part_0001 displaces its row of c; a new day comes with it. Bronze is
    // appended to (SPEC §9a), so the day's recorded version must still be exactly its rows' count and hash.
    fs.writeFileSync(
      path.join(dir, 'events_part_00005.jsonl'),
      `${ev('c', 30)}\n${ev('e', 5)}\n${ev('f', 6).replace('2025-08-01', '2025-08-02')}\n`,
    );
    const third = await suite.acts.ingestEventFiles({ ...t, runId: 'r3' });
    expect(third.extra).toMatchObject({ files_ingested: 1, duplicates_displaced: 1 });
    expect(
      await rows(t.lake, 'bronze', 'usage_events', 'select event_id, cost_usd_increment::double c from t order by 1'),
    ).toEqual([
      { event_id: 'a', c: 1 },
      { event_id: 'b', c: 2 },
      { event_id: 'c', c: 30 },
      { event_id: 'd', c: 4 },
      { event_id: 'e', c: 5 },
      { event_id: 'f', c: 6 },
    ]);
    const actual = await rows(
      t.lake,
      'bronze',
      'usage_events',
      `select usage_date::varchar as p, count(*)::integer as n, sum(hash(t))::varchar as h from t group by 1 order by 1`,
    );
    const recorded = await withLakeSql(t.lake, async (q) =>
      q(
        `select partition as p, rows::integer as n, hash as h from ${await tableRef(q, 'meta', 'partitions')}
         where layer = 'bronze' and table_name = 'usage_events'
         qualify row_number() over (partition by partition order by written_at desc, deleted desc) = 1
         order by 1`,
      ),
    );
    expect(actual).toHaveLength(2);
    expect(recorded).toEqual(actual);
  });

  it('refuses file keys that escape the landing root', async () => {
    const landing = tmpDir('traversal');
    for (const key of ['../../etc/passwd', 'usage_events_stream/../../x.jsonl', '/etc/passwd']) {
      const err = await rejection(suite.acts.ingestEventFiles({ ...target(landing), keys: [key] }));
      expect(err.message).toMatch(/outside the landing root|is not an events file/);
    }
  });

  it('counts events without a day (bad timestamps) once: a later run judges only its own, not all history again', async () => {
    const landing = tmpDir('bad-ts-landing');
    for (const f of ['customers_orgs.csv', 'resources.csv']) {
      fs.copyFileSync(path.join(REFERENCE_LANDING, f), path.join(landing, f));
    }
    fs.mkdirSync(path.join(landing, 'usage_events_stream'));
    const line = (id: string, ts: string) =>
      `{"event_id": "${id}", "timestamp": "${ts}", "org_id": "org_x", "resource_id": null, "service": "compute", ` +
      `"region": "us-east", "metric": "requests", "value": 1, "unit": "count", "cost_usd_increment": 0.5, "schema_version": 1}`;
    const file = (name: string, day: string, good: number, bad: number) =>
      fs.writeFileSync(
        path.join(landing, 'usage_events_stream', name),
        [
          ...Array.from({ length: good }, (_, i) =>
            line(`${name}-g${i}`, `${day}T10:${String(i % 60).padStart(2, '0')}:00Z`),
          ),
          ...Array.from({ length: bad }, (_, i) => line(`${name}-b${i}`, 'not-a-time')),
        ].join('\n') + '\n',
      );
    const lake = tmpDir('bad-ts-lake');
    const run = async (runId: string) => {
      const t = { lake, landing, runId };
      for (const table of ['orgs', 'resources']) await suite.acts.ingestCsvSource({ ...t, table });
      for (const table of ['orgs', 'resources']) await suite.acts.buildSilver({ ...t, table });
      await suite.acts.ingestEventFiles(t);
      return suite.acts.buildSilver({ ...t, table: 'usage_events' });
    };
    file('a.jsonl', '2025-08-01', 20, 3);
    const first = await run('run-1');
    expect(first.quarantined).toEqual({ bad_timestamp: 3 });
    expect(first.extra.rows_computed).toBe(23);
    file('b.jsonl', '2025-08-02', 20, 1);
    const second = await run('run-2');
    // The NULL partition (all bad timestamps so far) was recomputed, but only b.jsonl's one is new.
    expect(second.quarantined).toEqual({ bad_timestamp: 1 });
    expect(second.extra.rows_computed).toBe(21);
    const q = await rows(
      lake,
      'quarantine',
      'usage_events',
      `select rule, count(*)::integer as n from t group by rule`,
    );
    expect(q).toEqual([{ rule: 'bad_timestamp', n: 4 }]);
  });
});

describe('sanitizeUtf8', () => {
  const marker = (line: Buffer): string => `\u0000invalid UTF-8, base64:${line.toString('base64')}`;

  it('replaces exactly the lines that are not UTF-8, wherever they are, and keeps every other byte', () => {
    const bad = Buffer.from([0x41, 0xff, 0xfe]);
    const cases: Array<[Buffer[], string]> = [
      [[Buffer.from('a\n'), bad, Buffer.from('\nb\n')], `a\n${marker(bad)}\nb\n`],
      [[bad, Buffer.from('\nb')], `${marker(bad)}\nb`],
      [[Buffer.from('a\n'), bad], `a\n${marker(bad)}`],
      [
        [bad, Buffer.from('\n'), bad, Buffer.from('\r\n\n')],
        `${marker(bad)}\n${marker(Buffer.concat([bad, Buffer.from('\r')]))}\n\n`,
      ],
      [[Buffer.from('é ok\r\nno newline at end')], 'é ok\r\nno newline at end'],
    ];
    for (const [parts, expected] of cases) {
      expect(sanitizeUtf8(Buffer.concat(parts)).toString('utf8')).toBe(expected);
    }
  });
});
