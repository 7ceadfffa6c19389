/**
 * The serving layer's table registry (SPEC §8): one Cassandra table per dashboard query, designed query-first, each
 * fed from one gold mart by a DuckDB projection. The DDL, the loader, the reconciliation and the queries all read
 * this file, so a table is declared exactly once. Pure data: no I/O here. Key choices are explained in
 * docs/decisions.md ("Serving (Cassandra)").
 */

/** CQL types used by the serving tables. */
export type CqlType = 'text' | 'date' | 'decimal' | 'bigint' | 'int' | 'double' | 'boolean';

export interface ServingColumn {
  name: string;
  type: CqlType;
  /** Decimal scale of the gold column: fixes the canonical text form ("8.667400") on both sides of a comparison. */
  scale?: number;
}

export interface ServingTable {
  name: string;
  /** The dashboard query (SPEC §8, §6b) this table answers. */
  query: 'q1' | 'q2' | 'q3' | 'q4' | 'q5' | 'q6' | 'q7' | 'q8' | 'q9';
  /** The schema migration that creates the table (1: q1–q5, 2: the §6b marts' q6–q9). */
  since: 1 | 2;
  /** Gold mart the rows come from. */
  source: string;
  /**
   * The serving column holding the gold mart's partition value (e.g. usage_date): a changed gold partition maps to
   * the rows with that value. It is the first clustering column, so a partition's rows for a set of values are one
   * `IN` slice. `null` = the mart is not partitioned and any change reloads the whole table.
   */
  scopeColumn: string | null;
  partitionKey: string[];
  clustering: string[];
  columns: ServingColumn[];
  /** LCS for the read-heavy daily series that batch re-loads overwrite; STCS for small or append-only tables. */
  compaction: 'LeveledCompactionStrategy' | 'SizeTieredCompactionStrategy';
  /** The date column whose latest value is the queries' default as_of (and the min/max recorded per load); null = none. */
  dateColumn: string | null;
  /** An additive decimal/bigint column whose exact sum is reported next to count and checksum. */
  sumColumn: string;
  /** DuckDB SQL over the view `src` (the gold mart) producing exactly `columns`, in order. */
  projection: string;
  comment: string;
}

const col = (name: string, type: CqlType, scale?: number): ServingColumn =>
  scale === undefined ? { name, type } : { name, type, scale };
const money = (name: string): ServingColumn => col(name, 'decimal', 6);

/**
 * q7's rank of a channel × campaign within its attribution model: attributed revenue descending, ties by channel
 * then campaign. The serving projection stores it; the DuckDB backend computes it with this same expression.
 */
export const ATTRIBUTION_RANK = `row_number() over (partition by attribution_model
    order by attributed_net_revenue_usd desc, channel asc nulls last, campaign asc nulls last)::integer`;

/** Tables in load order; every one mirrors its gold mart exactly (no TTL, see docs/decisions.md). */
export const SERVING_TABLES: ServingTable[] = [
  {
    name: 'finops_daily_usage',
    query: 'q1',
    since: 1,
    source: 'org_daily_usage_by_service',
    scopeColumn: 'usage_date',
    dateColumn: 'usage_date',
    partitionKey: ['org_id'],
    clustering: ['usage_date', 'service'],
    columns: [
      col('org_id', 'text'),
      col('usage_date', 'date'),
      col('service', 'text'),
      money('total_cost_usd'),
      money('total_requests'),
      money('cpu_hours'),
      money('storage_gb_hours'),
      col('genai_tokens', 'bigint'),
      col('carbon_kg', 'decimal', 9),
      col('event_count', 'bigint'),
      col('avg_cost_per_request', 'double'),
      col('anomaly_event_count', 'bigint'),
    ],
    compaction: 'LeveledCompactionStrategy',
    sumColumn: 'total_cost_usd',
    projection: `select org_id, usage_date, service, total_cost_usd, total_requests, cpu_hours, storage_gb_hours,
        genai_tokens, carbon_kg, event_count, avg_cost_per_request, anomaly_event_count
      from src`,
    comment: 'q1: daily cost, requests, cpu, storage, carbon per org and service over a date range',
  },
  {
    name: 'org_service_cost_summary',
    query: 'q2',
    since: 1,
    source: 'org_service_cost_summary',
    scopeColumn: 'summary_date',
    dateColumn: 'summary_date',
    partitionKey: ['org_id'],
    // rank as the last clustering column: top-N is `WHERE org_id = ? AND summary_date = ? LIMIT N`, no sort.
    clustering: ['summary_date', 'rank_14d'],
    columns: [
      col('org_id', 'text'),
      col('summary_date', 'date'),
      col('rank_14d', 'int'),
      col('service', 'text'),
      money('cost_1d'),
      money('cost_7d'),
      money('cost_14d'),
    ],
    compaction: 'LeveledCompactionStrategy',
    sumColumn: 'cost_1d',
    projection: `select org_id, summary_date, rank_14d, service, cost_1d, cost_7d, cost_14d from src`,
    comment: 'q2: top-N services by 14-day cost up to a date, per org (clustered by rank)',
  },
  {
    name: 'support_tickets_summary',
    query: 'q3',
    since: 1,
    source: 'tickets_by_org_date',
    scopeColumn: 'ticket_date',
    dateColumn: 'ticket_date',
    // scope = '*' holds the all-orgs roll-up (q3's default), otherwise an org_id: one partition answers either.
    partitionKey: ['scope'],
    clustering: ['ticket_date', 'severity'],
    columns: [
      col('scope', 'text'),
      col('ticket_date', 'date'),
      col('severity', 'text'),
      col('total_tickets', 'bigint'),
      col('open_tickets', 'bigint'),
      col('sla_breach_count', 'bigint'),
    ],
    compaction: 'LeveledCompactionStrategy',
    sumColumn: 'total_tickets',
    projection: `with t as (select org_id, ticket_date, coalesce(severity, 'unknown') as severity, total_tickets, open_tickets,
          sla_breach_count from src)
      select '*' as scope, ticket_date, severity, sum(total_tickets)::bigint as total_tickets,
          sum(open_tickets)::bigint as open_tickets, sum(sla_breach_count)::bigint as sla_breach_count
      from t group by ticket_date, severity
      union all
      select org_id as scope, ticket_date, severity, total_tickets, open_tickets, sla_breach_count from t`,
    comment: "q3: tickets per day and severity; scope '*' = all orgs, else one org_id",
  },
  {
    name: 'revenue_monthly',
    query: 'q4',
    since: 1,
    source: 'revenue_by_org_month',
    scopeColumn: null,
    dateColumn: 'billing_month',
    partitionKey: ['org_id'],
    clustering: ['billing_month'],
    columns: [
      col('org_id', 'text'),
      col('billing_month', 'date'),
      col('org_name', 'text'),
      col('industry', 'text'),
      col('plan_tier', 'text'),
      col('currency_original', 'text'),
      col('fx_rate', 'double'),
      money('gross_revenue_usd'),
      money('credits_usd'),
      money('taxes_usd'),
      money('net_revenue_usd'),
      money('total_billed_usd'),
      col('invoice_count', 'bigint'),
    ],
    compaction: 'SizeTieredCompactionStrategy',
    sumColumn: 'total_billed_usd',
    projection: `select org_id, billing_month, org_name, industry, plan_tier, currency_original, fx_rate, gross_revenue_usd,
        credits_usd, taxes_usd, net_revenue_usd, total_billed_usd, invoice_count
      from src`,
    comment: 'q4: monthly revenue, credits and taxes in USD per org',
  },
  {
    name: 'genai_usage_daily',
    query: 'q5',
    since: 1,
    source: 'genai_tokens_by_org_date',
    scopeColumn: 'usage_date',
    dateColumn: 'usage_date',
    partitionKey: ['org_id'],
    clustering: ['usage_date'],
    columns: [
      col('org_id', 'text'),
      col('usage_date', 'date'),
      col('total_tokens', 'bigint'),
      col('genai_events', 'bigint'),
      money('total_cost_usd'),
      col('est_cost_per_1k_tokens', 'double'),
    ],
    compaction: 'LeveledCompactionStrategy',
    sumColumn: 'total_cost_usd',
    projection: `select org_id, usage_date, total_tokens, genai_events, total_cost_usd, est_cost_per_1k_tokens from src`,
    comment: 'q5: GenAI tokens and estimated cost per day per org',
  },
  // SPEC §6b marts (schema version 2). Whole-table marts: any change reloads the table and deletes stale keys.
  {
    name: 'customer_360',
    query: 'q6',
    since: 2,
    source: 'customer_360',
    scopeColumn: null,
    dateColumn: 'as_of',
    partitionKey: ['org_id'],
    clustering: [],
    columns: [
      col('org_id', 'text'),
      col('org_name', 'text'),
      col('industry', 'text'),
      col('plan_tier', 'text'),
      col('hq_region', 'text'),
      col('is_enterprise', 'boolean'),
      col('signup_date', 'date'),
      col('lifecycle_stage', 'text'),
      col('marketing_source', 'text'),
      col('as_of', 'date'),
      money('cost_30d'),
      money('cost_total'),
      col('active_services_30d', 'bigint'),
      col('genai_tokens_30d', 'bigint'),
      col('first_usage_date', 'date'),
      col('last_usage_date', 'date'),
      money('net_revenue_usd_total'),
      money('total_billed_usd_total'),
      col('invoice_count', 'bigint'),
      col('last_billing_month', 'date'),
      col('tickets_total', 'bigint'),
      col('open_tickets', 'bigint'),
      col('critical_tickets_30d', 'bigint'),
      col('sla_breach_rate', 'double'),
      col('avg_csat', 'double'),
      col('touches', 'bigint'),
      col('clicks', 'bigint'),
      col('conversions', 'bigint'),
      col('last_touch_date', 'date'),
      col('latest_nps_score', 'double'),
      col('nps_surveys', 'bigint'),
      col('users_total', 'bigint'),
      col('active_users', 'bigint'),
    ],
    compaction: 'SizeTieredCompactionStrategy',
    sumColumn: 'cost_total',
    projection: `select org_id, org_name, industry, plan_tier, hq_region, is_enterprise, signup_date, lifecycle_stage,
        marketing_source, as_of, cost_30d, cost_total, active_services_30d, genai_tokens_30d, first_usage_date,
        last_usage_date, net_revenue_usd_total, total_billed_usd_total, invoice_count, last_billing_month, tickets_total,
        open_tickets, critical_tickets_30d, sla_breach_rate, avg_csat, touches, clicks, conversions, last_touch_date,
        latest_nps_score, nps_surveys, users_total, active_users
      from src`,
    comment: 'q6: customer 360 of an org (one row per org)',
  },
  {
    name: 'marketing_attribution_by_model',
    query: 'q7',
    since: 2,
    source: 'marketing_attribution',
    scopeColumn: null,
    dateColumn: null,
    partitionKey: ['attribution_model'],
    // rank as the clustering column: top-N is `WHERE attribution_model = ? LIMIT N`, no sort
    clustering: ['revenue_rank'],
    columns: [
      col('attribution_model', 'text'),
      col('revenue_rank', 'int'),
      col('channel', 'text'),
      col('campaign', 'text'),
      money('attributed_net_revenue_usd'),
      money('attributed_orgs'),
      col('touches', 'bigint'),
      col('clicks', 'bigint'),
      col('conversions', 'bigint'),
      col('click_rate', 'double'),
      col('conversion_rate', 'double'),
    ],
    compaction: 'SizeTieredCompactionStrategy',
    sumColumn: 'attributed_net_revenue_usd',
    projection: `select attribution_model, ${ATTRIBUTION_RANK} as revenue_rank, channel, campaign,
        attributed_net_revenue_usd, attributed_orgs, touches, clicks, conversions, click_rate, conversion_rate
      from src`,
    comment: 'q7: channel x campaign per attribution model, clustered by attributed-revenue rank',
  },
  {
    name: 'org_resource_utilization',
    query: 'q8',
    since: 2,
    source: 'resource_utilization',
    scopeColumn: null,
    dateColumn: 'as_of',
    partitionKey: ['org_id'],
    clustering: ['resource_id'],
    columns: [
      col('org_id', 'text'),
      col('resource_id', 'text'),
      col('service', 'text'),
      col('region', 'text'),
      col('state', 'text'),
      col('utilization_class', 'text'),
      col('stopped_but_billed', 'boolean'),
      col('last_usage_date', 'date'),
      col('idle_days', 'bigint'),
      col('events_30d', 'bigint'),
      col('active_days_30d', 'bigint'),
      money('cost_30d'),
      money('cpu_hours_30d'),
      money('storage_gb_hours_30d'),
      money('requests_30d'),
      col('as_of', 'date'),
    ],
    compaction: 'SizeTieredCompactionStrategy',
    sumColumn: 'cost_30d',
    projection: `select org_id, resource_id, service, region, state, utilization_class, stopped_but_billed, last_usage_date,
        idle_days, events_30d, active_days_30d, cost_30d, cpu_hours_30d, storage_gb_hours_30d, requests_30d, as_of
      from src`,
    comment: 'q8: resources of an org with utilization class and stopped-but-billed flag',
  },
  {
    name: 'billing_reconciliation_by_month',
    query: 'q9',
    since: 2,
    source: 'usage_billing_reconciliation',
    scopeColumn: null,
    dateColumn: 'billing_month',
    partitionKey: ['billing_month'],
    // status first: "every row of the month that is not a match" is one `status IN ?` slice of the month
    clustering: ['status', 'org_id'],
    columns: [
      col('billing_month', 'date'),
      col('status', 'text'),
      col('org_id', 'text'),
      money('metered_cost_usd'),
      money('billed_subtotal_usd'),
      money('difference_usd'),
      col('difference_pct', 'double'),
      col('usage_days', 'bigint'),
      col('month_covered', 'boolean'),
      col('invoice_count', 'bigint'),
    ],
    compaction: 'SizeTieredCompactionStrategy',
    sumColumn: 'metered_cost_usd',
    projection: `select billing_month, status, org_id, metered_cost_usd, billed_subtotal_usd, difference_usd, difference_pct,
        usage_days, month_covered, invoice_count
      from src`,
    comment: 'q9: usage vs billing reconciliation per month, clustered by status',
  },
];

export function servingTable(name: string): ServingTable {
  const t = SERVING_TABLES.find((x) => x.name === name);
  if (!t) throw new Error(`unknown serving table: ${name}`);
  return t;
}

export function primaryKey(t: ServingTable): string[] {
  return [...t.partitionKey, ...t.clustering];
}

/** The current schema version; `cpa serving migrate` records each applied version in `schema_migrations`. */
export const SCHEMA_VERSION = 2;

export interface Migration {
  version: number;
  description: string;
  statements: string[];
}

const ident = (s: string): string => {
  if (!/^[a-z_][a-z0-9_]*$/.test(s)) throw new Error(`not an allowed CQL identifier: ${s}`);
  return s;
};

/** CREATE TABLE for one serving table, from its registry entry. */
export function createTableCql(keyspace: string, t: ServingTable): string {
  const cols = t.columns.map((c) => `${ident(c.name)} ${c.type}`).join(', ');
  const pk = `(${t.partitionKey.map(ident).join(', ')})${t.clustering.length ? ', ' + t.clustering.map(ident).join(', ') : ''}`;
  const order = t.clustering.length
    ? ` AND CLUSTERING ORDER BY (${t.clustering.map((c) => `${ident(c)} ASC`).join(', ')})`
    : '';
  return (
    `CREATE TABLE IF NOT EXISTS ${ident(keyspace)}.${ident(t.name)} (${cols}, PRIMARY KEY (${pk}))` +
    ` WITH compaction = {'class': '${t.compaction}'}${order} AND default_time_to_live = 0` +
    ` AND comment = '${t.comment.replace(/'/g, "''")}'`
  );
}

/** Every schema change, in order. Statements are idempotent (IF NOT EXISTS), so a half-applied version re-runs safely. */
export function migrations(keyspace: string): Migration[] {
  const ks = ident(keyspace);
  return [
    {
      version: 1,
      description: 'five query tables, pipeline_runs, serving_state',
      statements: [
        ...SERVING_TABLES.filter((t) => t.since === 1).map((t) => createTableCql(ks, t)),
        // Recent runs first: a dashboard reads the current month's partition newest-first.
        `CREATE TABLE IF NOT EXISTS ${ks}.pipeline_runs (run_month text, started_at timestamp, run_id text,
          workflow_id text, logical_date text, kind text, status text, finished_at timestamp, duration_ms bigint,
          step_count int, rows_served bigint, error text, summary text,
          PRIMARY KEY ((run_month), started_at, run_id))
          WITH CLUSTERING ORDER BY (started_at DESC, run_id ASC)
          AND compaction = {'class': 'SizeTieredCompactionStrategy'} AND default_time_to_live = 0
          AND comment = 'one row per dailyPipeline run (the run summary as JSON in summary)'`,
        // What was last loaded per table, from which lake: the incremental loader's memory and the queries' as_of.
        `CREATE TABLE IF NOT EXISTS ${ks}.serving_state (table_name text PRIMARY KEY, source text, lake text,
          partitions text, row_count bigint, min_date date, max_date date, verified_scope text, verified_rows bigint,
          verified_checksum text, verified_sum text, loaded_at timestamp, run_id text)
          WITH compaction = {'class': 'SizeTieredCompactionStrategy'}
          AND comment = 'last reconciled load per serving table'`,
        // No serving_lease any more: loads are serialised in Temporal (docs/decisions.md, "Serving loads run in
        // Temporal"). Keyspaces migrated before keep the unused table; nothing drops it.
      ],
    },
    {
      version: 2,
      description: 'query tables of the SPEC §6b marts (q6–q9)',
      statements: SERVING_TABLES.filter((t) => t.since === 2).map((t) => createTableCql(ks, t)),
    },
  ];
}

/** DDL that must exist before migrations can be recorded. */
export function bootstrapCql(keyspace: string, replication: string): string[] {
  const ks = ident(keyspace);
  return [
    `CREATE KEYSPACE IF NOT EXISTS ${ks} WITH replication = ${replicationLiteral(replication)}`,
    `CREATE TABLE IF NOT EXISTS ${ks}.schema_migrations (version int PRIMARY KEY, description text, applied_at timestamp)`,
  ];
}

/**
 * CPA_CASSANDRA_REPLICATION is a CQL map literal spliced into CREATE KEYSPACE (DDL cannot bind parameters), so it
 * must look like `{'class': 'NetworkTopologyStrategy', 'dc1': 3}` and nothing else.
 */
export function replicationLiteral(s: string): string {
  const entry = `'[A-Za-z0-9_.-]+'\\s*:\\s*('[A-Za-z0-9_.-]+'|\\d+)`;
  const re = new RegExp(`^\\{\\s*'class'\\s*:\\s*'[A-Za-z.]+'(\\s*,\\s*${entry})*\\s*\\}$`);
  const v = s.trim();
  if (!re.test(v))
    throw new Error(
      `CPA_CASSANDRA_REPLICATION must be a CQL map like {'class': 'SimpleStrategy', 'replication_factor': 1}`,
    );
  return v;
}
