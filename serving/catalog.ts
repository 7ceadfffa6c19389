/**
 * The five dashboard queries of SPEC §8 as data: id, title, the serving table it reads and its result columns with
 * their kinds. Both backends (serving/queries.ts) shape their rows from these; the CLI lists them without loading a
 * driver.
 */

export type QueryId = 'q1' | 'q2' | 'q3' | 'q4' | 'q5';
export type Backend = 'cassandra' | 'duckdb';
export type Cell = string | number | null;
export type ResultRow = Record<string, Cell>;

export const QUERY_IDS: QueryId[] = ['q1', 'q2', 'q3', 'q4', 'q5'];

export type Kind = 'date' | 'text' | 'dec6' | 'dec9' | 'count' | 'int' | 'double';

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
};
