import fs from 'node:fs';
import path from 'node:path';
import type { ApplicationFailure } from '@temporalio/common';
import { loadConfig } from '../../config/env';
import { createActivities } from '../../activities';
import { CSV_MAX_ROW_BYTES } from '../../activities/bronze';
import { tableRef, withLakeSql } from '../support/lake-sql';
import { REFERENCE_LANDING, tmpDir } from '../support/env';
import { directActivities } from '../support/activities';

/**
 * Hostile values (issue 9, items 1, 2 and 5): a record that is valid on its own never stops the pipeline, a value
 * far from the data is quarantined with its rule id, file and line instead of overflowing a gold sum or stretching a
 * mart's date range, and no CSV row is dropped silently. Every case sits next to good records of the same files,
 * which must all reach gold, once, by count and by sum. Activities are driven directly (no Temporal).
 */
describe('hostile values', () => {
  const suite = directActivities();
  const { config } = suite;

  type Row = Record<string, unknown>;

  async function rows(lake: string, layer: string, table: string, sql = 'select * from t'): Promise<Row[]> {
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

  const EVENT_FILE = 'usage_events_stream/hostile_0000.jsonl';

  /** A JSONL event; `over` replaces fields. */
  function event(id: string, over: Record<string, unknown> = {}): string {
    return JSON.stringify({
      event_id: id,
      timestamp: '2025-08-01T10:00:00Z',
      org_id: 'org_good',
      resource_id: null,
      service: 'compute',
      region: 'us-east',
      metric: 'requests',
      value: 10,
      unit: 'count',
      cost_usd_increment: 1.25,
      schema_version: 2,
      carbon_kg: 0.5,
      ...over,
    });
  }

  /** Landing with the reference orgs and resources and one events file of `lines`. */
  function landingWith(label: string, lines: string[], csv: Record<string, string> = {}): string {
    const landing = tmpDir(label);
    for (const f of ['customers_orgs.csv', 'resources.csv']) {
      fs.copyFileSync(path.join(REFERENCE_LANDING, f), path.join(landing, f));
    }
    for (const [f, content] of Object.entries(csv)) fs.writeFileSync(path.join(landing, f), content);
    fs.mkdirSync(path.join(landing, 'usage_events_stream'));
    fs.writeFileSync(path.join(landing, EVENT_FILE), lines.join('\n') + '\n');
    return landing;
  }

  const USAGE_MARTS = [
    'org_daily_usage_by_service',
    'cost_anomaly_mart',
    'genai_tokens_by_org_date',
    'org_service_cost_summary',
  ];

  /** Bronze → silver → gold for events (and billing/tickets when landed), the way the daily pipeline orders them. */
  async function pipeline(landing: string, extra: { silver?: string[]; gold?: string[] } = {}): Promise<string> {
    const lake = tmpDir('hostile-lake');
    const t = { lake, landing, runId: 'hostile-run' };
    const tables = ['orgs', 'resources', ...(extra.silver ?? [])];
    for (const table of tables) await suite.acts.ingestCsvSource({ ...t, table });
    for (const table of tables) await suite.acts.buildSilver({ ...t, table });
    await suite.acts.ingestEventFiles(t);
    await suite.acts.buildSilver({ ...t, table: 'usage_events' });
    for (const mart of [...USAGE_MARTS, ...(extra.gold ?? [])]) await suite.acts.buildGold({ ...t, mart });
    return lake;
  }

  /** Lines of the events file at 1-based `line` numbers, by rule, as silver quarantined them. */
  async function quarantined(lake: string): Promise<Row[]> {
    return rows(
      lake,
      'quarantine',
      'usage_events',
      'select rule, source_file, source_line from t order by source_line',
    );
  }

  it('quarantines absurd magnitudes of every summed event column and keeps every good event of the same file', async () => {
    // Per column several magnitudes, each twice in one (org, day, service): two of them overflowed gold's DECIMAL(18,6)
    // / DECIMAL(18,9) / BIGINT sums before, and stopped the pipeline for good.
    const absurd: Array<{ rule: string; over: Record<string, unknown> }> = [];
    for (const cost of [999999999999.0, 5e11, 1e7]) {
      absurd.push({ rule: 'implausible_cost', over: { cost_usd_increment: cost } });
    }
    for (const [metric, value] of [
      ['requests', 999999999999],
      ['cpu_hours', 4e11],
      ['storage_gb_hours', -9e11],
      ['requests', '2e7'],
    ] as const) {
      absurd.push({ rule: 'implausible_value', over: { metric, value } });
    }
    for (const carbon of [999999999.0, 123456789.5, -5000]) {
      absurd.push({ rule: 'implausible_carbon', over: { carbon_kg: carbon } });
    }
    for (const tokens of [5e18, 4611686018427387904, 2e9]) {
      absurd.push({ rule: 'implausible_tokens', over: { service: 'genai', metric: 'tokens', genai_tokens: tokens } });
    }
    const lines: string[] = [];
    const expected: Row[] = [];
    // good events: days 2025-08-01..03, two services; the same (org, day, service) as the absurd ones
    for (let d = 1; d <= 3; d++) {
      for (const service of ['compute', 'genai']) {
        for (let k = 0; k < 4; k++) {
          lines.push(
            event(`good-${d}-${service}-${k}`, {
              timestamp: `2025-08-0${d}T1${k}:00:00Z`,
              service,
              ...(service === 'genai' ? { metric: 'tokens', genai_tokens: 1000 + k } : {}),
            }),
          );
        }
      }
    }
    absurd.forEach((a, i) => {
      for (const copy of [0, 1]) {
        lines.push(event(`absurd-${i}-${copy}`, { timestamp: `2025-08-02T0${copy}:30:00Z`, ...a.over }));
        expected.push({ rule: a.rule, source_file: EVENT_FILE, source_line: lines.length });
      }
    });
    const started = Date.now();
    const lake = await pipeline(landingWith('overflow', lines));
    const elapsed = Date.now() - started;
    expect(await quarantined(lake)).toEqual(expected);
    // every good event in gold, once: 4 events per (day, service), cost 1.25 each, requests 10 each (compute)
    expect(
      await rows(
        lake,
        'gold',
        'org_daily_usage_by_service',
        `select usage_date::varchar d, service, event_count::integer n, total_cost_usd::varchar c,
                total_requests::varchar req, genai_tokens::varchar tok, carbon_kg::varchar carbon
         from t order by d, service`,
      ),
    ).toEqual(
      [1, 2, 3].flatMap((d) => [
        {
          d: `2025-08-0${d}`,
          service: 'compute',
          n: 4,
          c: '5.000000',
          req: '40.000000',
          tok: '0',
          carbon: '2.000000000',
        },
        {
          d: `2025-08-0${d}`,
          service: 'genai',
          n: 4,
          c: '5.000000',
          req: '0.000000',
          tok: '4006',
          carbon: '2.000000000',
        },
      ]),
    );
    expect(
      await rows(
        lake,
        'gold',
        'genai_tokens_by_org_date',
        `select sum(total_tokens)::integer tok, sum(genai_events)::integer n from t`,
      ),
    ).toEqual([{ tok: 3 * 4006, n: 12 }]);
    expect(
      await rows(
        lake,
        'gold',
        'org_service_cost_summary',
        `select summary_date::varchar d, service, cost_14d::varchar c from t where service = 'compute' order by d`,
      ),
    ).toEqual([
      { d: '2025-08-01', service: 'compute', c: '5.000000' },
      { d: '2025-08-02', service: 'compute', c: '10.000000' },
      { d: '2025-08-03', service: 'compute', c: '15.000000' },
    ]);
    expect(await rows(lake, 'gold', 'cost_anomaly_mart', `select count(*)::integer n from t`)).toEqual([{ n: 6 }]);
    expect(elapsed).toBeLessThan(60_000);
  });

  it('keeps events at the ceilings: many of them sum in gold without overflow', async () => {
    const { rules } = config;
    const lines = Array.from({ length: 20 }, (_, k) =>
      event(`max-${k}`, {
        timestamp: `2025-08-01T0${k % 10}:00:00Z`,
        cost_usd_increment: rules.maxEventCostUsd,
        value: rules.maxEventValue,
        carbon_kg: rules.maxEventCarbonKg,
      }),
    );
    const lake = await pipeline(landingWith('ceiling', lines));
    expect(await quarantined(lake)).toEqual([]);
    expect(
      await rows(
        lake,
        'gold',
        'org_daily_usage_by_service',
        `select total_cost_usd::varchar c, total_requests::varchar req, carbon_kg::varchar carbon from t`,
      ),
    ).toEqual([
      {
        c: `${20 * rules.maxEventCostUsd}.000000`,
        req: `${20 * rules.maxEventValue}.000000`,
        carbon: `${20 * rules.maxEventCarbonKg}.000000000`,
      },
    ]);
  });

  it('quarantines billing amounts and exchange rates that would overflow revenue, and keeps the other invoices', async () => {
    const billing = [
      'invoice_id,org_id,month,subtotal,credits,taxes,currency,exchange_rate_to_usd',
      'inv_1,org_b,2025-07-01,100.50,1.00,21.00,USD,1.0',
      'inv_2,org_b,2025-07-01,999999999999.0,,0,USD,1.0',
      'inv_3,org_b,2025-07-01,999999999999.0,,0,USD,1.0',
      'inv_4,org_b,2025-07-01,200.00,,0,EUR,1.1',
      'inv_5,org_b,2025-07-01,50000000,0,0,USD,1.0',
      'inv_6,org_b,2025-07-01,10,0,0,ARS,999999999.0',
      'inv_7,org_b,2025-07-01,10,999999999999.0,0,EUR,1.1',
      'inv_8,org_b,2025-07-01,10,0,99999999.0,EUR,1.1',
      'inv_9,org_b,2025-08-01,5,0,0,USD,1.0',
    ].join('\n');
    const lake = await pipeline(landingWith('billing', [event('e1')], { 'billing_monthly.csv': `${billing}\n` }), {
      silver: ['billing'],
      gold: ['revenue_by_org_month'],
    });
    expect(
      await rows(lake, 'quarantine', 'billing', 'select rule, source_file, source_line from t order by source_line'),
    ).toEqual([
      ...[3, 4, 6].map((l) => ({ rule: 'implausible_amount', source_file: 'billing_monthly.csv', source_line: l })),
      { rule: 'implausible_fx', source_file: 'billing_monthly.csv', source_line: 7 },
      ...[8, 9].map((l) => ({ rule: 'implausible_amount', source_file: 'billing_monthly.csv', source_line: l })),
    ]);
    expect(
      await rows(
        lake,
        'gold',
        'revenue_by_org_month',
        `select billing_month::varchar m, gross_revenue_usd::varchar g, invoice_count::integer n from t order by m`,
      ),
    ).toEqual([
      { m: '2025-07-01', g: '320.500000', n: 2 },
      { m: '2025-08-01', g: '5.000000', n: 1 },
    ]);
  });

  it('quarantines timestamps far from the data; marts stay the size of the good data and the build is quick', async () => {
    const ahead = new Date(Date.now() + 3 * 86_400_000).toISOString().slice(0, 19) + 'Z';
    const far = ['2100-01-01T00:00:00Z', '9999-12-31T23:59:59Z', '0001-01-01T00:00:00Z', '1999-12-31T23:59:59Z', ahead];
    const lines: string[] = [];
    for (let d = 1; d <= 3; d++) {
      for (const org of ['org_a', 'org_b'])
        lines.push(event(`good-${d}-${org}`, { org_id: org, timestamp: `2025-08-0${d}T12:00:00Z` }));
    }
    const expected: Row[] = [];
    far.forEach((ts, i) => {
      for (const org of ['org_a', 'org_new']) {
        lines.push(event(`far-${i}-${org}`, { org_id: org, timestamp: ts }));
        expected.push({ rule: 'implausible_timestamp', source_file: EVENT_FILE, source_line: lines.length });
      }
    });
    const tickets = [
      'ticket_id,org_id,category,severity,created_at,resolved_at,csat,sla_breached',
      'tkt_1,org_a,billing,low,2025-08-01,2025-08-02,4.0,False',
      'tkt_2,org_a,billing,low,2100-01-01,,4.0,False',
      'tkt_3,org_a,billing,low,0001-01-01,,4.0,False',
      'tkt_4,org_a,billing,high,2025-08-03,,,True',
    ].join('\n');
    const started = Date.now();
    const lake = await pipeline(landingWith('far-dates', lines, { 'support_tickets.csv': `${tickets}\n` }), {
      silver: ['tickets'],
      gold: ['tickets_by_org_date'],
    });
    const elapsed = Date.now() - started;
    expect(await quarantined(lake)).toEqual(expected);
    for (const [mart, col] of [
      ['org_daily_usage_by_service', 'usage_date'],
      ['cost_anomaly_mart', 'usage_date'],
      ['genai_tokens_by_org_date', 'usage_date'],
      ['org_service_cost_summary', 'summary_date'],
    ]) {
      const [r] = await rows(
        lake,
        'gold',
        mart,
        `select min(${col})::varchar lo, max(${col})::varchar hi, count(*)::integer n from t`,
      );
      if (mart === 'genai_tokens_by_org_date') continue; // no genai events here
      expect({ mart, lo: r.lo, hi: r.hi }).toEqual({ mart, lo: '2025-08-01', hi: '2025-08-03' });
    }
    expect(
      await rows(
        lake,
        'gold',
        'org_daily_usage_by_service',
        `select sum(event_count)::integer n, sum(total_cost_usd)::varchar c from t`,
      ),
    ).toEqual([{ n: 6, c: '7.500000' }]);
    expect(await rows(lake, 'gold', 'org_service_cost_summary', `select count(*)::integer n from t`)).toEqual([
      { n: 6 },
    ]);
    expect(await rows(lake, 'quarantine', 'tickets', `select rule, source_line from t order by source_line`)).toEqual([
      { rule: 'implausible_timestamp', source_line: 3 },
      { rule: 'implausible_timestamp', source_line: 4 },
    ]);
    expect(
      await rows(
        lake,
        'gold',
        'tickets_by_org_date',
        `select ticket_date::varchar d, total_tickets::integer n from t order by d`,
      ),
    ).toEqual([
      { d: '2025-08-01', n: 1 },
      { d: '2025-08-03', n: 1 },
    ]);
    expect(elapsed).toBeLessThan(60_000);
  });

  it('names the table and the partitions when a model build still fails on data', async () => {
    // Bounds raised to what the types hold: two valid events then overflow DECIMAL(18,6) in gold.
    const loose = loadConfig({ CPA_LAKE_ROOT: '/tmp/unused', CPA_RULE_MAX_EVENT_COST_USD: '1e11' });
    const looseActs = createActivities({ config: loose, db: suite.db });
    const landing = landingWith('loose', [
      event('big-1', { cost_usd_increment: 99999999999 }),
      ...Array.from({ length: 11 }, (_, k) => event(`big-${k + 2}`, { cost_usd_increment: 99999999999 })),
    ]);
    const t = { lake: tmpDir('hostile-loose'), landing, runId: 'loose' };
    for (const table of ['orgs', 'resources']) {
      await looseActs.ingestCsvSource({ ...t, table });
      await looseActs.buildSilver({ ...t, table });
    }
    await looseActs.ingestEventFiles(t);
    await looseActs.buildSilver({ ...t, table: 'usage_events' });
    const err = await rejection(looseActs.buildGold({ ...t, mart: 'org_daily_usage_by_service' }));
    expect(err.nonRetryable).toBe(true);
    expect(err.message).toMatch(
      /^gold\.org_daily_usage_by_service usage_date 2025-08-01: Conversion Error: .*DECIMAL\(18,6\)/,
    );
  });

  describe('CSV rows are never dropped silently', () => {
    const header = 'org_id,survey_date,nps_score,comment';
    const survey = (i: number, comment = 'ok') => `org_${i},2025-07-01,${i % 100},${comment}`;

    async function ingestSurveys(label: string, content: string | Buffer) {
      const landing = tmpDir(label);
      fs.writeFileSync(path.join(landing, 'nps_surveys.csv'), content);
      const t = { lake: tmpDir(`${label}-lake`), landing, runId: 'csv' };
      return { t, run: () => suite.acts.ingestCsvSource({ ...t, table: 'nps_surveys' }) };
    }

    it.each([
      ['unquoted, 34 MB', (s: string) => s, 34_000_000],
      ['quoted, 34 MB', (s: string) => `"${s}"`, 34_000_000],
      ['unquoted, 3 MB', (s: string) => s, 3_000_000],
      ['quoted with newlines, 2.5 MB', (s: string) => `"${s.slice(0, 1000)}\n${s.slice(1000)}"`, 2_500_000],
    ])('rejects a file with an oversized field (%s) whole, with line and column', async (_label, quote, size) => {
      const lines = [header];
      for (let i = 0; i < 80; i++) lines.push(survey(i, i === 40 ? quote('x'.repeat(size)) : 'ok'));
      const { t, run } = await ingestSurveys('big-field', `${lines.join('\n')}\n`);
      const err = await rejection(run());
      expect(err.type).toBe('ContractViolation');
      expect(err.message).toMatch(
        new RegExp(
          `^nps_surveys\\.csv line 42 column 4 \\(comment\\): row of \\d+ bytes exceeds the maximum CSV row size of ${CSV_MAX_ROW_BYTES} bytes$`,
        ),
      );
      expect(fs.existsSync(path.join(t.lake, 'bronze', 'nps_surveys'))).toBe(false);
    });

    it('reports physical lines after quoted newlines, for rows and for a rejected value', async () => {
      const lines = [header];
      for (let i = 0; i < 10; i++)
        lines.push(survey(i, i === 3 ? '"two\nlines"' : i === 6 ? '"three\n\nlines"' : 'ok'));
      const { t, run } = await ingestSurveys('quoted-nl', `${lines.join('\n')}\n`);
      const m = await run();
      expect({ in: m.rowsIn, out: m.rowsOut }).toEqual({ in: 10, out: 10 });
      const got = await rows(
        t.lake,
        'bronze',
        'nps_surveys',
        'select org_id, source_line, comment from t order by source_line',
      );
      // physical lines: header 1, org_0..2 on 2..4, org_3 spans 5-6, org_4..5 on 7..8, org_6 spans 9-11, org_7 on 12
      expect(got.map((r) => [r.org_id, r.source_line])).toEqual([
        ['org_0', 2],
        ['org_1', 3],
        ['org_2', 4],
        ['org_3', 5],
        ['org_4', 7],
        ['org_5', 8],
        ['org_6', 9],
        ['org_7', 12],
        ['org_8', 13],
        ['org_9', 14],
      ]);
      expect(got[6].comment).toBe('three\n\nlines');
      const bad = [...lines];
      bad[9] = 'org_8,2025-07-01,not-a-number,ok';
      const second = await ingestSurveys('quoted-nl-bad', `${bad.join('\n')}\n`);
      expect((await rejection(second.run())).message).toMatch(/^nps_surveys\.csv line 13 column 3 \(nps_score\): /);
    });

    it('reads a file mixing CRLF and LF rows, values without the CR, lines and counts intact', async () => {
      const lines = [header, ...Array.from({ length: 12 }, (_, i) => survey(i))];
      for (const crlfRows of [[4], [1, 7, 12], [0]]) {
        const body = lines.map((l, k) => (crlfRows.includes(k) ? `${l}\r\n` : `${l}\n`)).join('');
        const { t, run } = await ingestSurveys('crlf', body);
        const m = await run();
        expect({ in: m.rowsIn, out: m.rowsOut }).toEqual({ in: 12, out: 12 });
        const got = await rows(
          t.lake,
          'bronze',
          'nps_surveys',
          `select org_id, comment, source_line from t order by source_line`,
        );
        expect(got).toEqual(lines.slice(1).map((_, i) => ({ org_id: `org_${i}`, comment: 'ok', source_line: i + 2 })));
      }
    });
  });
});
