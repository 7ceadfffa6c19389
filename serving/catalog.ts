import { ATTRIBUTION_RANK } from '../config/serving';

/**
 * The dashboard queries of SPEC §8 (q1–q5) and §6b (q6–q9) as data, one entry each: id, title, the serving table it
 * reads, its result columns with their kinds, and how to fetch it on each backend — the CQL over the serving table and
 * the SQL over its gold mart, both from the same parameters ({@link FetchParams}) and returning the same raw row shape.
 * serving/queries.ts has one generic fetch per backend and the shaping both share; adding a query is adding an entry
 * here (and its serving table in config/serving.ts). Pure: the CLI lists the queries without loading a driver.
 */

export type QueryId = 'q1' | 'q2' | 'q3' | 'q4' | 'q5' | 'q6' | 'q7' | 'q8' | 'q9';
export type Backend = 'cassandra' | 'duckdb';
export type Cell = string | number | boolean | null;
export type ResultRow = Record<string, Cell>;

export const QUERY_IDS: QueryId[] = ['q1', 'q2', 'q3', 'q4', 'q5', 'q6', 'q7', 'q8', 'q9'];

/** The attribution models of gold.marketing_attribution (SPEC §6b), in q7's output order. */
export const ATTRIBUTION_MODELS = ['first_touch', 'linear'] as const;

/** The statuses q9 lists: every usage_billing_reconciliation status but `match`. */
export const NON_MATCH_STATUSES = ['no_invoice', 'no_usage', 'over_billed', 'partial_month', 'under_billed'] as const;

export type Kind = 'date' | 'text' | 'dec6' | 'dec9' | 'count' | 'int' | 'double' | 'bool';

/** What each query's fetch binds, after defaults (serving/queries.ts `runQuery` resolves them). */
export interface FetchParams {
  q1: { org: string; from: string; to: string };
  q2: { org: string; asOf: string; top: number };
  /** `org` null: all orgs (Cassandra's `scope = '*'` partition). */
  q3: { org: string | null; from: string; to: string };
  q4: { org: string; from: string; to: string };
  q5: { org: string; from: string; to: string };
  /** The org's customer_360 row (none for an unknown org). */
  q6: { org: string };
  /** The top `top` channel × campaign rows of one attribution model, by revenue_rank. */
  q7: { model: string; top: number };
  /** Every resource of the org (the shared shaping keeps the idle and stopped-but-billed ones). */
  q8: { org: string };
  /** The month's reconciliation rows whose status is not `match`. */
  q9: { month: string };
}

/** A value bound to a CQL statement: as is, a list (`IN ?`), or a date (a driver LocalDate). */
export type CqlValue = string | number | readonly string[] | { date: string };

/** Where a statement reads: the qualified table or view, and the query's columns as a select list for that backend. */
export interface From {
  from: string;
  select: string;
}

export interface QueryDef<P = never> {
  title: string;
  /** The serving table the query reads (its gold mart for DuckDB); its latest date is the default as_of. */
  table: string;
  needsOrg: boolean;
  columns: Array<[string, Kind]>;
  /** Cassandra: one statement on `<keyspace>.<table>`, values bound by position. */
  cql: { text: (t: From) => string; params: (p: P) => CqlValue[] };
  /** DuckDB: one statement on the view `gold_<mart>` of the table's gold source, values bound by name. */
  sql: { text: (t: From, p: P) => string; params: (p: P) => Record<string, string | number> };
}

const date = (d: string): CqlValue => ({ date: d });

export const QUERIES: { [Q in QueryId]: QueryDef<FetchParams[Q]> } = {
  q1: {
    title: 'daily cost, requests, cpu, storage and carbon per service',
    table: 'finops_daily_usage',
    needsOrg: true,
    columns: [
      ['usage_date', 'date'],
      ['service', 'text'],
      ['total_cost_usd', 'dec6'],
      ['total_requests', 'dec6'],
      ['cpu_hours', 'dec6'],
      ['storage_gb_hours', 'dec6'],
      ['carbon_kg', 'dec9'],
      ['event_count', 'count'],
      // 'batch' for rows of days the batch layer closed; the speed-layer merge adds 'speed' rows after them.
      ['source', 'text'],
    ],
    cql: {
      text: ({ from }) =>
        `SELECT usage_date, service, total_cost_usd, total_requests, cpu_hours, storage_gb_hours, carbon_kg, event_count
     FROM ${from} WHERE org_id = ? AND usage_date >= ? AND usage_date <= ?`,
      params: (p) => [p.org, date(p.from), date(p.to)],
    },
    sql: {
      text: ({ from }) =>
        `select usage_date::varchar as usage_date, service, total_cost_usd, total_requests, cpu_hours, storage_gb_hours, carbon_kg,
       event_count
     from ${from}
     where org_id = $org and usage_date between $from::date and $to::date
     order by usage_date, service`,
      params: (p) => ({ org: p.org, from: p.from, to: p.to }),
    },
  },
  q2: {
    title: 'top services by cumulative cost over the 14 days up to as_of',
    table: 'org_service_cost_summary',
    needsOrg: true,
    columns: [
      ['rank', 'int'],
      ['service', 'text'],
      ['cost_14d', 'dec6'],
      ['cost_7d', 'dec6'],
      ['cost_1d', 'dec6'],
    ],
    // Both return rank_14d; the shared shaping renames it rank.
    cql: {
      text: ({ from }) =>
        `SELECT rank_14d, service, cost_14d, cost_7d, cost_1d FROM ${from}
     WHERE org_id = ? AND summary_date = ? LIMIT ?`,
      params: (p) => [p.org, date(p.asOf), p.top],
    },
    sql: {
      text: ({ from }) =>
        `select rank_14d, service, cost_14d, cost_7d, cost_1d
     from ${from}
     where org_id = $org and summary_date = $as_of::date
     order by rank_14d
     limit $top`,
      params: (p) => ({ org: p.org, as_of: p.asOf, top: p.top }),
    },
  },
  q3: {
    title: 'critical tickets and SLA breach rate per day',
    table: 'support_tickets_summary',
    needsOrg: false,
    columns: [
      ['ticket_date', 'date'],
      ['critical_tickets', 'count'],
      ['critical_open', 'count'],
      ['critical_sla_breaches', 'count'],
      ['critical_sla_breach_rate', 'double'],
      ['total_tickets', 'count'],
      ['sla_breaches', 'count'],
      ['sla_breach_rate', 'double'],
    ],
    // Both return per-(day, severity) counts (serving/queries.ts TicketCounts); the shared ticketDays shapes the days.
    cql: {
      text: ({ from }) =>
        `SELECT ticket_date, severity, total_tickets, open_tickets, sla_breach_count FROM ${from}
     WHERE scope = ? AND ticket_date >= ? AND ticket_date <= ?`,
      params: (p) => [p.org ?? '*', date(p.from), date(p.to)],
    },
    sql: {
      text: ({ from }, p) =>
        `select ticket_date::varchar as ticket_date, coalesce(severity, 'unknown') as severity,
       sum(total_tickets)::bigint as total_tickets, sum(open_tickets)::bigint as open_tickets,
       sum(sla_breach_count)::bigint as sla_breach_count
     from ${from}
     where ticket_date between $from::date and $to::date ${p.org !== null ? 'and org_id = $org' : ''}
     group by 1, 2
     order by 1, 2`,
      params: (p) => {
        const bound: Record<string, string> = { from: p.from, to: p.to };
        if (p.org !== null) bound.org = p.org;
        return bound;
      },
    },
  },
  q4: {
    title: 'monthly revenue, credits and taxes in USD',
    table: 'revenue_monthly',
    needsOrg: true,
    columns: [
      ['billing_month', 'date'],
      ['currency_original', 'text'],
      ['fx_rate', 'double'],
      ['gross_revenue_usd', 'dec6'],
      ['credits_usd', 'dec6'],
      ['taxes_usd', 'dec6'],
      ['net_revenue_usd', 'dec6'],
      ['total_billed_usd', 'dec6'],
      ['invoice_count', 'count'],
    ],
    cql: {
      text: ({ from }) =>
        `SELECT billing_month, currency_original, fx_rate, gross_revenue_usd, credits_usd, taxes_usd, net_revenue_usd,
       total_billed_usd, invoice_count
     FROM ${from} WHERE org_id = ? AND billing_month >= ? AND billing_month <= ?`,
      params: (p) => [p.org, date(p.from), date(p.to)],
    },
    sql: {
      text: ({ from }) =>
        `select billing_month::varchar as billing_month, currency_original, fx_rate, gross_revenue_usd, credits_usd, taxes_usd,
       net_revenue_usd, total_billed_usd, invoice_count
     from ${from}
     where org_id = $org and billing_month between $from::date and $to::date
     order by billing_month`,
      params: (p) => ({ org: p.org, from: p.from, to: p.to }),
    },
  },
  q5: {
    title: 'GenAI tokens and estimated cost per day',
    table: 'genai_usage_daily',
    needsOrg: true,
    columns: [
      ['usage_date', 'date'],
      ['total_tokens', 'count'],
      ['genai_events', 'count'],
      ['total_cost_usd', 'dec6'],
      ['est_cost_per_1k_tokens', 'double'],
    ],
    cql: {
      text: ({ from }) =>
        `SELECT usage_date, total_tokens, genai_events, total_cost_usd, est_cost_per_1k_tokens
     FROM ${from} WHERE org_id = ? AND usage_date >= ? AND usage_date <= ?`,
      params: (p) => [p.org, date(p.from), date(p.to)],
    },
    sql: {
      text: ({ from }) =>
        `select usage_date::varchar as usage_date, total_tokens, genai_events, total_cost_usd, est_cost_per_1k_tokens
     from ${from}
     where org_id = $org and usage_date between $from::date and $to::date
     order by usage_date`,
      params: (p) => ({ org: p.org, from: p.from, to: p.to }),
    },
  },
  q6: {
    title: 'customer 360 of an org: usage, revenue, support, marketing, NPS and users',
    table: 'customer_360',
    needsOrg: true,
    columns: [
      ['org_id', 'text'],
      ['org_name', 'text'],
      ['industry', 'text'],
      ['plan_tier', 'text'],
      ['hq_region', 'text'],
      ['is_enterprise', 'bool'],
      ['signup_date', 'date'],
      ['lifecycle_stage', 'text'],
      ['marketing_source', 'text'],
      ['as_of', 'date'],
      ['cost_30d', 'dec6'],
      ['cost_total', 'dec6'],
      ['active_services_30d', 'count'],
      ['genai_tokens_30d', 'count'],
      ['first_usage_date', 'date'],
      ['last_usage_date', 'date'],
      ['net_revenue_usd_total', 'dec6'],
      ['total_billed_usd_total', 'dec6'],
      ['invoice_count', 'count'],
      ['last_billing_month', 'date'],
      ['tickets_total', 'count'],
      ['open_tickets', 'count'],
      ['critical_tickets_30d', 'count'],
      ['sla_breach_rate', 'double'],
      ['avg_csat', 'double'],
      ['touches', 'count'],
      ['clicks', 'count'],
      ['conversions', 'count'],
      ['last_touch_date', 'date'],
      ['latest_nps_score', 'double'],
      ['nps_surveys', 'count'],
      ['users_total', 'count'],
      ['active_users', 'count'],
    ],
    cql: { text: ({ from, select }) => `SELECT ${select} FROM ${from} WHERE org_id = ?`, params: (p) => [p.org] },
    sql: {
      text: ({ from, select }) => `select ${select} from ${from} where org_id = $org`,
      params: (p) => ({ org: p.org }),
    },
  },
  q7: {
    title: 'marketing attribution by model: top channel × campaign by attributed net revenue',
    table: 'marketing_attribution_by_model',
    needsOrg: false,
    columns: [
      ['attribution_model', 'text'],
      ['revenue_rank', 'int'],
      ['channel', 'text'],
      ['campaign', 'text'],
      ['attributed_net_revenue_usd', 'dec6'],
      ['attributed_orgs', 'dec6'],
      ['touches', 'count'],
      ['clicks', 'count'],
      ['conversions', 'count'],
      ['click_rate', 'double'],
      ['conversion_rate', 'double'],
    ],
    cql: {
      text: ({ from, select }) => `SELECT ${select} FROM ${from} WHERE attribution_model = ? LIMIT ?`,
      params: (p) => [p.model, p.top],
    },
    // Gold has no rank: the serving table's ranking (config/serving.ts ATTRIBUTION_RANK), computed here.
    sql: {
      text: ({ from, select }) =>
        `with ranked as (select *, ${ATTRIBUTION_RANK} as revenue_rank from ${from})
     select ${select} from ranked
     where attribution_model = $model and revenue_rank <= $top
     order by revenue_rank`,
      params: (p) => ({ model: p.model, top: p.top }),
    },
  },
  q8: {
    title: 'idle and stopped-but-billed resources of an org',
    table: 'org_resource_utilization',
    needsOrg: true,
    columns: [
      ['resource_id', 'text'],
      ['service', 'text'],
      ['region', 'text'],
      ['state', 'text'],
      ['utilization_class', 'text'],
      ['stopped_but_billed', 'bool'],
      ['last_usage_date', 'date'],
      ['idle_days', 'count'],
      ['events_30d', 'count'],
      ['cost_30d', 'dec6'],
      ['as_of', 'date'],
    ],
    cql: { text: ({ from, select }) => `SELECT ${select} FROM ${from} WHERE org_id = ?`, params: (p) => [p.org] },
    sql: {
      text: ({ from, select }) => `select ${select} from ${from} where org_id = $org order by resource_id`,
      params: (p) => ({ org: p.org }),
    },
  },
  q9: {
    title: 'usage vs billing reconciliation of a month: rows whose status is not match',
    table: 'billing_reconciliation_by_month',
    needsOrg: false,
    columns: [
      ['billing_month', 'date'],
      ['status', 'text'],
      ['org_id', 'text'],
      ['metered_cost_usd', 'dec6'],
      ['billed_subtotal_usd', 'dec6'],
      ['difference_usd', 'dec6'],
      ['difference_pct', 'double'],
      ['usage_days', 'count'],
      ['month_covered', 'bool'],
      ['invoice_count', 'count'],
    ],
    cql: {
      text: ({ from, select }) => `SELECT ${select} FROM ${from} WHERE billing_month = ? AND status IN ?`,
      params: (p) => [date(p.month), NON_MATCH_STATUSES],
    },
    sql: {
      text: ({ from, select }) =>
        `select ${select} from ${from}
     where billing_month = $month::date and status <> 'match' and org_id is not null
     order by status, org_id`,
      params: (p) => ({ month: p.month }),
    },
  },
};
