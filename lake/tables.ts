/**
 * The table registry: every table is declared once — its layer, inputs, model file, partitioning and the columns
 * whose null rate the quality report tracks. The pipeline workflow derives its waves from the inputs, so there is
 * one DAG definition and no second runner. Pure data: imported by workflow code, so no Node built-ins here.
 */

export type Layer = 'bronze' | 'silver' | 'gold';

export interface TableRef {
  layer: Layer;
  table: string;
}

/**
 * Which input partitions an output partition needs (SPEC §9a): the same partition (`d ← d`), a trailing window
 * (`d ← [d − days, d]`; `days: 'baseline'` = the anomaly baseline N of the run's configuration) or the whole input.
 */
export type Dependency = { kind: 'same' } | { kind: 'window'; days: number | 'baseline' } | { kind: 'all' };

export interface InputSpec extends TableRef {
  dep: Dependency;
}

export interface ModelSpec {
  layer: 'silver' | 'gold';
  table: string;
  sql: string;
  inputs: InputSpec[];
  partitionBy?: string;
  /**
   * The model's partitions exist only inside the date range of its windowed input ([first, last] partition): the
   * SQL reads that range from the variables range_first / range_last, so a partition-scoped run sees the whole
   * range, and a partition whose position relative to the range changed is stale.
   */
  rangeBound?: boolean;
  /**
   * The model's trailing window over its input needs, outside the partitions being computed, only what the model
   * itself already published for those days (its own kept rows). A partition-scoped run then reads the windowed
   * input for its units alone, and the other days of the units' windows from the model's own table, as the view
   * `<layer>_<table>_baseline` with `baselineColumns` (empty when the run computes every partition). The result is
   * the same as reading the whole window of the input: partitions that are not units are not stale, so they hold
   * exactly what computing them from the current input gives. Staleness is still declared on the input's window.
   */
  baselineFromOwnOutput?: { columns: Array<{ name: string; type: string }> };
  keyColumns: string[];
}

const same: Dependency = { kind: 'same' };
const all: Dependency = { kind: 'all' };
const trailing = (days: number | 'baseline'): Dependency => ({ kind: 'window', days });
const bronze = (table: string, dep: Dependency = all): InputSpec => ({ layer: 'bronze', table, dep });
const silver = (table: string, dep: Dependency = all): InputSpec => ({ layer: 'silver', table, dep });
const gold = (table: string, dep: Dependency = all): InputSpec => ({ layer: 'gold', table, dep });

/** Bronze tables fed from CSV snapshots (see config/contracts.ts for their columns). */
export const CSV_BRONZE_TABLES = [
  'orgs',
  'users',
  'resources',
  'billing',
  'tickets',
  'marketing_touches',
  'nps_surveys',
] as const;

export const SILVER_MODELS: ModelSpec[] = [
  {
    layer: 'silver',
    table: 'orgs',
    sql: 'silver/orgs.sql',
    inputs: [bronze('orgs')],
    keyColumns: ['org_id', 'org_name', 'plan_tier'],
  },
  {
    layer: 'silver',
    table: 'users',
    sql: 'silver/users.sql',
    inputs: [bronze('users')],
    keyColumns: ['user_id', 'org_id', 'email_hash'],
  },
  {
    layer: 'silver',
    table: 'resources',
    sql: 'silver/resources.sql',
    inputs: [bronze('resources')],
    keyColumns: ['resource_id', 'org_id', 'service', 'region'],
  },
  {
    layer: 'silver',
    table: 'billing',
    sql: 'silver/billing.sql',
    inputs: [bronze('billing')],
    keyColumns: ['invoice_id', 'org_id', 'billing_month', 'fx_rate'],
  },
  {
    layer: 'silver',
    table: 'tickets',
    sql: 'silver/tickets.sql',
    inputs: [bronze('tickets')],
    keyColumns: ['ticket_id', 'org_id', 'created_at', 'csat'],
  },
  {
    layer: 'silver',
    table: 'marketing_touches',
    sql: 'silver/marketing_touches.sql',
    inputs: [bronze('marketing_touches')],
    keyColumns: ['touch_id', 'org_id', 'channel'],
  },
  {
    layer: 'silver',
    table: 'nps_surveys',
    sql: 'silver/nps_surveys.sql',
    inputs: [bronze('nps_surveys')],
    keyColumns: ['org_id', 'survey_date', 'nps_score'],
  },
  {
    layer: 'silver',
    table: 'usage_events',
    sql: 'silver/usage_events.sql',
    inputs: [bronze('usage_events', trailing('baseline')), silver('orgs'), silver('resources')],
    partitionBy: 'usage_date',
    // The event-level baseline of day d is the kept events of [d - N, d - 1]: silver's own rows of those days.
    baselineFromOwnOutput: {
      columns: [
        { name: 'org_id', type: 'VARCHAR' },
        { name: 'service', type: 'VARCHAR' },
        { name: 'metric', type: 'VARCHAR' },
        { name: 'usage_date', type: 'DATE' },
        { name: 'cost_usd_increment', type: 'DECIMAL(18,6)' },
      ],
    },
    keyColumns: ['event_id', 'org_id', 'service', 'region', 'value', 'unit', 'resource_id'],
  },
];

const usage = (dep: Dependency): InputSpec[] => [silver('usage_events', dep)];
/**
 * The daily mart as the input of the marts that only need daily totals per (org, date, service): a window of it is
 * a few thousand rows a day where the same window of silver events is every event (at S=100, 29 days of events).
 */
const dailyMart = (dep: Dependency): InputSpec[] => [{ layer: 'gold', table: 'org_daily_usage_by_service', dep }];

export const GOLD_MARTS: ModelSpec[] = [
  {
    layer: 'gold',
    table: 'org_daily_usage_by_service',
    sql: 'gold/org_daily_usage_by_service.sql',
    inputs: usage(same),
    partitionBy: 'usage_date',
    keyColumns: ['total_cost_usd', 'carbon_kg', 'avg_cost_per_request'],
  },
  {
    layer: 'gold',
    table: 'cost_anomaly_mart',
    sql: 'gold/cost_anomaly_mart.sql',
    inputs: dailyMart(trailing('baseline')),
    partitionBy: 'usage_date',
    keyColumns: ['zscore', 'robust_z'],
  },
  {
    layer: 'gold',
    table: 'revenue_by_org_month',
    sql: 'gold/revenue_by_org_month.sql',
    inputs: [silver('billing'), silver('orgs')],
    keyColumns: ['org_name', 'fx_rate', 'gross_revenue_usd'],
  },
  {
    layer: 'gold',
    table: 'tickets_by_org_date',
    sql: 'gold/tickets_by_org_date.sql',
    inputs: [silver('tickets')],
    partitionBy: 'ticket_date',
    keyColumns: ['avg_csat', 'avg_resolution_days'],
  },
  {
    layer: 'gold',
    table: 'genai_tokens_by_org_date',
    sql: 'gold/genai_tokens_by_org_date.sql',
    inputs: usage(same),
    partitionBy: 'usage_date',
    keyColumns: ['est_cost_per_1k_tokens'],
  },
  {
    layer: 'gold',
    table: 'org_service_cost_summary',
    sql: 'gold/org_service_cost_summary.sql',
    inputs: dailyMart(trailing(13)),
    partitionBy: 'summary_date',
    rangeBound: true,
    keyColumns: ['cost_14d', 'rank_14d'],
  },
  // SPEC §6b. Whole-table snapshots: each depends on as_of (the latest usage day), so a new day changes all of them.
  // They read the small gold marts where those give the same numbers (a run that lands one day does not rescan silver
  // events); gold inputs put them in a later wave than the marts they read (waves()).
  {
    layer: 'gold',
    table: 'customer_360',
    sql: 'gold/customer_360.sql',
    inputs: [
      silver('orgs'),
      gold('org_daily_usage_by_service'),
      gold('revenue_by_org_month'),
      silver('tickets'),
      silver('marketing_touches'),
      silver('nps_surveys'),
      silver('users'),
    ],
    keyColumns: ['as_of', 'first_usage_date', 'sla_breach_rate', 'avg_csat', 'latest_nps_score'],
  },
  {
    layer: 'gold',
    table: 'marketing_attribution',
    sql: 'gold/marketing_attribution.sql',
    inputs: [silver('marketing_touches'), gold('revenue_by_org_month')],
    keyColumns: ['channel', 'campaign', 'attributed_net_revenue_usd'],
  },
  {
    layer: 'gold',
    table: 'resource_utilization',
    sql: 'gold/resource_utilization.sql',
    // per resource: no gold mart keeps resource_id, so the whole of silver events (its needed columns) is read
    inputs: [silver('resources'), silver('usage_events')],
    keyColumns: ['org_id', 'service', 'last_usage_date', 'idle_days'],
  },
  {
    layer: 'gold',
    table: 'usage_billing_reconciliation',
    sql: 'gold/usage_billing_reconciliation.sql',
    inputs: [gold('org_daily_usage_by_service'), gold('revenue_by_org_month')],
    keyColumns: ['billed_subtotal_usd', 'difference_pct'],
  },
];

/** Days of trailing window a dependency spans (0 for `same`); undefined for `all`. */
export function windowDays(dep: Dependency, baselineDays: number): number | undefined {
  if (dep.kind === 'all') return undefined;
  if (dep.kind === 'same') return 0;
  return dep.days === 'baseline' ? baselineDays : dep.days;
}

/** A model is computed partition by partition when some input is read by partition (same or window). */
export function isPartitioned(model: ModelSpec): boolean {
  return model.partitionBy !== undefined && model.inputs.some((i) => i.dep.kind !== 'all');
}

export function findModel(layer: 'silver' | 'gold', table: string): ModelSpec {
  const m = (layer === 'silver' ? SILVER_MODELS : GOLD_MARTS).find((x) => x.table === table);
  if (!m) throw new Error(`unknown ${layer} table: ${table}`);
  return m;
}

/**
 * Groups models into waves: a model runs once every input of its own layer is built in an earlier wave.
 * Inputs from lower layers are assumed done (the caller runs layers in order).
 */
export function waves(models: ModelSpec[]): ModelSpec[][] {
  const done = new Set<string>();
  const left = [...models];
  const out: ModelSpec[][] = [];
  while (left.length > 0) {
    // An input of the same layer outside `models` was built before them (a layer run in parts).
    const ready = left.filter((m) =>
      m.inputs.every((i) => i.layer !== m.layer || done.has(i.table) || !models.some((x) => x.table === i.table)),
    );
    if (ready.length === 0) throw new Error(`cycle in table registry: ${left.map((m) => m.table).join(', ')}`);
    for (const m of ready) {
      done.add(m.table);
      left.splice(left.indexOf(m), 1);
    }
    out.push(ready);
  }
  return out;
}

/** Whether a model reads bronze usage events, directly or through a model of the registry it reads. */
function readsEvents(m: ModelSpec): boolean {
  return m.inputs.some(
    (i) =>
      (i.layer === 'bronze' && i.table === 'usage_events') ||
      ((i.layer === 'silver' || i.layer === 'gold') && readsEvents(findModel(i.layer, i.table))),
  );
}

/**
 * Silver models that read no usage events: the pipeline runs them as soon as the CSV snapshots are in bronze, beside
 * the (longer) bronze events step, and the rest of silver after it.
 */
export const SILVER_BESIDE_EVENTS: ModelSpec[] = SILVER_MODELS.filter((m) => !readsEvents(m));
