/** A column of a lake table: name and DuckDB type. */
export interface ColumnDef {
  name: string;
  type: string;
}

/**
 * Source contracts (SPEC §1, §3): every CSV's exact header (names and order) and the type each column must parse
 * as. A file that breaks its contract is rejected whole. `key` is the grain; `bronze` is the bronze table name.
 */
export interface CsvContract {
  bronze: string;
  file: string;
  key: string[];
  columns: ColumnDef[];
}

const c = (name: string, type: string): ColumnDef => ({ name, type });

export const CSV_CONTRACTS: CsvContract[] = [
  {
    bronze: 'orgs',
    file: 'customers_orgs.csv',
    key: ['org_id'],
    columns: [
      c('org_id', 'VARCHAR'),
      c('org_name', 'VARCHAR'),
      c('industry', 'VARCHAR'),
      c('hq_region', 'VARCHAR'),
      c('plan_tier', 'VARCHAR'),
      c('is_enterprise', 'BOOLEAN'),
      c('signup_date', 'DATE'),
      c('sales_rep', 'VARCHAR'),
      c('lifecycle_stage', 'VARCHAR'),
      c('marketing_source', 'VARCHAR'),
      c('nps_score', 'DOUBLE'),
    ],
  },
  {
    bronze: 'users',
    file: 'users.csv',
    key: ['user_id'],
    columns: [
      c('user_id', 'VARCHAR'),
      c('org_id', 'VARCHAR'),
      c('email', 'VARCHAR'),
      c('role', 'VARCHAR'),
      c('active', 'BOOLEAN'),
      c('created_at', 'TIMESTAMP'),
      c('last_login', 'TIMESTAMP'),
    ],
  },
  {
    bronze: 'resources',
    file: 'resources.csv',
    key: ['resource_id'],
    columns: [
      c('resource_id', 'VARCHAR'),
      c('org_id', 'VARCHAR'),
      c('service', 'VARCHAR'),
      c('region', 'VARCHAR'),
      c('created_at', 'TIMESTAMP'),
      c('state', 'VARCHAR'),
      c('tags_json', 'VARCHAR'),
    ],
  },
  {
    bronze: 'billing',
    file: 'billing_monthly.csv',
    key: ['invoice_id'],
    columns: [
      c('invoice_id', 'VARCHAR'),
      c('org_id', 'VARCHAR'),
      c('month', 'DATE'),
      c('subtotal', 'DECIMAL(18,6)'),
      c('credits', 'DECIMAL(18,6)'),
      c('taxes', 'DECIMAL(18,6)'),
      c('currency', 'VARCHAR'),
      c('exchange_rate_to_usd', 'DECIMAL(18,6)'),
    ],
  },
  {
    bronze: 'tickets',
    file: 'support_tickets.csv',
    key: ['ticket_id'],
    columns: [
      c('ticket_id', 'VARCHAR'),
      c('org_id', 'VARCHAR'),
      c('category', 'VARCHAR'),
      c('severity', 'VARCHAR'),
      c('created_at', 'TIMESTAMP'),
      c('resolved_at', 'TIMESTAMP'),
      c('csat', 'DOUBLE'),
      c('sla_breached', 'BOOLEAN'),
    ],
  },
  {
    bronze: 'marketing_touches',
    file: 'marketing_touches.csv',
    key: ['touch_id'],
    columns: [
      c('touch_id', 'VARCHAR'),
      c('org_id', 'VARCHAR'),
      c('campaign', 'VARCHAR'),
      c('channel', 'VARCHAR'),
      c('timestamp', 'TIMESTAMP'),
      c('clicked', 'BOOLEAN'),
      c('converted', 'BOOLEAN'),
    ],
  },
  {
    bronze: 'nps_surveys',
    file: 'nps_surveys.csv',
    key: ['org_id', 'survey_date'],
    columns: [c('org_id', 'VARCHAR'), c('survey_date', 'DATE'), c('nps_score', 'DOUBLE'), c('comment', 'VARCHAR')],
  },
];

/** Ingest metadata columns appended to every bronze table. */
export const INGEST_COLUMNS: ColumnDef[] = [
  c('ingest_ts', 'TIMESTAMP'),
  c('source_file', 'VARCHAR'),
  c('source_line', 'INTEGER'),
  c('run_id', 'VARCHAR'),
];

/** Bronze usage_events: v1 and v2 unioned to one explicitly typed schema (SPEC §3). */
export const BRONZE_EVENT_COLUMNS: ColumnDef[] = [
  c('event_id', 'VARCHAR'),
  c('timestamp_raw', 'VARCHAR'),
  c('event_ts', 'TIMESTAMP'),
  c('org_id', 'VARCHAR'),
  c('resource_id', 'VARCHAR'),
  c('service', 'VARCHAR'),
  c('region', 'VARCHAR'),
  c('metric', 'VARCHAR'),
  c('value', 'VARCHAR'),
  c('unit', 'VARCHAR'),
  c('cost_usd_increment', 'DECIMAL(18,6)'),
  c('schema_version', 'INTEGER'),
  c('carbon_kg', 'DECIMAL(18,9)'),
  c('genai_tokens', 'BIGINT'),
  c('cast_errors', 'VARCHAR'),
  c('usage_date', 'DATE'),
  ...INGEST_COLUMNS,
];

export const QUARANTINE_COLUMNS: ColumnDef[] = [
  c('rule', 'VARCHAR'),
  c('detail', 'VARCHAR'),
  c('source_file', 'VARCHAR'),
  c('source_line', 'INTEGER'),
  c('raw', 'VARCHAR'),
];

/** Gold mart contract (SPEC §6): exact names and column order. Tests and the data dictionary read this. */
export const GOLD_COLUMNS: Record<string, string[]> = {
  org_daily_usage_by_service: [
    'org_id',
    'usage_date',
    'service',
    'total_cost_usd',
    'total_requests',
    'cpu_hours',
    'storage_gb_hours',
    'genai_tokens',
    'carbon_kg',
    'event_count',
    'avg_cost_per_request',
    'anomaly_event_count',
  ],
  cost_anomaly_mart: [
    'org_id',
    'usage_date',
    'service',
    'total_cost_usd',
    'zscore',
    'robust_z',
    'pctl_flag',
    'zscore_flag',
    'mad_flag',
    'is_anomaly',
    'anomaly_event_count',
  ],
  revenue_by_org_month: [
    'org_id',
    'billing_month',
    'org_name',
    'industry',
    'plan_tier',
    'currency_original',
    'fx_rate',
    'gross_revenue_usd',
    'credits_usd',
    'taxes_usd',
    'net_revenue_usd',
    'total_billed_usd',
    'invoice_count',
  ],
  tickets_by_org_date: [
    'org_id',
    'ticket_date',
    'severity',
    'total_tickets',
    'open_tickets',
    'sla_breach_count',
    'sla_breach_rate',
    'avg_csat',
    'avg_resolution_days',
  ],
  genai_tokens_by_org_date: [
    'org_id',
    'usage_date',
    'total_tokens',
    'genai_events',
    'total_cost_usd',
    'est_cost_per_1k_tokens',
  ],
  org_service_cost_summary: ['org_id', 'summary_date', 'service', 'cost_1d', 'cost_7d', 'cost_14d', 'rank_14d'],
  // SPEC §6b
  customer_360: [
    'org_id',
    'org_name',
    'industry',
    'plan_tier',
    'hq_region',
    'is_enterprise',
    'signup_date',
    'lifecycle_stage',
    'marketing_source',
    'as_of',
    'cost_30d',
    'cost_total',
    'active_services_30d',
    'genai_tokens_30d',
    'first_usage_date',
    'last_usage_date',
    'net_revenue_usd_total',
    'total_billed_usd_total',
    'invoice_count',
    'last_billing_month',
    'tickets_total',
    'open_tickets',
    'critical_tickets_30d',
    'sla_breach_rate',
    'avg_csat',
    'touches',
    'clicks',
    'conversions',
    'last_touch_date',
    'latest_nps_score',
    'nps_surveys',
    'users_total',
    'active_users',
  ],
  marketing_attribution: [
    'attribution_model',
    'channel',
    'campaign',
    'touches',
    'clicks',
    'conversions',
    'click_rate',
    'conversion_rate',
    'attributed_orgs',
    'attributed_net_revenue_usd',
  ],
  resource_utilization: [
    'resource_id',
    'org_id',
    'service',
    'region',
    'state',
    'created_at',
    'as_of',
    'events_30d',
    'active_days_30d',
    'cost_30d',
    'cpu_hours_30d',
    'storage_gb_hours_30d',
    'requests_30d',
    'last_usage_date',
    'idle_days',
    'utilization_class',
    'stopped_but_billed',
  ],
  usage_billing_reconciliation: [
    'org_id',
    'billing_month',
    'metered_cost_usd',
    'usage_days',
    'month_covered',
    'billed_subtotal_usd',
    'invoice_count',
    'difference_usd',
    'difference_pct',
    'status',
  ],
};
