/**
 * The dashboard queries of SPEC §8 (q1–q5) and §6b (q6–q9) as data: id, title, the serving table it reads and its result columns with
 * their kinds. Both backends (serving/queries.ts) shape their rows from these; the CLI lists them without loading a
 * driver.
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

interface QueryDef {
  title: string;
  /** The serving table the query reads (its gold mart for DuckDB); its latest date is the default as_of. */
  table: string;
  needsOrg: boolean;
  columns: Array<[string, Kind]>;
}

export const QUERIES: Record<QueryId, QueryDef> = {
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
  },
};
