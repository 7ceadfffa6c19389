import crypto from 'node:crypto';
import type { Json } from '@duckdb/node-api';
import { byKey, RulesLake, silverEvent, TEST_SALT } from '../support/rules-harness';
import { addDays } from '../../workflows/logical-date';
import { loadSql } from '../../lake/duckdb';
import { GOLD_MARTS } from '../../lake/tables';
import type { Fixture, OutRow, RulesSession } from '../support/rules-harness';

/**
 * One focused test per rule id / behaviour of the SQL models (SPEC §3–§6, docs/decisions.md), each on a handful
 * of fixture rows built so that the assertion fails if the rule is removed or changed: a row that the rule
 * catches sits next to rows that look alike but must be kept (boundaries, aliases, precedence).
 */

let lake: RulesLake;

beforeAll(async () => {
  lake = await RulesLake.create();
});

afterAll(() => {
  lake.close();
});

async function withSession<T>(fn: (s: RulesSession) => Promise<T>): Promise<T> {
  const s = await lake.session();
  try {
    return await fn(s);
  } finally {
    s.close();
  }
}

/** A JSON cell as a number (DECIMAL and BIGINT come back as strings); NULL stays null. */
function num(v: Json | undefined): number | null {
  return v === null || v === undefined ? null : Number(v);
}

const sha256 = (s: string): string => crypto.createHash('sha256').update(s, 'utf8').digest('hex');

// ---------------------------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------------------------

const EVENTS_FILE = 'usage_events_stream/2025-07-20/batch-001.jsonl';
let eventLine = 0;

/** A valid bronze event (kept by every silver rule) with `over` applied. */
function event(id: string | null, over: Fixture = {}): Fixture {
  eventLine += 1;
  return {
    event_id: id,
    timestamp_raw: '2025-07-20T10:00:00Z',
    event_ts: '2025-07-20 10:00:00',
    usage_date: '2025-07-20',
    org_id: 'org-1',
    resource_id: null,
    service: 'compute',
    region: 'us-east',
    metric: 'requests',
    value: '10',
    unit: 'count',
    cost_usd_increment: '0.5',
    schema_version: 1,
    source_file: EVENTS_FILE,
    source_line: eventLine,
    ...over,
  };
}

/** Events of one (org, service) series with the given costs, ids `${prefix}0..n-1`. */
function series(prefix: string, costs: string[], over: Fixture = {}): Fixture[] {
  return costs.map((cost, i) => event(`${prefix}${i}`, { cost_usd_increment: cost, ...over }));
}

/** Bronze time columns of an event at `time` (UTC) on `day`. */
function on(day: string, time = '10:00:00'): Fixture {
  return { timestamp_raw: `${day}T${time}Z`, event_ts: `${day} ${time}`, usage_date: day };
}

const ORGS: Fixture[] = [
  { org_id: 'org-1', org_name: 'Acme', industry: 'retail', plan_tier: 'pro', hq_region: 'us-east' },
];
const RESOURCES: Fixture[] = [
  { resource_id: 'res-1', org_id: 'org-1', service: 'compute', region: 'us-east', state: 'running' },
];

/** Runs silver/usage_events.sql over `events` (bronze) with silver orgs/resources; returns every output row. */
async function silverEvents(
  s: RulesSession,
  events: Fixture[],
  refs: { orgs?: Fixture[]; resources?: Fixture[] } = {},
): Promise<OutRow[]> {
  await s.silver('orgs', refs.orgs ?? ORGS);
  await s.silver('resources', refs.resources ?? RESOURCES);
  await s.bronze('usage_events', events);
  // Both plans of the baseline lists (a RANGE window, or a join for the computed days) give the same rows.
  await s.conn.run(`set variable baseline_by_join = true`);
  const joined = await s.model('silver/usage_events.sql', ['source_line']);
  await s.conn.run(`set variable baseline_by_join = false`);
  const windowed = await s.model('silver/usage_events.sql', ['source_line']);
  expect(joined).toEqual(windowed);
  return windowed;
}

/** A JSONL line of a raw landed event (v1 unless `over` says otherwise). */
function jsonLine(id: string, over: Record<string, unknown> = {}): string {
  return JSON.stringify({
    event_id: id,
    timestamp: '2025-07-20T10:00:00Z',
    org_id: 'org-1',
    resource_id: 'res-1',
    service: 'compute',
    region: 'us-east',
    metric: 'requests',
    value: 10,
    unit: 'count',
    cost_usd_increment: 0.5,
    schema_version: 1,
    ...over,
  });
}

/** Reference statistics of SPEC §5 / decisions.md, computed independently in JS. */
function reference(values: number[]): { mean: number; sd: number; median: number; mad: number; p99: number } {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const sd = Math.sqrt(values.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1));
  const quantile = (xs: number[], q: number): number => {
    const sorted = [...xs].sort((a, b) => a - b);
    const h = (sorted.length - 1) * q;
    const lo = Math.floor(h);
    const hi = Math.min(lo + 1, sorted.length - 1);
    return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
  };
  const median = quantile(values, 0.5);
  return {
    mean,
    sd,
    median,
    mad: quantile(
      values.map((x) => Math.abs(x - median)),
      0.5,
    ),
    p99: quantile(values, 0.99),
  };
}

const flagsOf = (rows: OutRow[], col: string): Record<string, Json> =>
  Object.fromEntries(rows.filter((r) => r[col] === true).map((r) => [String(r.event_id), true]));

// ---------------------------------------------------------------------------------------------------------------
// Bronze
// ---------------------------------------------------------------------------------------------------------------

describe('bronze usage_events (lake/sql/bronze/usage_events.sql)', () => {
  it('malformed_json: non-JSON and non-object lines are quarantined with file and line; blank lines are skipped', async () => {
    const a = 'usage_events_stream/2025-07-20/a.jsonl';
    const b = 'usage_events_stream/2025-07-20/b.jsonl';
    const truncated = '{"event_id": "e2", "timestamp": "2025-07-20T1';
    const contentA = [
      jsonLine('e1'), // 1
      '', // 2: blank
      truncated, // 3: syntax error
      '   ', // 4: whitespace only
      '[{"event_id": "e3"}]', // 5: a JSON array
      `${jsonLine('e4')}\r`, // 6: CRLF line end
      '42', // 7: a JSON scalar
      '',
    ].join('\n');
    const rows = await withSession((s) => s.bronzeEvents({ [a]: contentA, [b]: 'not json at all\n' }));

    expect(rows.map((r) => [r.source_file, r.source_line, r._rule, r.event_id])).toEqual([
      [a, 1, null, 'e1'],
      [a, 3, 'malformed_json', null],
      [a, 5, 'malformed_json', null],
      [a, 6, null, 'e4'],
      [a, 7, 'malformed_json', null],
      [b, 1, 'malformed_json', null],
    ]);
    const at = (file: string, line: number): OutRow =>
      rows.find((r) => r.source_file === file && r.source_line === line)!;
    expect(at(a, 3)._detail).toBe('line is not valid JSON');
    expect(at(a, 3)._raw).toBe(truncated);
    expect(at(a, 5)._detail).toBe('line is valid JSON but not an object');
    expect(at(a, 5)._raw).toBe('[{"event_id": "e3"}]');
    expect(at(a, 7)._detail).toBe('line is valid JSON but not an object');
    expect(at(b, 1)._raw).toBe('not json at all');
    expect(at(a, 1)._raw).toBeNull();
  });

  it('typing: a v1 row has NULL carbon_kg and genai_tokens; a v2 row carries them exactly', async () => {
    const rows = await withSession((s) =>
      s.bronzeEvents({
        [EVENTS_FILE]: [
          jsonLine('v1', { service: 'genai', cost_usd_increment: 0.25 }),
          jsonLine('v2', { service: 'genai', schema_version: 2, carbon_kg: 0.000123456, genai_tokens: 1500 }),
        ].join('\n'),
      }),
    );
    const e = byKey(rows, 'event_id');
    expect(e.v1).toMatchObject({
      schema_version: 1,
      carbon_kg: null,
      genai_tokens: null,
      cost_usd_increment: '0.250000',
      cast_errors: null,
    });
    expect(e.v2).toMatchObject({
      schema_version: 2,
      carbon_kg: '0.000123456',
      genai_tokens: '1500',
      cast_errors: null,
    });
  });

  it('typing: value stays text in bronze (numeric string, number and junk alike)', async () => {
    const rows = await withSession((s) =>
      s.bronzeEvents({
        [EVENTS_FILE]: [
          jsonLine('str', { value: '12.5' }),
          jsonLine('number', { value: 7 }),
          jsonLine('junk', { value: 'n/a' }),
          jsonLine('null', { value: null }),
        ].join('\n'),
      }),
    );
    const e = byKey(rows, 'event_id');
    expect([e.str.value, e.number.value, e.junk.value, e.null.value]).toEqual(['12.5', '7', 'n/a', null]);
    expect(rows.every((r) => r.cast_errors === null && r._rule === null)).toBe(true);
  });

  it('typing: a non-numeric cost_usd_increment becomes NULL and is named in cast_errors', async () => {
    const rows = await withSession((s) =>
      s.bronzeEvents({
        [EVENTS_FILE]: [
          jsonLine('bad', { cost_usd_increment: 'abc' }),
          jsonLine('two', { cost_usd_increment: 'abc', schema_version: 'two' }),
          jsonLine('numstr', { cost_usd_increment: '0.125' }),
          jsonLine('exp', { cost_usd_increment: 1e-3 }),
          jsonLine('absent', { cost_usd_increment: undefined }),
        ].join('\n'),
      }),
    );
    const e = byKey(rows, 'event_id');
    expect(e.bad).toMatchObject({ cost_usd_increment: null, cast_errors: 'cost_usd_increment', _rule: null });
    expect(e.two).toMatchObject({
      cost_usd_increment: null,
      schema_version: null,
      cast_errors: 'cost_usd_increment,schema_version',
    });
    expect(e.numstr).toMatchObject({ cost_usd_increment: '0.125000', cast_errors: null });
    expect(e.exp).toMatchObject({ cost_usd_increment: '0.001000', cast_errors: null });
    // absent is not a cast error: silver reports it as plain missing_required
    expect(e.absent).toMatchObject({ cost_usd_increment: null, cast_errors: null });
  });

  it('typing: timestamps are stored as UTC and usage_date is the UTC date', async () => {
    const rows = await withSession((s) =>
      s.bronzeEvents({
        [EVENTS_FILE]: [
          jsonLine('offset', { timestamp: '2025-07-18T01:30:00+02:00' }),
          jsonLine('zulu', { timestamp: '2025-07-18T23:59:59.250Z' }),
          jsonLine('bad', { timestamp: 'yesterday' }),
        ].join('\n'),
      }),
    );
    const e = byKey(rows, 'event_id');
    expect(e.offset).toMatchObject({
      event_ts: '2025-07-17 23:30:00',
      usage_date: '2025-07-17',
      timestamp_raw: '2025-07-18T01:30:00+02:00',
    });
    expect(e.zulu).toMatchObject({ event_ts: '2025-07-18 23:59:59.25', usage_date: '2025-07-18' });
    expect(e.bad).toMatchObject({ event_ts: null, usage_date: null, timestamp_raw: 'yesterday', _rule: null });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Silver usage_events
// ---------------------------------------------------------------------------------------------------------------

describe('silver usage_events (lake/sql/silver/usage_events.sql)', () => {
  it('missing_required: each required field NULL or blank is named in the detail', async () => {
    const fixtures: Array<[Fixture, string]> = [
      [event(null), 'event_id'],
      [event('no-ts', { timestamp_raw: '  ', event_ts: null, usage_date: null }), 'timestamp'],
      [event('no-org', { org_id: null }), 'org_id'],
      [event('no-svc', { service: '   ' }), 'service'],
      [
        event('cost-nan', { cost_usd_increment: null, cast_errors: 'cost_usd_increment' }),
        'cost_usd_increment (not numeric)',
      ],
      [event('cost-null', { cost_usd_increment: null }), 'cost_usd_increment'],
    ];
    const ok = event('ok');
    const rows = byKey(await withSession((s) => silverEvents(s, [...fixtures.map(([f]) => f), ok])), 'source_line');
    for (const [f, field] of fixtures) {
      const r = rows[String(f.source_line)];
      expect({ line: f.source_line, rule: r._rule }).toEqual({ line: f.source_line, rule: 'missing_required' });
      expect(r._detail).toContain(field);
    }
    expect(rows[String(ok.source_line)]._rule).toBeNull();
  });

  it('bad_timestamp: a timestamp that does not parse as ISO-8601 is quarantined (bronze → silver)', async () => {
    const rows = await withSession(async (s) => {
      await s.bronzeEvents({
        [EVENTS_FILE]: [
          jsonLine('words', { timestamp: 'yesterday' }),
          jsonLine('feb30', { timestamp: '2025-02-30T10:00:00Z' }),
          jsonLine('dmy', { timestamp: '20/07/2025 10:00' }),
          jsonLine('zulu', { timestamp: '2025-07-20T10:00:00Z' }),
          jsonLine('offset', { timestamp: '2025-07-20T12:00:00+02:00' }),
          jsonLine('nozone', { timestamp: '2025-07-20T10:00' }),
          // Offsets that are not offsets (DuckDB alone would shift the time by days), and real extremes that are.
          jsonLine('off9999', { timestamp: '2025-07-20T10:00:00+99:99' }),
          jsonLine('off1500', { timestamp: '2025-07-20T10:00:00+15:00' }),
          jsonLine('off0260', { timestamp: '2025-07-20T10:00:00-02:60' }),
          jsonLine('off99', { timestamp: '2025-07-20T10:00:00-99' }),
          jsonLine('plus14', { timestamp: '2025-07-21T00:00:00+14:00' }),
          jsonLine('minus12', { timestamp: '2025-07-19T22:00:00-12:00' }),
          jsonLine('compact', { timestamp: '2025-07-20T15:30:00+0530' }),
        ].join('\n'),
      });
      await s.conn.run(
        `create or replace temp table bronze_usage_events as select * exclude (_rule, _detail, _raw) from _out`,
      );
      await s.silver('orgs', ORGS);
      await s.silver('resources', RESOURCES);
      return byKey(await s.model('silver/usage_events.sql', ['source_line']), 'event_id');
    });
    for (const [id, raw] of [
      ['words', 'yesterday'],
      ['feb30', '2025-02-30T10:00:00Z'],
      ['dmy', '20/07/2025 10:00'],
      ['off9999', '+99:99'],
      ['off1500', '+15:00'],
      ['off0260', '-02:60'],
      ['off99', '-99'],
    ]) {
      expect({ id, rule: rows[id]._rule }).toEqual({ id, rule: 'bad_timestamp' });
      expect(rows[id]._detail).toContain('timestamp');
      expect(rows[id]._detail).toContain(raw);
    }
    for (const id of ['zulu', 'offset', 'nozone', 'plus14', 'minus12', 'compact']) {
      expect({ id, rule: rows[id]._rule, ts: rows[id].event_ts }).toEqual({
        id,
        rule: null,
        ts: '2025-07-20 10:00:00',
      });
    }
  });

  it('unknown_service: a service outside the alias table is quarantined, an alias is not', async () => {
    const rows = byKey(
      await withSession((s) =>
        silverEvents(s, [event('mainframe', { service: 'Mainframe' }), event('ec2', { service: 'EC2' })]),
      ),
      'event_id',
    );
    expect(rows.mainframe._rule).toBe('unknown_service');
    expect(rows.mainframe._detail).toContain('service');
    expect(rows.mainframe._detail).toContain('Mainframe');
    expect(rows.ec2).toMatchObject({ _rule: null, service: 'compute' });
  });

  it('negative_cost: cost < -0.01 is quarantined, [-0.01, 0) is kept', async () => {
    const rows = byKey(
      await withSession((s) =>
        silverEvents(s, [
          event('minus-0.02', { cost_usd_increment: '-0.02' }),
          event('minus-0.010001', { cost_usd_increment: '-0.010001' }),
          event('minus-0.01', { cost_usd_increment: '-0.01' }),
          event('minus-0.005', { cost_usd_increment: '-0.005' }),
          event('zero', { cost_usd_increment: '0' }),
        ]),
      ),
      'event_id',
    );
    expect(rows['minus-0.02']._rule).toBe('negative_cost');
    expect(rows['minus-0.02']._detail).toContain('cost_usd_increment');
    expect(rows['minus-0.02']._detail).toContain('-0.02');
    expect(rows['minus-0.010001']._rule).toBe('negative_cost');
    expect(rows['minus-0.01']._rule).toBeNull();
    expect(rows['minus-0.005']).toMatchObject({ _rule: null, cost_usd_increment: '-0.005000' });
    expect(rows.zero._rule).toBeNull();
  });

  it('rule precedence: missing_required > bad_timestamp > unknown_service > negative_cost, one rule per record', async () => {
    const bad: Fixture = { timestamp_raw: 'garbage', event_ts: null, usage_date: null };
    const rows = byKey(
      await withSession((s) =>
        silverEvents(s, [
          event('p1', { ...bad, org_id: null, service: 'mainframe', cost_usd_increment: '-5' }),
          event('p2', { ...bad, service: 'mainframe', cost_usd_increment: '-5' }),
          event('p3', { service: 'mainframe', cost_usd_increment: '-5' }),
          event('p4', { cost_usd_increment: '-5' }),
        ]),
      ),
      'event_id',
    );
    expect([rows.p1._rule, rows.p2._rule, rows.p3._rule, rows.p4._rule]).toEqual([
      'missing_required',
      'bad_timestamp',
      'unknown_service',
      'negative_cost',
    ]);
    expect(rows.p1._detail).toContain('org_id');
    expect(rows.p2._detail).toContain('garbage');
    expect(rows.p3._detail).toContain('mainframe');
    expect(rows.p4._detail).toContain('cost_usd_increment');
  });

  it('value_cast_failed: an uncastable value becomes NULL with the flag, the row is kept', async () => {
    const rows = byKey(
      await withSession((s) =>
        silverEvents(s, [
          event('junk', { value: 'abc' }),
          event('numstr', { value: '12.5' }),
          event('null', { value: null, unit: null }),
        ]),
      ),
      'event_id',
    );
    expect(rows.junk).toMatchObject({ _rule: null, value: null, value_cast_failed: true });
    expect(rows.numstr).toMatchObject({ _rule: null, value: 12.5, value_cast_failed: false });
    expect(rows.null).toMatchObject({ _rule: null, value: null, value_cast_failed: false });
  });

  it('unit_imputed: NULL unit with a value is imputed from the metric (all three metrics)', async () => {
    const rows = byKey(
      await withSession((s) =>
        silverEvents(s, [
          event('req', { metric: 'requests', value: '10', unit: null }),
          event('cpu', { metric: 'CPU_Hours', value: '1.5', unit: null }),
          event('gb', { metric: 'storage_gb_hours', value: '100', unit: null }),
          event('given', { metric: 'requests', value: '10', unit: 'req' }),
          event('novalue', { metric: 'requests', value: null, unit: null }),
        ]),
      ),
      'event_id',
    );
    expect(rows.req).toMatchObject({ _rule: null, unit: 'count', unit_imputed: true });
    expect(rows.cpu).toMatchObject({ _rule: null, metric: 'cpu_hours', unit: 'hours', unit_imputed: true });
    expect(rows.gb).toMatchObject({ _rule: null, unit: 'gb_hours', unit_imputed: true });
    expect(rows.given).toMatchObject({ unit: 'req', unit_imputed: false });
    expect(rows.novalue).toMatchObject({ unit: null, unit_imputed: false });
  });

  it('aliases: service and region are trimmed, lower-cased and canonicalised', async () => {
    const cases: Array<[string, string, string, string]> = [
      [' EC2 ', 'us_east', 'compute', 'us-east'],
      ['S3', 'US-EAST-1', 'storage', 'us-east'],
      ['gen_ai', 'eu west', 'genai', 'eu-west'],
      ['Gen-AI', 'apnortheast', 'genai', 'ap-northeast'],
      ['rds', 'sa_east', 'database', 'sa-east'],
      ['BigQuery', ' EU-Central ', 'analytics', 'eu-central'],
      ['vpc', 'useast', 'networking', 'us-east'],
    ];
    const rows = await withSession((s) =>
      silverEvents(
        s,
        cases.map(([service, region], i) => event(`a${i}`, { service, region })),
      ),
    );
    expect(rows.map((r) => [r._rule, r.service, r.region, r.region_unknown])).toEqual(
      cases.map(([, , service, region]) => [null, service, region, false]),
    );
  });

  it('region_unknown: an unknown or NULL region becomes NULL with the flag, the row is kept', async () => {
    const rows = byKey(
      await withSession((s) =>
        silverEvents(s, [
          event('mars', { region: 'mars-1' }),
          event('null', { region: null }),
          event('west', { region: 'us-west' }),
        ]),
      ),
      'event_id',
    );
    expect(rows.mars).toMatchObject({ _rule: null, region: null, region_unknown: true });
    expect(rows.null).toMatchObject({ _rule: null, region: null, region_unknown: true });
    expect(rows.west).toMatchObject({ _rule: null, region: 'us-west', region_unknown: false });
  });

  it('orphan_org / orphan_resource: flagged against silver orgs/resources, rows kept and enriched', async () => {
    const rows = byKey(
      await withSession((s) =>
        silverEvents(s, [
          event('known', { resource_id: 'res-1' }),
          event('orphan-org', { org_id: 'org-404', resource_id: 'res-1' }),
          event('orphan-res', { resource_id: 'res-404' }),
          event('no-res', { resource_id: null }),
        ]),
      ),
      'event_id',
    );
    expect(rows.known).toMatchObject({
      _rule: null,
      orphan_org: false,
      orphan_resource: false,
      org_name: 'Acme',
      industry: 'retail',
      plan_tier: 'pro',
      hq_region: 'us-east',
      resource_state: 'running',
    });
    expect(rows['orphan-org']).toMatchObject({ _rule: null, orphan_org: true, orphan_resource: false, org_name: null });
    expect(rows['orphan-res']).toMatchObject({
      _rule: null,
      orphan_org: false,
      orphan_resource: true,
      resource_state: null,
    });
    expect(rows['no-res']).toMatchObject({ _rule: null, orphan_resource: false });
  });

  describe('event-level anomalies (SPEC §5, trailing baseline)', () => {
    // The event under test is on D; its baseline is the kept events of its (org, service, metric) on [D − 28, D − 1].
    const D = '2025-07-20';

    it('z-score: |x − mean| / stddev_samp of the baseline > 3, within the (org_id, service, metric) series', async () => {
      // baseline: ten 1.0 and one 10.0 the day before → MAD 0 (robust z NULL) and 1.5 · p99 = 13.65 > 12
      const base = [...Array<string>(10).fill('1.0'), '10.0'];
      const rows = await withSession((s) =>
        silverEvents(s, [
          ...series('b', base, on(addDays(D, -1))),
          event('zt', { cost_usd_increment: '12.0', ...on(D) }),
          // another org's, another service's and another metric's large costs must not enter org-1's baseline
          ...series('other', ['1000', '1001', '1002', '1003', '1004', '1005', '1006'], {
            org_id: 'org-2',
            ...on(addDays(D, -1)),
          }),
          ...series('stor', ['500', '501', '502', '503', '504', '505', '506'], {
            service: 'storage',
            ...on(addDays(D, -1)),
          }),
          ...series('cpu', ['50', '51', '52', '53', '54', '55', '56'], {
            metric: 'cpu_hours',
            unit: 'hours',
            ...on(addDays(D, -1)),
          }),
        ]),
      );
      const e = byKey(rows, 'event_id');
      const ref = reference(base.map(Number));
      expect(num(e.zt.zscore)).toBeCloseTo((12 - ref.mean) / ref.sd, 5);
      expect((12 - ref.mean) / ref.sd).toBeGreaterThan(3);
      expect(flagsOf(rows, 'zscore_flag')).toEqual({ zt: true });
      expect(e.zt).toMatchObject({ robust_z: null, mad_flag: false, pctl_flag: false, is_anomaly: true });
      // the baseline events themselves have no earlier days: not scored
      expect(e.b0).toMatchObject({ zscore: null, robust_z: null, is_anomaly: false });
      expect(flagsOf(rows, 'is_anomaly')).toEqual({ zt: true });
    });

    it('robust z (MAD): 0.6745 · |x − median| / MAD of the baseline > 3.5, with n = 7 the minimum that scores', async () => {
      const base = ['1', '2', '3', '4', '5', '6', '20'];
      const rows = await withSession((s) =>
        silverEvents(s, [
          ...series('b', base, on(addDays(D, -3))),
          event('hi', { cost_usd_increment: '15', ...on(D) }),
          event('mid', { cost_usd_increment: '4', ...on(D) }),
          event('lo', { cost_usd_increment: '1', ...on(D) }),
        ]),
      );
      const e = byKey(rows, 'event_id');
      const ref = reference(base.map(Number));
      expect(ref.median).toBe(4);
      expect(ref.mad).toBe(2);
      expect(num(e.hi.robust_z)).toBeCloseTo((0.6745 * 11) / 2, 6);
      expect(num(e.lo.robust_z)).toBeCloseTo((0.6745 * 3) / 2, 6); // silver keeps the absolute value
      expect(num(e.mid.robust_z)).toBe(0);
      expect(flagsOf(rows, 'mad_flag')).toEqual({ hi: true });
      // the z-score of 15 is scored but below 3, and 15 < 1.5 · p99: only the MAD method flags it
      expect(num(e.hi.zscore)).toBeCloseTo(Math.abs(15 - ref.mean) / ref.sd, 5);
      expect(flagsOf(rows, 'zscore_flag')).toEqual({});
      expect(flagsOf(rows, 'pctl_flag')).toEqual({});
      expect(flagsOf(rows, 'is_anomaly')).toEqual({ hi: true });
    });

    it('percentile: x > 1.5 · p99 of the baseline, p99 linearly interpolated (not nearest rank)', async () => {
      const base = Array.from({ length: 39 }, (_, i) => (1 + i / 100).toFixed(2)); // 1.00 .. 1.38
      // n = 39: p99 = x[37] + 0.62 · (x[38] − x[37]) = 1.3762 → threshold 2.0643; nearest rank would give 1.5 · 1.38 = 2.07
      const rows = await withSession((s) =>
        silverEvents(s, [
          ...series('b', base, on(addDays(D, -2))),
          event('hi', { cost_usd_increment: '2.068', ...on(D) }),
          event('lo', { cost_usd_increment: '2.06', ...on(D) }),
        ]),
      );
      const ref = reference(base.map(Number));
      expect(ref.p99 * 1.5).toBeLessThan(2.068);
      expect(ref.p99 * 1.5).toBeGreaterThan(2.06);
      expect(1.5 * 1.38).toBeGreaterThan(2.068);
      expect(flagsOf(rows, 'pctl_flag')).toEqual({ hi: true });
      expect(byKey(rows, 'event_id').hi.is_anomaly).toBe(true);
    });

    it('day d is not in its own baseline: same-day events, however extreme, do not move the statistics', async () => {
      const base = ['1', '2', '3', '4', '5', '6', '7'];
      const rows = await withSession((s) =>
        silverEvents(s, [
          ...series('b', base, on(addDays(D, -1))),
          event('a', { cost_usd_increment: '4', ...on(D, '01:00:00') }),
          event('big', { cost_usd_increment: '1000', ...on(D, '02:00:00') }),
          event('c', { cost_usd_increment: '4', ...on(D, '23:59:59') }),
          // a series whose events are all on one day has no baseline at all
          ...series('one', ['1', '1', '1', '1', '1', '1', '1', '500'], { service: 'storage', ...on(D) }),
        ]),
      );
      const e = byKey(rows, 'event_id');
      // x = 4 is exactly the baseline's mean and median: with 1000 (or 4 itself) in the baseline it would not be 0
      for (const id of ['a', 'c']) expect(e[id]).toMatchObject({ zscore: 0, robust_z: 0, is_anomaly: false });
      const ref = reference(base.map(Number));
      expect(num(e.big.zscore)).toBeCloseTo((1000 - ref.mean) / ref.sd, 4);
      expect(e.big).toMatchObject({ zscore_flag: true, mad_flag: true, pctl_flag: true });
      for (let i = 0; i < 8; i += 1)
        expect(e[`one${i}`]).toMatchObject({ zscore: null, robust_z: null, is_anomaly: false });
    });

    it('the baseline is the N = 28 days [d − 28, d − 1]: d − 28 is in it, d − 29 is not', async () => {
      const base = ['1', '2', '3', '4', '5', '6', '7'];
      const events = [
        ...series('in', base, on(addDays(D, -28), '00:00:00')),
        ...series('out', ['900', '950', '1000'], on(addDays(D, -29), '23:59:59')),
        event('t', { cost_usd_increment: '4', ...on(D, '23:59:59') }),
        event('hi', { cost_usd_increment: '30', ...on(D) }),
      ];
      const rows = await withSession((s) => silverEvents(s, events));
      const e = byKey(rows, 'event_id');
      // scored (so all seven events of d − 28 count) against 1..7 only (so none of d − 29 does)
      expect(e.t).toMatchObject({ zscore: 0, robust_z: 0, is_anomaly: false });
      expect(e.hi).toMatchObject({ zscore_flag: true, mad_flag: true, pctl_flag: true });
      // CPA_ANOMALY_BASELINE_DAYS=27: d − 28 falls out and nothing is left of the baseline → NULL and false
      const short = await RulesLake.create({ CPA_ANOMALY_BASELINE_DAYS: '27' });
      try {
        const s = await short.session();
        try {
          const r = byKey(await silverEvents(s, events), 'event_id');
          for (const id of ['t', 'hi']) {
            expect(r[id]).toMatchObject({
              zscore: null,
              robust_z: null,
              zscore_flag: false,
              mad_flag: false,
              pctl_flag: false,
            });
          }
        } finally {
          s.close();
        }
      } finally {
        short.close();
      }
    });

    it('fewer than 7 observations in the baseline: scores NULL and every flag false (percentile included)', async () => {
      const rows = await withSession((s) =>
        silverEvents(s, [
          ...series('b', ['1', '2', '3', '4', '5', '6'], on(addDays(D, -5))),
          event('t', { cost_usd_increment: '100', ...on(D) }),
          // seven observations, but one of them is on d itself: still six in the baseline
          ...series('c', ['1', '2', '3', '4', '5', '6'], { service: 'storage', ...on(addDays(D, -5)) }),
          event('c6', { service: 'storage', cost_usd_increment: '7', ...on(D, '01:00:00') }),
          event('ct', { service: 'storage', cost_usd_increment: '100', ...on(D, '02:00:00') }),
        ]),
      );
      const e = byKey(rows, 'event_id');
      for (const id of ['t', 'ct']) {
        expect(e[id]).toMatchObject({
          _rule: null,
          zscore: null,
          robust_z: null,
          zscore_flag: false,
          mad_flag: false,
          pctl_flag: false,
          is_anomaly: false,
        });
      }
      expect(flagsOf(rows, 'is_anomaly')).toEqual({});
    });

    it('zero spread: z and robust z NULL with their flags false; the percentile method still applies', async () => {
      const rows = await withSession((s) =>
        silverEvents(s, [
          ...series('flat', Array<string>(8).fill('0.5'), on(addDays(D, -1))),
          event('same', { cost_usd_increment: '0.5', ...on(D) }),
          event('jump', { cost_usd_increment: '5', ...on(D) }),
        ]),
      );
      const e = byKey(rows, 'event_id');
      for (const id of ['same', 'jump']) {
        expect(e[id]).toMatchObject({ _rule: null, zscore: null, robust_z: null, zscore_flag: false, mad_flag: false });
      }
      // p99 of eight 0.5 is 0.5: 5 > 0.75 flags, 0.5 does not
      expect(e.same).toMatchObject({ pctl_flag: false, is_anomaly: false });
      expect(e.jump).toMatchObject({ pctl_flag: true, is_anomaly: true });
    });
  });
});

describe('silver usage_events anomalies with CPA_ANOMALY_EVENT_BY_METRIC=false', () => {
  it('the series is exactly (org_id, service), all metrics together (decisions.md)', async () => {
    const base = [...Array<string>(10).fill('1.0'), '10.0'];
    const events = [
      ...series('r', base, { metric: 'requests', ...on('2025-07-19') }),
      event('cpu', { metric: 'cpu_hours', unit: 'hours', cost_usd_increment: '12.0', ...on('2025-07-20') }),
    ];
    const flat = await RulesLake.create({ CPA_ANOMALY_EVENT_BY_METRIC: 'false' });
    try {
      const s = await flat.session();
      try {
        const rows = await silverEvents(s, events);
        const ref = reference(base.map(Number));
        expect(num(byKey(rows, 'event_id').cpu.zscore)).toBeCloseTo(Math.abs(12 - ref.mean) / ref.sd, 5);
        expect(flagsOf(rows, 'zscore_flag')).toEqual({ cpu: true });
      } finally {
        s.close();
      }
    } finally {
      flat.close();
    }
    // by metric (the default), the cpu_hours event has no baseline of its own
    const rows = await withSession((s) => silverEvents(s, events));
    expect(byKey(rows, 'event_id').cpu).toMatchObject({ zscore: null, is_anomaly: false });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Silver batch tables
// ---------------------------------------------------------------------------------------------------------------

describe('silver orgs (lake/sql/silver/orgs.sql)', () => {
  it('duplicate_key: the first line of an org_id wins, later lines are quarantined', async () => {
    const rows = await withSession(async (s) => {
      // inserted out of line order: the rule must order by (source_file, source_line), not by arrival
      await s.bronze('orgs', [
        { org_id: 'org-1', org_name: 'Acme Duplicate', source_file: 'customers_orgs.csv', source_line: 3 },
        { org_id: 'org-1', org_name: 'Acme', source_file: 'customers_orgs.csv', source_line: 2 },
        { org_id: 'org-2', org_name: 'Beta', source_file: 'customers_orgs.csv', source_line: 4 },
      ]);
      return s.model('silver/orgs.sql', ['source_line']);
    });
    expect(rows.map((r) => [r.source_line, r.org_name, r._rule])).toEqual([
      [2, 'Acme', null],
      [3, 'Acme Duplicate', 'duplicate_key'],
      [4, 'Beta', null],
    ]);
    expect(rows[1]._detail).toContain('org_id');
    expect(rows[1]._detail).toContain('org-1');
  });

  it('nps_score outside [-100, 100] → NULL + nps_out_of_range, org kept', async () => {
    const rows = byKey(
      await withSession(async (s) => {
        await s.bronze('orgs', [
          { org_id: 'high', nps_score: 150, source_line: 2 },
          { org_id: 'low', nps_score: -101, source_line: 3 },
          { org_id: 'edge', nps_score: -100, source_line: 4 },
          { org_id: 'ok', nps_score: 42, source_line: 5 },
          { org_id: 'none', nps_score: null, source_line: 6 },
        ]);
        return s.model('silver/orgs.sql', ['source_line']);
      }),
      'org_id',
    );
    expect(rows.high).toMatchObject({ _rule: null, nps_score: null, nps_out_of_range: true });
    expect(rows.low).toMatchObject({ _rule: null, nps_score: null, nps_out_of_range: true });
    expect(rows.edge).toMatchObject({ _rule: null, nps_score: -100, nps_out_of_range: false });
    expect(rows.ok).toMatchObject({ _rule: null, nps_score: 42, nps_out_of_range: false });
    expect(rows.none).toMatchObject({ _rule: null, nps_score: null, nps_out_of_range: false });
  });
});

describe('silver users (lake/sql/silver/users.sql)', () => {
  const USERS: Fixture[] = [
    { user_id: 'u-ok', org_id: 'org-1', email: ' Alice@Example.COM ', source_line: 2 },
    { user_id: 'u-word', org_id: 'org-1', email: 'not-an-email', source_line: 3 },
    { user_id: 'u-nodot', org_id: 'org-1', email: 'bob@localhost', source_line: 4 },
    { user_id: 'u-space', org_id: 'org-1', email: 'carol @example.com', source_line: 5 },
    { user_id: 'u-null', org_id: 'org-1', email: null, source_line: 6 },
  ];

  async function silverUsers(): Promise<OutRow[]> {
    return withSession(async (s) => {
      await s.bronze('users', USERS);
      return s.model('silver/users.sql', ['source_line']);
    });
  }

  it('invalid_email: NULL or not local@domain.tld is quarantined', async () => {
    const rows = byKey(await silverUsers(), 'user_id');
    expect(rows['u-ok']._rule).toBeNull();
    for (const id of ['u-word', 'u-nodot', 'u-space', 'u-null']) {
      expect({ id, rule: rows[id]._rule }).toEqual({ id, rule: 'invalid_email' });
      expect(rows[id]._detail).toContain('email');
    }
  });

  it('email_hash = sha256(salt ‖ lower(trim(email))); no clear-text email anywhere in the output, _raw included', async () => {
    const rows = await silverUsers();
    const u = byKey(rows, 'user_id');
    expect(u['u-ok']).toMatchObject({
      email_hash: sha256(`${TEST_SALT}alice@example.com`),
      email_domain: 'example.com',
    });
    expect(Object.keys(u['u-ok'])).not.toContain('email');
    // the quarantined raw record keeps the hash in place of the address
    expect(JSON.parse(String(u['u-nodot']._raw)).email).toBe(sha256(`${TEST_SALT}bob@localhost`));
    const everything = JSON.stringify(rows).toLowerCase();
    for (const clear of ['alice@example.com', 'not-an-email', 'bob@localhost', 'carol @example.com']) {
      expect({ clear, leaked: everything.includes(clear) }).toEqual({ clear, leaked: false });
    }
  });
});

describe('silver billing (lake/sql/silver/billing.sql)', () => {
  async function silverBilling(rows: Fixture[]): Promise<Record<string, OutRow>> {
    const invoices = rows.map((r, i) => ({
      org_id: 'org-1',
      month: '2025-07-15',
      subtotal: '100',
      currency: 'USD',
      exchange_rate_to_usd: '1.0',
      source_file: 'billing_monthly.csv',
      source_line: i + 2,
      ...r,
    }));
    return byKey(
      await withSession(async (s) => {
        await s.bronze('billing', invoices);
        return s.model('silver/billing.sql', ['source_line']);
      }),
      'invoice_id',
    );
  }

  it('negative_subtotal: subtotal < 0 is quarantined, 0 is kept', async () => {
    const rows = await silverBilling([
      { invoice_id: 'neg', subtotal: '-5' },
      { invoice_id: 'zero', subtotal: '0' },
    ]);
    expect(rows.neg._rule).toBe('negative_subtotal');
    expect(rows.neg._detail).toContain('subtotal');
    expect(rows.zero).toMatchObject({ _rule: null, billing_month: '2025-07-01' });
  });

  it('unknown_currency: upper-cased and trimmed before the check, so "eur" is accepted', async () => {
    const rows = await silverBilling([
      { invoice_id: 'xyz', currency: 'XYZ', exchange_rate_to_usd: '2' },
      { invoice_id: 'null', currency: null, exchange_rate_to_usd: '2' },
      { invoice_id: 'eur', currency: 'eur', exchange_rate_to_usd: '1.1' },
      { invoice_id: 'gbp', currency: ' gbp ', exchange_rate_to_usd: '1.3' },
    ]);
    expect(rows.xyz._rule).toBe('unknown_currency');
    expect(rows.xyz._detail).toContain('currency');
    expect(rows.xyz._detail).toContain('XYZ');
    expect(rows.null._rule).toBe('unknown_currency');
    expect(rows.eur).toMatchObject({ _rule: null, currency: 'EUR' });
    expect(rows.gbp).toMatchObject({ _rule: null, currency: 'GBP' });
  });

  it('bad_fx: a non-USD invoice with NULL or non-positive exchange_rate_to_usd is quarantined', async () => {
    const rows = await silverBilling([
      { invoice_id: 'eur-null', currency: 'EUR', exchange_rate_to_usd: null },
      { invoice_id: 'eur-zero', currency: 'EUR', exchange_rate_to_usd: '0' },
      { invoice_id: 'eur-neg', currency: 'EUR', exchange_rate_to_usd: '-1.1' },
      { invoice_id: 'eur-ok', currency: 'EUR', exchange_rate_to_usd: '1.1' },
      { invoice_id: 'usd-null', currency: 'USD', exchange_rate_to_usd: null },
    ]);
    for (const id of ['eur-null', 'eur-zero', 'eur-neg']) {
      expect({ id, rule: rows[id]._rule }).toEqual({ id, rule: 'bad_fx' });
      expect(rows[id]._detail).toContain('exchange_rate_to_usd');
    }
    expect(rows['eur-ok']._rule).toBeNull();
    expect(rows['usd-null']).toMatchObject({ _rule: null, fx_corrected: true });
    expect(num(rows['usd-null'].fx_rate)).toBe(1);
  });

  it('USD rows use fx = 1.0 whatever the file says (fx_corrected); *_usd = amount × fx', async () => {
    const rows = await silverBilling([
      {
        invoice_id: 'usd-noisy',
        currency: 'USD',
        exchange_rate_to_usd: '0.97',
        subtotal: '100',
        credits: '10',
        taxes: '5',
      },
      { invoice_id: 'usd-exact', currency: 'USD', exchange_rate_to_usd: '1.0', subtotal: '100' },
      { invoice_id: 'eur', currency: 'EUR', exchange_rate_to_usd: '1.1', subtotal: '100', credits: '10', taxes: '5' },
    ]);
    expect(rows['usd-noisy']).toMatchObject({
      _rule: null,
      fx_corrected: true,
      subtotal_usd: '100.000000',
      credits_usd: '10.000000',
      taxes_usd: '5.000000',
    });
    expect(num(rows['usd-noisy'].fx_rate)).toBe(1);
    expect(rows['usd-exact']).toMatchObject({ fx_corrected: false, subtotal_usd: '100.000000' });
    expect(rows.eur).toMatchObject({
      fx_corrected: false,
      subtotal_usd: '110.000000',
      credits_usd: '11.000000',
      taxes_usd: '5.500000',
    });
    expect(num(rows.eur.fx_rate)).toBe(1.1);
  });

  it('credits (and taxes) NULL → 0', async () => {
    const rows = await silverBilling([
      { invoice_id: 'none', currency: 'EUR', exchange_rate_to_usd: '1.1', credits: null, taxes: null },
    ]);
    expect(rows.none).toMatchObject({
      _rule: null,
      credits: '0.000000',
      credits_usd: '0.000000',
      taxes: '0.000000',
      taxes_usd: '0.000000',
    });
  });
});

describe('silver tickets (lake/sql/silver/tickets.sql)', () => {
  async function silverTickets(rows: Fixture[]): Promise<Record<string, OutRow>> {
    const tickets = rows.map((r, i) => ({
      org_id: 'org-1',
      severity: 'High',
      created_at: '2025-07-20 10:00:00',
      resolved_at: '2025-07-21 10:00:00',
      csat: 4,
      source_line: i + 2,
      ...r,
    }));
    return byKey(
      await withSession(async (s) => {
        await s.bronze('tickets', tickets);
        return s.model('silver/tickets.sql', ['source_line']);
      }),
      'ticket_id',
    );
  }

  it('bad_interval: resolved_at before created_at is quarantined; open and same-instant tickets are kept', async () => {
    const rows = await silverTickets([
      { ticket_id: 'backwards', resolved_at: '2025-07-20 09:59:59' },
      { ticket_id: 'open', resolved_at: null },
      { ticket_id: 'instant', resolved_at: '2025-07-20 10:00:00' },
    ]);
    expect(rows.backwards._rule).toBe('bad_interval');
    expect(rows.backwards._detail).toContain('resolved_at');
    expect(rows.open._rule).toBeNull();
    expect(rows.instant._rule).toBeNull();
  });

  it('csat outside [1, 5] → NULL + csat_out_of_range, ticket kept', async () => {
    const rows = await silverTickets([
      { ticket_id: 'six', csat: 6 },
      { ticket_id: 'zero', csat: 0 },
      { ticket_id: 'one', csat: 1 },
      { ticket_id: 'five', csat: 5 },
      { ticket_id: 'none', csat: null },
    ]);
    expect(rows.six).toMatchObject({ _rule: null, csat: null, csat_out_of_range: true });
    expect(rows.zero).toMatchObject({ _rule: null, csat: null, csat_out_of_range: true });
    expect(rows.one).toMatchObject({ _rule: null, csat: 1, csat_out_of_range: false });
    expect(rows.five).toMatchObject({ _rule: null, csat: 5, csat_out_of_range: false });
    expect(rows.none).toMatchObject({ _rule: null, csat: null, csat_out_of_range: false });
  });
});

describe('silver nps_surveys (lake/sql/silver/nps_surveys.sql)', () => {
  it('missing_score and out_of_range ([-100, 100] inclusive)', async () => {
    const rows = byKey(
      await withSession(async (s) => {
        await s.bronze('nps_surveys', [
          { org_id: 'missing', survey_date: '2025-07-01', nps_score: null, source_line: 2 },
          { org_id: 'high', survey_date: '2025-07-01', nps_score: 101, source_line: 3 },
          { org_id: 'low', survey_date: '2025-07-01', nps_score: -101, source_line: 4 },
          { org_id: 'fraction', survey_date: '2025-07-01', nps_score: 100.5, source_line: 7 },
          { org_id: 'top', survey_date: '2025-07-01', nps_score: 100, source_line: 5 },
          { org_id: 'bottom', survey_date: '2025-07-01', nps_score: -100, source_line: 6 },
        ]);
        return s.model('silver/nps_surveys.sql', ['source_line']);
      }),
      'org_id',
    );
    expect(rows.missing._rule).toBe('missing_score');
    expect(rows.missing._detail).toContain('nps_score');
    for (const id of ['high', 'low', 'fraction']) {
      expect({ id, rule: rows[id]._rule }).toEqual({ id, rule: 'out_of_range' });
      expect(rows[id]._detail).toContain('nps_score');
    }
    expect(rows.top).toMatchObject({ _rule: null, nps_score: 100 });
    expect(rows.bottom).toMatchObject({ _rule: null, nps_score: -100 });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Gold
// ---------------------------------------------------------------------------------------------------------------

async function gold(
  mart: string,
  table: string,
  rows: Fixture[],
  orderBy: string[],
  extra?: Record<string, Fixture[]>,
  units?: string[],
): Promise<OutRow[]> {
  return withSession(async (s) => {
    await s.silver(table, rows);
    for (const [t, r] of Object.entries(extra ?? {})) await s.silver(t, r);
    // The days a partition-scoped run computes (activities/models.ts); unset = every row read.
    if (units) await s.conn.run(`set variable model_units = [${units.map((d) => `'${d}'::date`).join(', ')}]::date[]`);
    if (DAILY_MART_INPUT.has(mart)) {
      // These marts read the daily mart (lake/tables.ts), built here from the same silver fixture rows.
      await s.conn.run(
        `create or replace temp table gold_org_daily_usage_by_service as ${loadSql('gold/org_daily_usage_by_service.sql')}`,
      );
    }
    if (!BASELINE_MARTS.has(mart)) return s.model(`gold/${mart}.sql`, orderBy);
    // Both plans of the baseline lists (a RANGE window, or a join for the computed days) give the same rows.
    await s.conn.run(`set variable baseline_by_join = true`);
    const joined = await s.model(`gold/${mart}.sql`, orderBy);
    await s.conn.run(`set variable baseline_by_join = false`);
    const windowed = await s.model(`gold/${mart}.sql`, orderBy);
    expect(joined).toEqual(windowed);
    return windowed;
  });
}

/** Marts with a trailing-baseline input: two plans build their baseline lists (lake/sql/gold/cost_anomaly_mart.sql). */
const BASELINE_MARTS = new Set(
  GOLD_MARTS.filter((m) => m.inputs.some((i) => i.dep.kind === 'window' && i.dep.days === 'baseline')).map(
    (m) => m.table,
  ),
);

/** Marts whose input is gold org_daily_usage_by_service rather than silver events. */
const DAILY_MART_INPUT = new Set(
  GOLD_MARTS.filter((m) => m.inputs.some((i) => i.layer === 'gold' && i.table === 'org_daily_usage_by_service')).map(
    (m) => m.table,
  ),
);

describe('gold org_daily_usage_by_service', () => {
  it('carbon_kg NULL for a v1-only day; requests/cpu/storage/tokens are 0-filled sums, never NULL', async () => {
    const rows = await gold(
      'org_daily_usage_by_service',
      'usage_events',
      [
        silverEvent({ usage_date: '2025-07-17', metric: 'cpu_hours', value: 2.5, cost_usd_increment: '0.5' }),
        silverEvent({ usage_date: '2025-07-18', value: 10, cost_usd_increment: '0.2' }),
        silverEvent({
          usage_date: '2025-07-18',
          value: 30,
          cost_usd_increment: '0.6',
          schema_version: 2,
          carbon_kg: '0.001',
        }),
      ],
      ['usage_date'],
    );
    const d = byKey(rows, 'usage_date');
    expect(d['2025-07-17']).toMatchObject({
      total_cost_usd: '0.500000',
      total_requests: '0.000000',
      cpu_hours: '2.500000',
      storage_gb_hours: '0.000000',
      genai_tokens: '0',
      carbon_kg: null,
      event_count: '1',
    });
    expect(d['2025-07-18']).toMatchObject({
      total_requests: '40.000000',
      cpu_hours: '0.000000',
      genai_tokens: '0',
      carbon_kg: '0.001000000',
      event_count: '2',
    });
  });

  it('avg_cost_per_request = cost / requests rounded to 6 dp, NULL when the day has 0 requests', async () => {
    const rows = await gold(
      'org_daily_usage_by_service',
      'usage_events',
      [
        silverEvent({
          usage_date: '2025-07-01',
          service: 'compute',
          metric: 'requests',
          value: 0,
          cost_usd_increment: '0.3',
        }),
        silverEvent({
          usage_date: '2025-07-01',
          service: 'storage',
          metric: 'storage_gb_hours',
          value: 5,
          cost_usd_increment: '0.3',
        }),
        silverEvent({
          usage_date: '2025-07-02',
          service: 'compute',
          metric: 'requests',
          value: 3,
          cost_usd_increment: '1',
        }),
      ],
      ['usage_date', 'service'],
    );
    expect(rows.map((r) => [r.usage_date, r.service, r.avg_cost_per_request])).toEqual([
      ['2025-07-01', 'compute', null],
      ['2025-07-01', 'storage', null],
      ['2025-07-02', 'compute', 0.333333],
    ]);
  });
});

describe('gold revenue_by_org_month', () => {
  it("currency_original = 'MIXED' (fx_rate NULL) when a month has several currencies; USD sums from amount × fx", async () => {
    const inv = (over: Fixture): Fixture => ({ org_id: 'org-1', credits: '0', taxes: '0', ...over });
    const rows = await gold(
      'revenue_by_org_month',
      'billing',
      [
        inv({
          invoice_id: 'i1',
          billing_month: '2025-07-01',
          currency: 'USD',
          fx_rate: '1',
          subtotal: '100',
          credits: '10',
          taxes: '5',
          source_line: 2,
        }),
        inv({
          invoice_id: 'i2',
          billing_month: '2025-07-01',
          currency: 'EUR',
          fx_rate: '1.1',
          subtotal: '100',
          source_line: 3,
        }),
        inv({
          invoice_id: 'i3',
          billing_month: '2025-08-01',
          currency: 'EUR',
          fx_rate: '1.1',
          subtotal: '100',
          source_line: 4,
        }),
        inv({
          invoice_id: 'i4',
          billing_month: '2025-08-01',
          currency: 'EUR',
          fx_rate: '1.2',
          subtotal: '50',
          source_line: 5,
        }),
      ],
      ['billing_month'],
      { orgs: ORGS },
    );
    const m = byKey(rows, 'billing_month');
    expect(m['2025-07-01']).toMatchObject({
      org_name: 'Acme',
      currency_original: 'MIXED',
      fx_rate: null,
      gross_revenue_usd: '210.000000',
      credits_usd: '10.000000',
      taxes_usd: '5.000000',
      net_revenue_usd: '200.000000',
      total_billed_usd: '205.000000',
      invoice_count: '2',
    });
    expect(m['2025-08-01']).toMatchObject({
      currency_original: 'EUR',
      fx_rate: 1.133333,
      gross_revenue_usd: '170.000000',
      invoice_count: '2',
    });
  });
});

describe('gold cost_anomaly_mart (SPEC §5 day level, trailing baseline)', () => {
  const D = '2025-07-20';
  /** One silver event of org-1 on `day` (compute unless `over` says otherwise). */
  const ev = (day: string, cost: string, over: Fixture = {}): Fixture =>
    silverEvent({ usage_date: day, cost_usd_increment: cost, ...over });
  const mart = (rows: Fixture[]): Promise<OutRow[]> =>
    gold('cost_anomaly_mart', 'usage_events', rows, ['org_id', 'service', 'usage_date']);
  const at = (rows: OutRow[], service: string, day: string): OutRow =>
    rows.find((r) => r.service === service && r.usage_date === day)!;

  it('x = the day total; baseline = the daily totals of the days with usage in [d − 28, d − 1]; signed scores', async () => {
    // compute: seven days with usage (totals 1..7, day 3 from two events) spread over three weeks; the gaps are no
    // observations (zero-filled, n would be 19 and the mean 28/19)
    const days = [-19, -16, -13, -10, -7, -4, -1].map((k) => addDays(D, k));
    const rows = await mart([
      ...days.flatMap((day, i) => (i === 2 ? [ev(day, '1'), ev(day, '2')] : [ev(day, String(i + 1))])),
      ev(D, '10', { is_anomaly: true }),
      ev(D, '5'),
      // storage: an unusually cheap day is as anomalous as an expensive one (signed score, absolute flag)
      ...days.map((day, i) => ev(day, String(10 + i), { service: 'storage' })),
      ev(D, '0', { service: 'storage' }),
    ]);
    const ref = reference([1, 2, 3, 4, 5, 6, 7]);
    const c = at(rows, 'compute', D);
    expect(c).toMatchObject({ total_cost_usd: '15.000000', anomaly_event_count: '1', is_anomaly: true });
    expect(num(c.zscore)).toBeCloseTo((15 - ref.mean) / ref.sd, 6);
    expect(num(c.robust_z)).toBeCloseTo((0.6745 * (15 - ref.median)) / ref.mad, 6);
    expect(c).toMatchObject({ zscore_flag: true, mad_flag: true, pctl_flag: true });
    const s = at(rows, 'storage', D);
    const refS = reference([10, 11, 12, 13, 14, 15, 16]);
    expect(num(s.zscore)).toBeCloseTo((0 - refS.mean) / refS.sd, 6);
    expect(num(s.robust_z)).toBeCloseTo((0.6745 * (0 - refS.median)) / refS.mad, 6);
    expect(num(s.zscore)).toBeLessThan(-3);
    expect(s).toMatchObject({ zscore_flag: true, mad_flag: true, pctl_flag: false, is_anomaly: true });
    // the earlier days have fewer than 7 days in their baseline: not scored
    expect(at(rows, 'compute', days[6])).toMatchObject({ zscore: null, robust_z: null, is_anomaly: false });
  });

  it('day d is not in its own baseline, d − 28 is, d − 29 is not', async () => {
    const rows = await mart([
      ...[1, 2, 3, 4, 5, 6, 7].map((x, i) => ev(addDays(D, -28 + i), String(x))),
      ev(addDays(D, -29), '1000'),
      ev(D, '5'),
      // the other (org, service) series of the same days stays out of it
      ev(addDays(D, -1), '999', { org_id: 'org-2' }),
    ]);
    // the baseline is d − 28 .. d − 22 (1..7). With d − 29 (1000) or d itself (5) in it the mean and median would
    // move; with d − 28 left out n would be 6 → NULL.
    const ref = reference([1, 2, 3, 4, 5, 6, 7]);
    const r = at(rows, 'compute', D);
    expect(num(r.zscore)).toBeCloseTo((5 - ref.mean) / ref.sd, 6);
    expect(num(r.robust_z)).toBeCloseTo((0.6745 * (5 - ref.median)) / ref.mad, 6);
    expect(r.is_anomaly).toBe(false);
  });

  it('a run scores only the days it computes (model_units), as a run of every day scores them', async () => {
    const rows = [
      ...[4, 1, 3, 2, 5, 9, 6, 2].map((x, i) => ev(addDays(D, -9 + i), String(x))),
      ev(D, '40'),
      ev(addDays(D, 1), '3'),
      ev(addDays(D, 2), '2', { service: 'storage' }),
    ];
    const units = [addDays(D, -2), D, addDays(D, 2)];
    const all = await mart(rows);
    const some = await gold('cost_anomaly_mart', 'usage_events', rows, ['org_id', 'service', 'usage_date'], {}, units);
    expect(some.map((r) => r.usage_date)).toEqual(units);
    expect(some).toEqual(all.filter((r) => units.includes(r.usage_date as string)));
    expect(at(some, 'compute', D)).toMatchObject({ is_anomaly: true });
  });

  it('fewer than 7 days with usage in the baseline: scores NULL and every flag false', async () => {
    const rows = await mart([
      ...[1, 2, 3, 4, 5, 6].map((x, i) => ev(addDays(D, -6 + i), String(x))),
      ev(D, '100'),
      // the day after has seven (d − 6 .. d − 1 plus d): scored
      ev(addDays(D, 1), '100'),
    ]);
    expect(at(rows, 'compute', D)).toMatchObject({
      zscore: null,
      robust_z: null,
      pctl_flag: false,
      zscore_flag: false,
      mad_flag: false,
      is_anomaly: false,
    });
    expect(num(at(rows, 'compute', addDays(D, 1)).zscore)).not.toBeNull();
  });

  it('zero spread: z and robust z NULL with their flags false; the percentile method still applies', async () => {
    const rows = await mart([...[-7, -6, -5, -4, -3, -2, -1].map((k) => ev(addDays(D, k), '2')), ev(D, '3.5')]);
    // p99 of seven days of 2 is 2: 3.5 > 3 flags
    expect(at(rows, 'compute', D)).toMatchObject({
      zscore: null,
      robust_z: null,
      zscore_flag: false,
      mad_flag: false,
      pctl_flag: true,
      is_anomaly: true,
    });
  });
});

describe('gold org_service_cost_summary', () => {
  /** The dates 2025-07-<from> … 2025-07-<to>. */
  const july = (from: number, to: number): string[] =>
    Array.from({ length: to - from + 1 }, (_, i) => `2025-07-${String(from + i).padStart(2, '0')}`);

  it('every date × (org, service) pair with usage in the 14 days ending at it; windows of 1/7/14 days, days without usage 0', async () => {
    const rows = await gold(
      'org_service_cost_summary',
      'usage_events',
      [
        silverEvent({ usage_date: '2025-07-01', service: 'compute', cost_usd_increment: '1' }),
        silverEvent({ usage_date: '2025-07-10', service: 'compute', cost_usd_increment: '2' }),
        silverEvent({ usage_date: '2025-07-05', service: 'storage', cost_usd_increment: '4' }),
        // a zero-cost event is usage too
        silverEvent({ usage_date: '2025-07-12', service: 'analytics', cost_usd_increment: '0' }),
        silverEvent({ org_id: 'org-2', usage_date: '2025-07-03', service: 'compute', cost_usd_increment: '0.5' }),
        silverEvent({ org_id: 'org-2', usage_date: '2025-07-15', service: 'compute', cost_usd_increment: '0.25' }),
        silverEvent({ org_id: 'org-2', usage_date: '2025-07-01', service: 'storage', cost_usd_increment: '0.1' }),
      ],
      ['org_id', 'service', 'summary_date'],
    );
    const datesOf = (org: string, service: string): Json[] =>
      rows.filter((r) => r.org_id === org && r.service === service).map((r) => r.summary_date);
    // the usage range is 2025-07-01..2025-07-15; a pair appears from its first usage until 13 days after its last
    expect(datesOf('org-1', 'compute')).toEqual(july(1, 15));
    expect(datesOf('org-1', 'storage')).toEqual(july(5, 15));
    expect(datesOf('org-1', 'analytics')).toEqual(july(12, 15));
    expect(datesOf('org-2', 'compute')).toEqual(july(3, 15));
    expect(datesOf('org-2', 'storage')).toEqual(july(1, 14)); // 07-01 is not in the 14 days ending at 07-15
    expect(rows).toHaveLength(15 + 11 + 4 + 13 + 14);
    const at = (org: string, service: string, date: string): Json[] => {
      const r = rows.find((x) => x.org_id === org && x.service === service && x.summary_date === date)!;
      return [r.cost_1d, r.cost_7d, r.cost_14d, r.rank_14d];
    };
    // [cost_1d, cost_7d, cost_14d, rank_14d]; windows include summary_date and go back 6 / 13 days
    expect(at('org-1', 'compute', '2025-07-03')).toEqual(['0.000000', '1.000000', '1.000000', 1]);
    expect(at('org-1', 'compute', '2025-07-07')).toEqual(['0.000000', '1.000000', '1.000000', 2]);
    expect(at('org-1', 'compute', '2025-07-08')).toEqual(['0.000000', '0.000000', '1.000000', 2]);
    expect(at('org-1', 'compute', '2025-07-10')).toEqual(['2.000000', '2.000000', '3.000000', 2]);
    expect(at('org-1', 'compute', '2025-07-14')).toEqual(['0.000000', '2.000000', '3.000000', 2]);
    expect(at('org-1', 'compute', '2025-07-15')).toEqual(['0.000000', '2.000000', '2.000000', 2]);
    expect(at('org-1', 'storage', '2025-07-15')).toEqual(['0.000000', '0.000000', '4.000000', 1]);
    expect(at('org-1', 'analytics', '2025-07-12')).toEqual(['0.000000', '0.000000', '0.000000', 3]);
    expect(at('org-2', 'compute', '2025-07-09')).toEqual(['0.000000', '0.500000', '0.500000', 1]);
    expect(at('org-2', 'compute', '2025-07-10')).toEqual(['0.000000', '0.000000', '0.500000', 1]);
    expect(at('org-2', 'compute', '2025-07-15')).toEqual(['0.250000', '0.250000', '0.750000', 1]);
    expect(at('org-2', 'storage', '2025-07-01')).toEqual(['0.100000', '0.100000', '0.100000', 1]);
    expect(at('org-2', 'storage', '2025-07-14')).toEqual(['0.000000', '0.000000', '0.100000', 2]);
  });

  it('a pair leaves the grid after 13 days without usage and comes back with its next usage day', async () => {
    const rows = await gold(
      'org_service_cost_summary',
      'usage_events',
      [
        silverEvent({ usage_date: '2025-07-01', service: 'compute', cost_usd_increment: '1' }),
        silverEvent({ usage_date: '2025-07-20', service: 'compute', cost_usd_increment: '2' }),
        silverEvent({ usage_date: '2025-07-22', service: 'compute', cost_usd_increment: '4' }),
      ],
      ['summary_date'],
    );
    expect(rows.map((r) => r.summary_date)).toEqual([...july(1, 14), ...july(20, 22)]);
    expect(rows.map((r) => [r.cost_1d, r.cost_14d]).slice(-4)).toEqual([
      ['0.000000', '1.000000'],
      ['2.000000', '2.000000'],
      ['0.000000', '2.000000'],
      ['4.000000', '6.000000'],
    ]);
  });

  it('rank_14d: 1 = costliest, ties broken by service name', async () => {
    const rows = await gold(
      'org_service_cost_summary',
      'usage_events',
      [
        silverEvent({ service: 'storage', cost_usd_increment: '2' }),
        silverEvent({ service: 'analytics', cost_usd_increment: '2' }),
        silverEvent({ service: 'networking', cost_usd_increment: '5' }),
        silverEvent({ service: 'compute', cost_usd_increment: '1' }),
        silverEvent({ org_id: 'org-2', service: 'storage', cost_usd_increment: '0.1' }),
      ],
      ['org_id', 'rank_14d'],
    );
    expect(rows.map((r) => [r.org_id, r.service, r.rank_14d])).toEqual([
      ['org-1', 'networking', 1],
      ['org-1', 'analytics', 2],
      ['org-1', 'storage', 3],
      ['org-1', 'compute', 4],
      ['org-2', 'storage', 1],
    ]);
  });
});

describe('gold genai_tokens_by_org_date', () => {
  it('est_cost_per_1k_tokens over v2 genai events only; NULL when the day has no tokens', async () => {
    const rows = await gold(
      'genai_tokens_by_org_date',
      'usage_events',
      [
        silverEvent({
          usage_date: '2025-07-20',
          service: 'genai',
          schema_version: 2,
          genai_tokens: 1500,
          cost_usd_increment: '0.3',
        }),
        silverEvent({
          usage_date: '2025-07-20',
          service: 'genai',
          schema_version: 2,
          genai_tokens: 500,
          cost_usd_increment: '0.1',
        }),
        silverEvent({ usage_date: '2025-07-20', service: 'genai', schema_version: 1, cost_usd_increment: '5' }),
        silverEvent({
          usage_date: '2025-07-20',
          service: 'compute',
          schema_version: 2,
          genai_tokens: 9999,
          cost_usd_increment: '7',
        }),
        silverEvent({
          usage_date: '2025-07-21',
          service: 'genai',
          schema_version: 2,
          genai_tokens: null,
          cost_usd_increment: '0.2',
        }),
      ],
      ['usage_date'],
    );
    expect(rows).toEqual([
      {
        org_id: 'org-1',
        usage_date: '2025-07-20',
        total_tokens: '2000',
        genai_events: '2',
        total_cost_usd: '0.400000',
        est_cost_per_1k_tokens: 0.2,
      },
      {
        org_id: 'org-1',
        usage_date: '2025-07-21',
        total_tokens: '0',
        genai_events: '1',
        total_cost_usd: '0.200000',
        est_cost_per_1k_tokens: null,
      },
    ]);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Plausibility (issue 9): bounds from config (defaults: cost 100000, |value| 1e6, |carbon| 1000, |tokens| 1e9,
// invoice 1e7 USD, fx 1000, dates in [2000-01-01, ingest_ts + 1 day]); a value at a bound is kept, beyond it is not.
// ---------------------------------------------------------------------------------------------------------------

describe('plausibility rules (silver usage_events)', () => {
  it('implausible_cost / _value / _carbon / _tokens: beyond the bound quarantined, at the bound kept', async () => {
    const cases: Array<[string, Fixture, string | null]> = [
      ['cost-at', { cost_usd_increment: '100000' }, null],
      ['cost-over', { cost_usd_increment: '100000.000001' }, 'implausible_cost'],
      ['cost-huge', { cost_usd_increment: '999999999999' }, 'implausible_cost'],
      ['cost-neg-huge', { cost_usd_increment: '-999999999999' }, 'negative_cost'],
      ['value-at', { value: '1000000' }, null],
      ['value-neg-at', { metric: 'cpu_hours', value: '-1000000' }, null],
      ['value-over', { value: '1000000.5' }, 'implausible_value'],
      ['value-exp', { metric: 'storage_gb_hours', value: '1e13' }, 'implausible_value'],
      ['value-neg-over', { metric: 'cpu_hours', value: '-1000001' }, 'implausible_value'],
      ['carbon-at', { schema_version: 2, carbon_kg: '1000' }, null],
      ['carbon-over', { schema_version: 2, carbon_kg: '1000.000000001' }, 'implausible_carbon'],
      ['carbon-neg-over', { schema_version: 2, carbon_kg: '-999999999' }, 'implausible_carbon'],
      ['tokens-at', { service: 'genai', schema_version: 2, genai_tokens: '1000000000' }, null],
      ['tokens-over', { service: 'genai', schema_version: 2, genai_tokens: '1000000001' }, 'implausible_tokens'],
      [
        'tokens-max',
        { service: 'genai', schema_version: 2, genai_tokens: '9223372036854775807' },
        'implausible_tokens',
      ],
      [
        'tokens-min',
        { service: 'genai', schema_version: 2, genai_tokens: '-9223372036854775808' },
        'implausible_tokens',
      ],
    ];
    const rows = byKey(
      await withSession((s) =>
        silverEvents(
          s,
          cases.map(([id, over]) => event(id, over)),
        ),
      ),
      'event_id',
    );
    for (const [id, , rule] of cases) expect([id, rows[id]._rule]).toEqual([id, rule]);
    expect(rows['cost-over']._detail).toBe('cost_usd_increment 100000.000001 > 100000');
    expect(rows['value-exp']._detail).toContain('value 1');
    expect(rows['tokens-min']._detail).toContain('-9223372036854775808');
  });

  it('implausible_timestamp: before 2000-01-01 or more than 1 day after the row ingest_ts; precedes the other rules', async () => {
    const ingest = '2025-08-01 00:00:00';
    const at = (ts: string, over: Fixture = {}): Fixture => ({
      timestamp_raw: ts,
      event_ts: ts,
      usage_date: ts.slice(0, 10),
      ingest_ts: ingest,
      ...over,
    });
    const cases: Array<[string, Fixture, string | null]> = [
      ['min-at', at('2000-01-01 00:00:00'), null],
      ['min-before', at('1999-12-31 23:59:59'), 'implausible_timestamp'],
      ['year-1', at('0001-01-01 00:00:00'), 'implausible_timestamp'],
      ['future-at', at('2025-08-02 00:00:00'), null],
      ['future-over', at('2025-08-02 00:00:01'), 'implausible_timestamp'],
      ['year-2100', at('2100-01-01 00:00:00'), 'implausible_timestamp'],
      ['year-9999', at('9999-12-31 23:59:59'), 'implausible_timestamp'],
      ['no-ingest-ts', at('2100-01-01 00:00:00', { ingest_ts: null }), null],
      ['before-unknown-service', at('2100-01-01 00:00:00', { service: 'teleport' }), 'implausible_timestamp'],
    ];
    const rows = byKey(
      await withSession((s) =>
        silverEvents(
          s,
          cases.map(([id, over]) => event(id, over)),
        ),
      ),
      'event_id',
    );
    for (const [id, , rule] of cases) expect([id, rows[id]._rule]).toEqual([id, rule]);
    expect(rows['year-2100']._detail).toBe('timestamp 2100-01-01 00:00:00 outside [2000-01-01, ingest_ts + 1 days]');
  });
});

describe('plausibility rules (silver billing, tickets)', () => {
  const invoice = (id: string, over: Fixture, i: number): Fixture => ({
    invoice_id: id,
    org_id: 'org-1',
    month: '2025-07-01',
    subtotal: '100',
    currency: 'USD',
    exchange_rate_to_usd: '1.0',
    source_file: 'billing_monthly.csv',
    source_line: i + 2,
    ingest_ts: '2025-08-01 00:00:00',
    ...over,
  });

  it('implausible_amount / implausible_fx / implausible_timestamp on invoices; bounds inclusive', async () => {
    const cases: Array<[string, Fixture, string | null]> = [
      ['sub-at', { subtotal: '10000000' }, null],
      ['sub-over', { subtotal: '10000000.000001' }, 'implausible_amount'],
      ['sub-huge', { subtotal: '999999999999' }, 'implausible_amount'],
      ['eur-over', { subtotal: '9090910', currency: 'EUR', exchange_rate_to_usd: '1.1' }, 'implausible_amount'],
      ['credits-over', { credits: '999999999999' }, 'implausible_amount'],
      ['taxes-over', { taxes: '-10000001' }, 'implausible_amount'],
      ['fx-at', { subtotal: '1', currency: 'ARS', exchange_rate_to_usd: '1000' }, null],
      ['fx-over', { subtotal: '1', currency: 'ARS', exchange_rate_to_usd: '1000.000001' }, 'implausible_fx'],
      ['fx-huge', { subtotal: '1', currency: 'ARS', exchange_rate_to_usd: '999999999999' }, 'implausible_fx'],
      ['month-before', { month: '1999-12-01' }, 'implausible_timestamp'],
      ['month-future', { month: '2100-01-01' }, 'implausible_timestamp'],
      ['month-now', { month: '2025-08-01' }, null],
    ];
    const rows = byKey(
      await withSession(async (s) => {
        await s.bronze(
          'billing',
          cases.map(([id, over], i) => invoice(id, over, i)),
        );
        return s.model('silver/billing.sql', ['source_line']);
      }),
      'invoice_id',
    );
    for (const [id, , rule] of cases) expect([id, rows[id]._rule]).toEqual([id, rule]);
    expect(rows['sub-at']).toMatchObject({ subtotal_usd: '10000000.000000' });
    expect(rows['fx-at']).toMatchObject({ subtotal_usd: '1000.000000' });
  });

  it('implausible_timestamp on tickets: created_at before 2000-01-01 or after ingest_ts + 1 day', async () => {
    const cases: Array<[string, string, string | null]> = [
      ['t-min', '2000-01-01 00:00:00', null],
      ['t-before', '1999-12-31 23:59:59', 'implausible_timestamp'],
      ['t-year-1', '0001-01-01 00:00:00', 'implausible_timestamp'],
      ['t-future', '2100-01-01 00:00:00', 'implausible_timestamp'],
      ['t-next-day', '2025-08-02 00:00:00', null],
    ];
    const rows = byKey(
      await withSession(async (s) => {
        await s.bronze(
          'tickets',
          cases.map(([id, created], i) => ({
            ticket_id: id,
            org_id: 'org-1',
            severity: 'low',
            created_at: created,
            resolved_at: null,
            source_line: i + 2,
            ingest_ts: '2025-08-01 00:00:00',
          })),
        );
        return s.model('silver/tickets.sql', ['source_line']);
      }),
      'ticket_id',
    );
    for (const [id, , rule] of cases) expect([id, rows[id]._rule]).toEqual([id, rule]);
  });
});

describe('gold size does not depend on the spread of dates', () => {
  it.each([
    ['0001-01-01', '2025-08-01'],
    ['2025-08-01', '9999-12-31'],
  ])(
    'org_service_cost_summary with usage on %s and %s: 14 rows per usage day at most, built in seconds',
    async (a, b) => {
      const pairs = 40;
      const events: Fixture[] = [];
      for (let p = 0; p < pairs; p++) {
        for (const d of [a, b])
          events.push(silverEvent({ org_id: `org-${p}`, usage_date: d, cost_usd_increment: '1' }));
      }
      const started = Date.now();
      const rows = await gold('org_service_cost_summary', 'usage_events', events, ['org_id', 'summary_date']);
      const elapsed = Date.now() - started;
      // the earlier date opens its 14 days; the last date of the range only itself
      expect(rows).toHaveLength(pairs * 15);
      const last = rows.filter((r) => r.summary_date === b);
      expect(last).toHaveLength(pairs);
      expect(last[0]).toMatchObject({ cost_1d: '1.000000', cost_7d: '1.000000', cost_14d: '1.000000', rank_14d: 1 });
      expect(elapsed).toBeLessThan(10_000);
    },
    60_000,
  );
});
