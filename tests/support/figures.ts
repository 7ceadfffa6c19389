import type { Config } from '../../config/env';
import { CSV_BRONZE_TABLES } from '../../lake/tables';
import { tableRef, withLakeSql } from './lake-sql';

/**
 * Reads the figures that `tests/e2e/reference/derive.py` computes independently (same JSON shape) back out of a
 * lake, with plain SQL on a fresh DuckDB that attaches the lake's DuckLake read-only (tests/support/lake-sql.ts): the
 * pipeline code is not involved beyond the lake it wrote. `lake` is a local path, or an s3:// URI read with
 * `config`'s catalog and S3 settings.
 */
export async function lakeFigures(lake: string, config?: Config): Promise<Figures> {
  return withLakeSql(
    lake,
    async (q0) => {
      const q = (sql: string): Promise<Record<string, unknown>[]> => q0(sql);
      const view = (layer: string, table: string): Promise<string> => tableRef(q0, layer, table);
      const out: Figures = { bronze: {}, quarantine: {}, silver: {}, gold: {} };
      for (const t of ['usage_events', ...CSV_BRONZE_TABLES]) {
        const [b] = await q(
          `select count(*)::bigint as "rows", count(distinct event_id)::bigint d from ${await view('bronze', t)}`.replace(
            'count(distinct event_id)::bigint d',
            t === 'usage_events' ? 'count(distinct event_id)::bigint d' : '0 d',
          ),
        );
        out.bronze[t] =
          t === 'usage_events' ? { rows: Number(b.rows), distinct_event_ids: Number(b.d) } : { rows: Number(b.rows) };
        const qrows = await q(
          `select rule, count(*)::bigint n from ${await view('quarantine', t)} group by rule order by rule`,
        );
        out.quarantine[t] = Object.fromEntries(qrows.map((r) => [String(r.rule), Number(r.n)]));
        const [s] = await q(`select count(*)::bigint as "rows" from ${await view('silver', t)}`);
        out.silver[t] = { rows: Number(s.rows) };
      }
      const [se] = await q(`select
      count(*) filter (where value_cast_failed) value_cast_failed, count(*) filter (where unit_imputed) unit_imputed,
      count(*) filter (where region_unknown) region_unknown, count(*) filter (where orphan_org) orphan_org,
      count(*) filter (where orphan_resource) orphan_resource, count(*) filter (where zscore_flag) anomaly_zscore,
      count(*) filter (where mad_flag) anomaly_mad, count(*) filter (where pctl_flag) anomaly_pctl,
      count(*) filter (where is_anomaly) anomaly_any
    from ${await view('silver', 'usage_events')}`);
      Object.assign(out.silver.usage_events, numbers(se));
      const g = async (mart: string, sql: string): Promise<void> => {
        const [r] = await q(sql.replace('$T', await view('gold', mart)));
        out.gold[mart] = r;
      };
      await g(
        'org_daily_usage_by_service',
        `select count(*)::bigint as "rows", sum(total_cost_usd)::varchar sum_total_cost_usd,
      sum(total_requests)::varchar sum_total_requests, sum(cpu_hours)::varchar sum_cpu_hours,
      sum(storage_gb_hours)::varchar sum_storage_gb_hours, sum(genai_tokens)::bigint sum_genai_tokens,
      sum(carbon_kg)::varchar sum_carbon_kg, count(*) filter (where carbon_kg is null) null_carbon_rows,
      sum(event_count)::bigint sum_event_count, count(*) filter (where avg_cost_per_request is null) null_avg_cost_per_request_rows,
      round(sum(avg_cost_per_request), 6) sum_avg_cost_per_request, sum(anomaly_event_count)::bigint sum_anomaly_event_count from $T`,
      );
      await g(
        'cost_anomaly_mart',
        `select count(*)::bigint as "rows", sum(total_cost_usd)::varchar sum_total_cost_usd,
      count(*) filter (where zscore_flag) zscore_flag, count(*) filter (where mad_flag) mad_flag,
      count(*) filter (where pctl_flag) pctl_flag, count(*) filter (where is_anomaly) is_anomaly,
      round(sum(abs(zscore)), 6) sum_abs_zscore, round(sum(abs(robust_z)), 6) sum_abs_robust_z,
      count(*) filter (where zscore is null) null_zscore_rows, sum(anomaly_event_count)::bigint sum_anomaly_event_count from $T`,
      );
      await g(
        'revenue_by_org_month',
        `select count(*)::bigint as "rows", sum(gross_revenue_usd)::varchar sum_gross_revenue_usd,
      sum(credits_usd)::varchar sum_credits_usd, sum(taxes_usd)::varchar sum_taxes_usd,
      sum(net_revenue_usd)::varchar sum_net_revenue_usd, sum(total_billed_usd)::varchar sum_total_billed_usd,
      sum(invoice_count)::bigint sum_invoice_count, count(*) filter (where currency_original = 'MIXED') mixed_currency_rows from $T`,
      );
      await g(
        'tickets_by_org_date',
        `select count(*)::bigint as "rows", sum(total_tickets)::bigint sum_total_tickets,
      sum(open_tickets)::bigint sum_open_tickets, sum(sla_breach_count)::bigint sum_sla_breach_count,
      round(sum(sla_breach_rate), 6) sum_sla_breach_rate, count(*) filter (where avg_csat is null) null_avg_csat_rows,
      round(sum(avg_csat), 6) sum_avg_csat, round(sum(avg_resolution_days), 6) sum_avg_resolution_days from $T`,
      );
      await g(
        'genai_tokens_by_org_date',
        `select count(*)::bigint as "rows", sum(total_tokens)::bigint sum_total_tokens,
      sum(genai_events)::bigint sum_genai_events, sum(total_cost_usd)::varchar sum_total_cost_usd,
      round(sum(est_cost_per_1k_tokens), 6) sum_est_cost_per_1k_tokens from $T`,
      );
      await g(
        'org_service_cost_summary',
        `select count(*)::bigint as "rows", sum(cost_1d)::varchar sum_cost_1d,
      sum(cost_7d)::varchar sum_cost_7d, sum(cost_14d)::varchar sum_cost_14d,
      count(*) filter (where rank_14d = 1) rank1_rows from $T`,
      );
      await g(
        'customer_360',
        `select count(*)::bigint as "rows", sum(cost_30d)::varchar sum_cost_30d, sum(cost_total)::varchar sum_cost_total,
      sum(active_services_30d)::bigint sum_active_services_30d, sum(genai_tokens_30d)::bigint sum_genai_tokens_30d,
      sum(net_revenue_usd_total)::varchar sum_net_revenue_usd_total, sum(total_billed_usd_total)::varchar sum_total_billed_usd_total,
      sum(invoice_count)::bigint sum_invoice_count, sum(tickets_total)::bigint sum_tickets_total,
      sum(open_tickets)::bigint sum_open_tickets, sum(critical_tickets_30d)::bigint sum_critical_tickets_30d,
      count(*) filter (where sla_breach_rate is null) null_sla_breach_rate_rows, round(sum(sla_breach_rate), 6) sum_sla_breach_rate,
      round(sum(avg_csat), 6) sum_avg_csat, sum(touches)::bigint sum_touches, sum(clicks)::bigint sum_clicks,
      sum(conversions)::bigint sum_conversions, count(*) filter (where latest_nps_score is null) null_latest_nps_rows,
      sum(nps_surveys)::bigint sum_nps_surveys, sum(users_total)::bigint sum_users_total,
      sum(active_users)::bigint sum_active_users, count(*) filter (where first_usage_date is null) zero_usage_rows from $T`,
      );
      const attribution = await view('gold', 'marketing_attribution');
      const [ma] = await q(`select count(*)::bigint as "rows" from ${attribution}`);
      out.gold.marketing_attribution = { ...ma };
      for (const model of ['first_touch', 'linear']) {
        const [r] = await q(
          `select count(*)::bigint as "rows", sum(touches)::bigint sum_touches, sum(clicks)::bigint sum_clicks,
          sum(conversions)::bigint sum_conversions, sum(attributed_orgs)::varchar sum_attributed_orgs,
          sum(attributed_net_revenue_usd)::varchar sum_attributed_net_revenue_usd, round(sum(click_rate), 6) sum_click_rate,
          round(sum(conversion_rate), 6) sum_conversion_rate from ${attribution} where attribution_model = '${model}'`,
        );
        for (const [k, v] of Object.entries(r))
          out.gold.marketing_attribution[k === 'rows' ? `${model}_rows` : `${model}_${k}`] = v;
      }
      await g(
        'resource_utilization',
        `select count(*)::bigint as "rows", count(*) filter (where utilization_class = 'unused') unused_rows,
      count(*) filter (where utilization_class = 'idle') idle_rows, count(*) filter (where utilization_class = 'active') active_rows,
      count(*) filter (where stopped_but_billed) stopped_but_billed_rows, sum(events_30d)::bigint sum_events_30d,
      sum(active_days_30d)::bigint sum_active_days_30d, sum(cost_30d)::varchar sum_cost_30d,
      sum(cpu_hours_30d)::varchar sum_cpu_hours_30d, sum(storage_gb_hours_30d)::varchar sum_storage_gb_hours_30d,
      sum(requests_30d)::varchar sum_requests_30d, sum(idle_days)::bigint sum_idle_days from $T`,
      );
      await g(
        'usage_billing_reconciliation',
        `select count(*)::bigint as "rows", sum(metered_cost_usd)::varchar sum_metered_cost_usd,
      sum(billed_subtotal_usd)::varchar sum_billed_subtotal_usd, sum(difference_usd)::varchar sum_difference_usd,
      round(sum(difference_pct), 6) sum_difference_pct, sum(usage_days)::bigint sum_usage_days,
      sum(invoice_count)::bigint sum_invoice_count, count(*) filter (where month_covered) covered_rows,
      count(*) filter (where status = 'no_invoice') status_no_invoice, count(*) filter (where status = 'no_usage') status_no_usage,
      count(*) filter (where status = 'partial_month') status_partial_month, count(*) filter (where status = 'match') status_match,
      count(*) filter (where status = 'over_billed') status_over_billed,
      count(*) filter (where status = 'under_billed') status_under_billed from $T`,
      );
      for (const mart of Object.keys(out.gold)) out.gold[mart] = numbers(out.gold[mart]);
      return out;
    },
    config,
  );
}

/** One gold row by key, as JSON-safe values (decimals as strings), for spot checks. */
export async function goldRow(
  lake: string,
  mart: string,
  key: Record<string, string>,
  config?: Config,
): Promise<Record<string, unknown> | undefined> {
  const where = Object.keys(key)
    .map((k, i) => `cast("${k}" as varchar) = $p${i}`)
    .join(' and ');
  const params = Object.fromEntries(Object.values(key).map((v, i) => [`p${i}`, v]));
  const rows = await withLakeSql(lake, (q) => q(`select * from lake.gold.${mart} where ${where}`, params), config);
  return rows[0];
}

export interface Figures {
  bronze: Record<string, Record<string, number>>;
  quarantine: Record<string, Record<string, number>>;
  silver: Record<string, Record<string, number>>;
  gold: Record<string, Record<string, unknown>>;
}

function numbers(r: Record<string, unknown>): Record<string, number> & Record<string, unknown> {
  // Counts come back as strings (BIGINT); decimals stay strings so they compare exactly.
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r)) o[k] = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
  return o as Record<string, number> & Record<string, unknown>;
}

/** Decimal strings and counts must match exactly; rounded doubles within 1e-3 over a whole column's sum. */
export function expectFiguresEqual(actual: Figures, want: Figures): void {
  expect(actual.bronze).toEqual(want.bronze);
  expect(actual.quarantine).toEqual(want.quarantine);
  expect(actual.silver).toEqual(want.silver);
  for (const [mart, fig] of Object.entries(want.gold)) {
    for (const [k, v] of Object.entries(fig)) {
      const got = actual.gold[mart]?.[k];
      if (typeof v === 'number' && !Number.isInteger(v))
        expect({ mart, k, diff: Math.abs(Number(got) - v) < 1e-3 }).toEqual({ mart, k, diff: true });
      else expect({ mart, k, v: got }).toEqual({ mart, k, v });
    }
  }
}
