import { loadConfig } from '../../config/env';
import { aliasesVersion, codeVersion, modelVariables } from '../../lake/incremental';
import { findModel, GOLD_MARTS, waves } from '../../lake/tables';
import { loadSql } from '../../lake/duckdb';
import { byKey, RulesLake, silverEvent } from '../support/rules-harness';
import { addDays } from '../../workflows/logical-date';
import type { Fixture, OutRow, RulesSession } from '../support/rules-harness';

/**
 * The further marts of SPEC §6b over tiny fixture rows: every status and utilization_class, both attribution models,
 * orgs with nothing (zeros, not NULLs), 0 denominators (NULL ratios), the 30/14/7-day window edges and the
 * tolerance parameter. Inputs are silver fixtures; the gold marts the §6b marts read are built from them by their own
 * models (gold_<mart>), the way the pipeline chains them.
 */

let lake: RulesLake;

beforeAll(async () => {
  lake = await RulesLake.create();
});

afterAll(() => {
  lake.close();
});

/** A kept silver event on the marts' reference day unless `over` names another. */
const ev = (over: Fixture): Fixture => silverEvent(over, '2025-08-31');

const ALL_SILVER = [
  'orgs',
  'usage_events',
  'billing',
  'tickets',
  'marketing_touches',
  'nps_surveys',
  'users',
  'resources',
];

/**
 * Loads silver fixtures (every silver table the §6b marts read; missing ones empty), builds the gold marts they read
 * with the production SQL, then runs `mart` and returns its rows ordered by `orderBy`.
 */
async function mart(
  s: RulesSession,
  name: string,
  silver: Partial<Record<string, Fixture[]>>,
  orderBy: string[],
): Promise<OutRow[]> {
  for (const t of ALL_SILVER) await s.silver(t, silver[t] ?? []);
  for (const input of findModel('gold', name).inputs.filter((i) => i.layer === 'gold')) {
    await s.conn.run(
      `create or replace temp table gold_${input.table} as select * from (\n${loadSql(`gold/${input.table}.sql`)}\n)`,
    );
  }
  return s.model(`gold/${name}.sql`, orderBy);
}

async function run(
  name: string,
  silver: Partial<Record<string, Fixture[]>>,
  orderBy: string[],
  on: RulesLake = lake,
): Promise<{ rows: OutRow[]; q: (sql: string) => Promise<OutRow[]> }> {
  const s = await on.session();
  try {
    const rows = await mart(s, name, silver, orderBy);
    // the session's relations stay readable for invariants until the session closes: copy what a test asks now
    const cache = new Map<string, OutRow[]>();
    for (const sql of [
      `select sum(total_cost_usd)::varchar as v from gold_org_daily_usage_by_service`,
      `select sum(net_revenue_usd)::varchar as v from gold_revenue_by_org_month`,
    ]) {
      try {
        cache.set(sql, await s.query(sql));
      } catch {
        /* the mart does not read that gold table */
      }
    }
    return { rows, q: async (sql) => cache.get(sql) ?? [] };
  } finally {
    s.close();
  }
}

const ORG = (id: string, over: Fixture = {}): Fixture => ({
  org_id: id,
  org_name: `Org ${id}`,
  industry: 'retail',
  plan_tier: 'pro',
  hq_region: 'us-east',
  is_enterprise: false,
  signup_date: '2025-01-15',
  lifecycle_stage: 'customer',
  marketing_source: 'ads',
  ...over,
});

let line = 0;
const inv = (org: string, month: string, subtotal: string, over: Fixture = {}): Fixture => {
  line += 1;
  return {
    invoice_id: `inv-${line}`,
    org_id: org,
    billing_month: month,
    currency: 'USD',
    fx_rate: '1',
    subtotal,
    credits: '0',
    taxes: '0',
    source_line: line,
    ...over,
  };
};

describe('gold customer_360 (SPEC §6b)', () => {
  const D = '2025-08-31';

  it('one row per silver org: 30-day windows end at as_of (d − 29 in, d − 30 out), all-time totals, every section', async () => {
    const { rows } = await run(
      'customer_360',
      {
        orgs: [ORG('org-1', { is_enterprise: true }), ORG('org-2')],
        usage_events: [
          ev({ usage_date: addDays(D, -30), cost_usd_increment: '100', service: 'database' }),
          ev({ usage_date: addDays(D, -29), cost_usd_increment: '1.5' }),
          ev({ usage_date: addDays(D, -1), cost_usd_increment: '2.25', service: 'storage' }),
          ev({ usage_date: addDays(D, -40), service: 'genai', schema_version: 2, genai_tokens: 500 }),
          ev({ usage_date: D, service: 'genai', schema_version: 2, genai_tokens: 1200, cost_usd_increment: '0.01' }),
          // another org's later day does not move as_of past D: as_of is the latest day of all events
          ev({ org_id: 'org-3', usage_date: addDays(D, -5), cost_usd_increment: '7' }),
        ],
        billing: [
          inv('org-1', '2025-07-01', '100', { credits: '10', taxes: '5' }),
          inv('org-1', '2025-08-01', '50', { currency: 'EUR', fx_rate: '1.2' }),
          inv('org-1', '2025-08-01', '10'),
        ],
        tickets: [
          {
            ticket_id: 't1',
            org_id: 'org-1',
            severity: 'critical',
            created_at: `${addDays(D, -29)} 09:00:00`,
            ticket_date: addDays(D, -29),
            resolved_at: null,
            sla_breached: true,
            csat: 2,
          },
          {
            ticket_id: 't2',
            org_id: 'org-1',
            severity: 'critical',
            created_at: `${addDays(D, -30)} 09:00:00`,
            ticket_date: addDays(D, -30),
            resolved_at: `${addDays(D, -29)} 09:00:00`,
            sla_breached: false,
            csat: 5,
          },
          {
            ticket_id: 't3',
            org_id: 'org-1',
            severity: 'low',
            created_at: `${D} 09:00:00`,
            ticket_date: D,
            resolved_at: `${D} 10:00:00`,
            sla_breached: false,
            csat: null,
          },
        ],
        marketing_touches: [
          { touch_id: 'm1', org_id: 'org-1', channel: 'ads', campaign: 'c', touch_date: '2025-06-01', clicked: true },
          {
            touch_id: 'm2',
            org_id: 'org-1',
            channel: 'email',
            campaign: 'c',
            touch_date: '2025-06-20',
            converted: true,
          },
        ],
        nps_surveys: [
          { org_id: 'org-1', survey_date: '2025-06-01', nps_score: 40 },
          { org_id: 'org-1', survey_date: '2025-08-01', nps_score: -20 },
        ],
        users: [
          { user_id: 'u1', org_id: 'org-1', active: true },
          { user_id: 'u2', org_id: 'org-1', active: false },
          { user_id: 'u3', org_id: 'org-1', active: null },
        ],
      },
      ['org_id'],
    );
    // org-3 has usage but is not a silver org: no row (the grain is every silver org)
    expect(rows.map((r) => r.org_id)).toEqual(['org-1', 'org-2']);
    const o = byKey(rows, 'org_id');
    expect(o['org-1']).toEqual({
      org_id: 'org-1',
      org_name: 'Org org-1',
      industry: 'retail',
      plan_tier: 'pro',
      hq_region: 'us-east',
      is_enterprise: true,
      signup_date: '2025-01-15',
      lifecycle_stage: 'customer',
      marketing_source: 'ads',
      as_of: D,
      cost_30d: '3.760000',
      cost_total: '103.760000',
      active_services_30d: '3',
      genai_tokens_30d: '1200',
      first_usage_date: addDays(D, -40),
      last_usage_date: D,
      net_revenue_usd_total: '160.000000',
      total_billed_usd_total: '165.000000',
      invoice_count: '3',
      last_billing_month: '2025-08-01',
      tickets_total: '3',
      open_tickets: '1',
      critical_tickets_30d: '1',
      sla_breach_rate: 0.333333,
      avg_csat: 3.5,
      touches: '2',
      clicks: '1',
      conversions: '1',
      last_touch_date: '2025-06-20',
      latest_nps_score: -20,
      nps_surveys: '2',
      users_total: '3',
      active_users: '1',
    });
  });

  it('an org with no usage, invoices, tickets, touches, surveys or users: zeros, and NULL ratios and dates', async () => {
    const { rows } = await run(
      'customer_360',
      { orgs: [ORG('org-2')], usage_events: [ev({ org_id: 'org-9', usage_date: D })] },
      ['org_id'],
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      as_of: D,
      cost_30d: '0.000000',
      cost_total: '0.000000',
      active_services_30d: '0',
      genai_tokens_30d: '0',
      first_usage_date: null,
      last_usage_date: null,
      net_revenue_usd_total: '0.000000',
      total_billed_usd_total: '0.000000',
      invoice_count: '0',
      last_billing_month: null,
      tickets_total: '0',
      open_tickets: '0',
      critical_tickets_30d: '0',
      sla_breach_rate: null,
      avg_csat: null,
      touches: '0',
      clicks: '0',
      conversions: '0',
      last_touch_date: null,
      latest_nps_score: null,
      nps_surveys: '0',
      users_total: '0',
      active_users: '0',
    });
  });

  it('invariant: Σ cost_total = Σ gold daily cost (every org of the events is a silver org)', async () => {
    const { rows, q } = await run(
      'customer_360',
      {
        orgs: [ORG('a'), ORG('b'), ORG('c')],
        usage_events: [
          ev({ org_id: 'a', usage_date: '2025-06-01', cost_usd_increment: '1.000001' }),
          ev({ org_id: 'a', usage_date: D, cost_usd_increment: '-0.005' }),
          ev({ org_id: 'b', usage_date: '2025-07-09', cost_usd_increment: '12.5', service: 'genai' }),
        ],
      },
      ['org_id'],
    );
    const total = rows.reduce((a, r) => a + BigInt(String(r.cost_total).replace('.', '')), 0n);
    const [daily] = await q(`select sum(total_cost_usd)::varchar as v from gold_org_daily_usage_by_service`);
    expect(total.toString()).toBe(String(daily.v).replace('.', ''));
  });
});

describe('gold marketing_attribution (SPEC §6b)', () => {
  const touch = (id: string, org: string, ts: string, channel: string, campaign: string, over: Fixture = {}) => ({
    touch_id: id,
    org_id: org,
    touch_ts: ts,
    touch_date: ts.slice(0, 10),
    channel,
    campaign,
    clicked: false,
    converted: false,
    ...over,
  });
  const silver = {
    // org-a: net 100 = 60 + 40 over two months; three touches, two tied on the earliest timestamp (touch_id decides)
    billing: [inv('org-a', '2025-07-01', '60'), inv('org-a', '2025-08-01', '50', { credits: '10' })].concat(
      // org-c has revenue but no touches: it is not attributed
      [inv('org-c', '2025-08-01', '1000')],
    ),
    marketing_touches: [
      touch('tb', 'org-a', '2025-05-01 00:00:00', 'ads', 'spring', { clicked: true }),
      touch('ta', 'org-a', '2025-05-01 00:00:00', 'email', 'spring', { clicked: true, converted: true }),
      touch('tc', 'org-a', '2025-04-01 12:00:00', 'ads', 'spring'),
      // org-b: touches but no invoice — credited 0, still an attributed org
      touch('tz', 'org-b', '2025-06-01 00:00:00', 'ads', 'spring'),
      // org-d: three equal shares of 10.000000 — truncated to 3.333333, the remainder to the earliest touch
      touch('d1', 'org-d', '2025-06-03 00:00:00', 'event', 'fall'),
      touch('d2', 'org-d', '2025-06-01 00:00:00', 'event', 'fall'),
      touch('d3', 'org-d', '2025-06-02 00:00:00', 'email', 'spring'),
    ],
  };
  silver.billing.push(inv('org-d', '2025-08-01', '10'));

  it('first_touch credits all of an org’s net revenue to its earliest touch (timestamp, then touch_id)', async () => {
    const { rows } = await run('marketing_attribution', silver, ['attribution_model', 'channel', 'campaign']);
    const ft = rows.filter((r) => r.attribution_model === 'first_touch');
    expect(ft.map((r) => [r.channel, r.campaign, r.attributed_orgs, r.attributed_net_revenue_usd])).toEqual([
      // org-a's earliest is tc (2025-04-01); org-b's only touch tz; org-d's earliest d2
      ['ads', 'spring', '2.000000', '100.000000'],
      ['email', 'spring', '0.000000', '0.000000'],
      ['event', 'fall', '1.000000', '10.000000'],
    ]);
  });

  it('first_touch tie on the timestamp: the smaller touch_id wins', async () => {
    const { rows } = await run(
      'marketing_attribution',
      {
        billing: [inv('org-a', '2025-07-01', '60')],
        marketing_touches: [
          touch('tb', 'org-a', '2025-05-01 00:00:00', 'ads', 'spring'),
          touch('ta', 'org-a', '2025-05-01 00:00:00', 'email', 'spring'),
        ],
      },
      ['attribution_model', 'channel'],
    );
    expect(
      rows.filter((r) => r.attribution_model === 'first_touch').map((r) => [r.channel, r.attributed_net_revenue_usd]),
    ).toEqual([
      ['ads', '0.000000'],
      ['email', '60.000000'],
    ]);
  });

  it('linear splits each org’s net revenue equally over its touches; shares sum exactly to the org’s revenue', async () => {
    const { rows } = await run('marketing_attribution', silver, ['attribution_model', 'channel', 'campaign']);
    const li = rows.filter((r) => r.attribution_model === 'linear');
    expect(li.map((r) => [r.channel, r.campaign, r.attributed_orgs, r.attributed_net_revenue_usd])).toEqual([
      // org-a: 3 touches of 33.333333 (+0.000001 to tc, the earliest), tc and tb on ads; org-b 1/1 of 0;
      ['ads', 'spring', '1.666667', '66.666667'],
      ['email', 'spring', '0.666666', '36.666666'],
      // org-d: d2 (earliest) 3.333334, d1 3.333333 on event/fall; d3 on email/spring
      ['event', 'fall', '0.666667', '6.666667'],
    ]);
  });

  it('touches, clicks and conversions count the channel × campaign’s touches, the same under both models', async () => {
    const { rows } = await run('marketing_attribution', silver, ['attribution_model', 'channel', 'campaign']);
    const counts = (m: string) =>
      rows
        .filter((r) => r.attribution_model === m)
        .map((r) => [r.channel, r.touches, r.clicks, r.conversions, r.click_rate, r.conversion_rate]);
    expect(counts('first_touch')).toEqual([
      ['ads', '3', '1', '0', 0.333333, 0],
      ['email', '2', '1', '1', 0.5, 0.5],
      ['event', '2', '0', '0', 0, 0],
    ]);
    expect(counts('linear')).toEqual(counts('first_touch'));
  });

  it('invariant: per model, Σ attributed_net_revenue_usd = Σ net revenue of the orgs with touches; Σ attributed_orgs = their number', async () => {
    const { rows } = await run('marketing_attribution', silver, ['attribution_model', 'channel', 'campaign']);
    for (const m of ['first_touch', 'linear']) {
      const of = rows.filter((r) => r.attribution_model === m);
      const units = (col: string) => of.reduce((a, r) => a + BigInt(String(r[col]).replace('.', '')), 0n);
      // org-a 100 + org-b 0 + org-d 10; org-c (no touches) left out
      expect({ m, revenue: units('attributed_net_revenue_usd'), orgs: units('attributed_orgs') }).toEqual({
        m,
        revenue: 110_000000n,
        orgs: 3_000000n,
      });
    }
  });
});

describe('gold resource_utilization (SPEC §6b)', () => {
  const D = '2025-08-31';
  const res = (id: string, state: string, over: Fixture = {}): Fixture => ({
    resource_id: id,
    org_id: 'org-1',
    service: 'compute',
    region: 'us-east',
    state,
    created_at: '2025-05-01 00:00:00',
    ...over,
  });
  const use = (id: string, day: string, over: Fixture = {}): Fixture =>
    ev({ resource_id: id, usage_date: day, cost_usd_increment: '1', ...over });

  it('utilization_class: unused (no events ever), idle (none in the 14 days to as_of), active; idle_days', async () => {
    const { rows } = await run(
      'resource_utilization',
      {
        resources: [
          res('r-active', 'running'),
          res('r-edge', 'running'),
          res('r-idle', 'running'),
          res('r-unused', 'running'),
        ],
        usage_events: [
          use('r-active', D),
          use('r-edge', addDays(D, -13)),
          use('r-idle', addDays(D, -14)),
          use('r-idle', addDays(D, -40)),
          // an event of a resource that is not a silver resource, and one without resource: no row, but as_of counts
          use('r-ghost', D),
          use(null as unknown as string, D),
        ],
      },
      ['resource_id'],
    );
    expect(rows.map((r) => [r.resource_id, r.as_of, r.utilization_class, r.last_usage_date, r.idle_days])).toEqual([
      ['r-active', D, 'active', D, '0'],
      ['r-edge', D, 'active', addDays(D, -13), '13'],
      ['r-idle', D, 'idle', addDays(D, -14), '14'],
      ['r-unused', D, 'unused', null, null],
    ]);
    expect(byKey(rows, 'resource_id')['r-unused']).toMatchObject({
      events_30d: '0',
      active_days_30d: '0',
      cost_30d: '0.000000',
      cpu_hours_30d: '0.000000',
      storage_gb_hours_30d: '0.000000',
      requests_30d: '0.000000',
      stopped_but_billed: false,
    });
  });

  it('30-day figures: [as_of − 29, as_of] (d − 30 left out); Σ value by metric; distinct active days', async () => {
    const { rows } = await run(
      'resource_utilization',
      {
        resources: [res('r1', 'running')],
        usage_events: [
          use('r1', addDays(D, -30), { cost_usd_increment: '100', metric: 'cpu_hours', value: 100 }),
          use('r1', addDays(D, -29), { metric: 'cpu_hours', value: 2.5 }),
          use('r1', addDays(D, -29), { metric: 'storage_gb_hours', value: 4 }),
          use('r1', D, { metric: 'requests', value: 30, cost_usd_increment: '0.25' }),
        ],
      },
      ['resource_id'],
    );
    expect(rows[0]).toMatchObject({
      events_30d: '3',
      active_days_30d: '2',
      cost_30d: '2.250000',
      cpu_hours_30d: '2.500000',
      storage_gb_hours_30d: '4.000000',
      requests_30d: '30.000000',
      utilization_class: 'active',
    });
  });

  it('stopped_but_billed: stopped or terminated with cost > 0 in the 7 days to as_of (d − 6 in, d − 7 out)', async () => {
    const { rows } = await run(
      'resource_utilization',
      {
        resources: [
          res('r-stopped', 'stopped'),
          res('r-terminated', 'terminated'),
          res('r-old-cost', 'stopped'),
          res('r-free', 'stopped'),
          res('r-running', 'running'),
        ],
        usage_events: [
          use('r-stopped', addDays(D, -6)),
          use('r-terminated', D, { cost_usd_increment: '0.01' }),
          use('r-old-cost', addDays(D, -7)),
          use('r-free', D, { cost_usd_increment: '0' }),
          use('r-running', D),
        ],
      },
      ['resource_id'],
    );
    expect(Object.fromEntries(rows.map((r) => [r.resource_id, r.stopped_but_billed]))).toEqual({
      'r-free': false,
      'r-old-cost': false,
      'r-running': false,
      'r-stopped': true,
      'r-terminated': true,
    });
  });
});

describe('gold usage_billing_reconciliation (SPEC §6b)', () => {
  // the feed runs 2025-07-03 .. 2025-08-31: July is partial, August covered, June has no usage at all
  const feed = [
    ev({ org_id: 'feed', usage_date: '2025-07-03', cost_usd_increment: '0' }),
    ev({ org_id: 'feed', usage_date: '2025-08-31', cost_usd_increment: '0' }),
  ];
  const usage = (org: string, day: string, cost: string) =>
    ev({ org_id: org, usage_date: day, cost_usd_increment: cost });
  const silver = {
    usage_events: [
      ...feed,
      usage('o-match', '2025-07-10', '40'),
      usage('o-match', '2025-08-01', '60'),
      usage('o-match', '2025-08-31', '40'),
      usage('o-edge', '2025-08-05', '100'),
      usage('o-over', '2025-08-05', '100'),
      usage('o-under', '2025-08-05', '100'),
      usage('o-noinv', '2025-08-05', '5'),
      usage('o-zero', '2025-08-05', '0'),
      usage('o-zero-billed', '2025-08-05', '0'),
    ],
    billing: [
      inv('o-match', '2025-06-01', '10'),
      inv('o-match', '2025-07-01', '41'),
      inv('o-match', '2025-08-01', '100', { currency: 'EUR', fx_rate: '1.01' }),
      inv('o-edge', '2025-08-01', '98'),
      inv('o-over', '2025-08-01', '102.000001'),
      inv('o-under', '2025-08-01', '97'),
      inv('o-zero', '2025-08-01', '0'),
      inv('o-zero-billed', '2025-08-01', '5'),
    ],
  };
  const key = (r: OutRow) => `${String(r.org_id)} ${String(r.billing_month)}`;

  it('every (org, month) of billing ∪ usage, with each status', async () => {
    const { rows } = await run('usage_billing_reconciliation', silver, ['org_id', 'billing_month']);
    const byK = Object.fromEntries(rows.map((r) => [key(r), r]));
    expect(Object.fromEntries(rows.map((r) => [key(r), r.status]))).toEqual({
      'feed 2025-07-01': 'no_invoice',
      'feed 2025-08-01': 'no_invoice',
      'o-edge 2025-08-01': 'match',
      'o-match 2025-06-01': 'no_usage',
      'o-match 2025-07-01': 'partial_month',
      'o-match 2025-08-01': 'match',
      'o-noinv 2025-08-01': 'no_invoice',
      'o-over 2025-08-01': 'over_billed',
      'o-under 2025-08-01': 'under_billed',
      'o-zero 2025-08-01': 'match',
      'o-zero-billed 2025-08-01': 'over_billed',
    });
    expect(byK['o-match 2025-08-01']).toEqual({
      org_id: 'o-match',
      billing_month: '2025-08-01',
      metered_cost_usd: '100.000000',
      usage_days: '2',
      month_covered: true,
      billed_subtotal_usd: '101.000000',
      invoice_count: '1',
      difference_usd: '1.000000',
      difference_pct: 0.01,
      status: 'match',
    });
    expect(byK['o-match 2025-06-01']).toMatchObject({
      metered_cost_usd: '0.000000',
      usage_days: '0',
      month_covered: false,
      billed_subtotal_usd: '10.000000',
      difference_usd: '10.000000',
      difference_pct: null,
    });
    expect(byK['o-match 2025-07-01']).toMatchObject({ month_covered: false, usage_days: '1', difference_pct: 0.025 });
    // |−2 %| is within the default tolerance 0.02 (inclusive); 2.000001 % is not, though its ratio rounds to 0.02
    expect(byK['o-edge 2025-08-01']).toMatchObject({ difference_usd: '-2.000000', difference_pct: -0.02 });
    expect(byK['o-over 2025-08-01']).toMatchObject({ difference_pct: 0.02, difference_usd: '2.000001' });
    expect(byK['o-noinv 2025-08-01']).toMatchObject({
      metered_cost_usd: '5.000000',
      billed_subtotal_usd: null,
      invoice_count: '0',
      difference_usd: null,
      difference_pct: null,
    });
    // metered 0: no ratio (NULL); matches only a bill of exactly 0
    expect(byK['o-zero 2025-08-01']).toMatchObject({ difference_pct: null, difference_usd: '0.000000' });
    expect(byK['o-zero-billed 2025-08-01']).toMatchObject({ difference_pct: null, difference_usd: '5.000000' });
  });

  it('invariant: metered_cost_usd per (org, month) = Σ of the daily mart over that month', async () => {
    const s = await lake.session();
    try {
      const rows = await mart(s, 'usage_billing_reconciliation', silver, ['org_id', 'billing_month']);
      const sums = await s.query(
        `select org_id, date_trunc('month', usage_date)::date::varchar as m, sum(total_cost_usd)::decimal(18, 6)::varchar as v
         from gold_org_daily_usage_by_service group by 1, 2`,
      );
      const want = Object.fromEntries(sums.map((r) => [`${String(r.org_id)} ${String(r.m)}`, r.v]));
      for (const r of rows) expect([key(r), r.metered_cost_usd]).toEqual([key(r), want[key(r)] ?? '0.000000']);
    } finally {
      s.close();
    }
  });

  it('the tolerance is CPA_RECONCILIATION_TOLERANCE, and it is part of the mart’s code version', async () => {
    const strict = await RulesLake.create({ CPA_RECONCILIATION_TOLERANCE: '0.005' });
    try {
      const { rows } = await run('usage_billing_reconciliation', silver, ['org_id', 'billing_month'], strict);
      const st = Object.fromEntries(rows.map((r) => [key(r), r.status]));
      expect(st['o-match 2025-08-01']).toBe('over_billed');
      expect(st['o-edge 2025-08-01']).toBe('under_billed');
    } finally {
      strict.close();
    }
    const m = findModel('gold', 'usage_billing_reconciliation');
    const v = (tol: string) =>
      codeVersion(m, modelVariables(loadConfig({ CPA_RECONCILIATION_TOLERANCE: tol })), aliasesVersion());
    expect(v('0.02')).not.toBe(v('0.05'));
    // a mart that does not read the parameter keeps its version
    const c = findModel('gold', 'customer_360');
    const cv = (tol: string) =>
      codeVersion(c, modelVariables(loadConfig({ CPA_RECONCILIATION_TOLERANCE: tol })), aliasesVersion());
    expect(cv('0.02')).toBe(cv('0.05'));
  });
});

describe('registry', () => {
  it('a §6b mart that reads a gold mart runs in a later wave than it', () => {
    const wave = new Map<string, number>();
    waves(GOLD_MARTS).forEach((w, i) => w.forEach((m) => wave.set(m.table, i)));
    for (const m of GOLD_MARTS)
      for (const i of m.inputs.filter((x) => x.layer === 'gold'))
        expect([m.table, wave.get(m.table)! > wave.get(i.table)!]).toEqual([m.table, true]);
    expect(wave.get('customer_360')).toBe(1);
    expect(wave.get('resource_utilization')).toBe(0);
  });
});
