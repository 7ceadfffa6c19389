-- grain: one row per (org_id, usage_date, service); day-level anomaly scores within each (org_id, service) series
-- against its trailing baseline (SPEC §5): the series' daily totals on [d - N, d - 1] that have usage
-- (N = anomaly_baseline_days; a day without events is no observation, day d is not in its own baseline)
-- inputs: gold_org_daily_usage_by_service (its total_cost_usd and anomaly_event_count are this mart's daily figures:
-- Σ cost and the count of anomalous events of the kept silver events of the day)
with daily as (
    select org_id, usage_date, service, total_cost_usd, anomaly_event_count
    from gold_org_daily_usage_by_service
),

-- the series' baseline values of each day as a list (a RANGE window over the rows read: the run's units and the
-- days their windows reach back to)
windowed as (
    select
        d.*,
        list(total_cost_usd::double) over (
            partition by org_id, service
            order by usage_date
            range between (getvariable('anomaly_baseline_days')::integer * interval 1 day) preceding
                and interval 1 day preceding
        ) as bl
    from daily as d
),

-- statistics for the rows of the partitions this run computes only (variable model_units; null = every row): the
-- days read for their windows alone are not scored. Holistic window aggregates (median, MAD, quantile) would score
-- every row read, which in a one-day run is the new day's 28-day window of days.
baseline as (
    select
        *,
        len(bl) as n,
        list_avg(bl) as mean_cost,
        list_stddev_samp(bl) as sd_cost,
        -- non-zero spread decided exactly (min < max), not by a float stddev that may come out as 1e-17
        list_min(bl) < list_max(bl) as has_spread,
        -- median and p99 from one quantile aggregate (one selection over the list, not two)
        list_aggregate(bl, 'quantile_cont', [0.5, 0.99]) as quantiles,
        list_aggregate(bl, 'mad') as mad_cost
    from windowed
    where getvariable('model_units') is null or list_contains(getvariable('model_units'), usage_date)
),

scored as (
    select
        *,
        quantiles[1] as median_cost,
        quantiles[2] as p99_cost,
        case when n >= getvariable('anomaly_min_obs') and has_spread
            then (total_cost_usd::double - mean_cost) / sd_cost end as zscore_raw,
        case when n >= getvariable('anomaly_min_obs') and mad_cost > 0
            then 0.6745 * (total_cost_usd::double - median_cost) / mad_cost end as robust_z_raw,
        case when n >= getvariable('anomaly_min_obs')
            then total_cost_usd::double > getvariable('anomaly_pctl_factor') * p99_cost end as pctl_hit
    from baseline
),

final as (
    select
        org_id,
        usage_date,
        service,
        total_cost_usd,
        round(zscore_raw, 6) as zscore,
        round(robust_z_raw, 6) as robust_z,
        coalesce(pctl_hit, false) as pctl_flag,
        coalesce(abs(zscore_raw) > getvariable('anomaly_zscore'), false) as zscore_flag,
        coalesce(abs(robust_z_raw) > getvariable('anomaly_robust_z'), false) as mad_flag,
        coalesce(pctl_hit, false)
            or coalesce(abs(zscore_raw) > getvariable('anomaly_zscore'), false)
            or coalesce(abs(robust_z_raw) > getvariable('anomaly_robust_z'), false) as is_anomaly,
        anomaly_event_count
    from scored
)

select * from final
