-- grain: one row per (org_id, usage_date, service); day-level anomaly scores within each (org_id, service) series
with daily as (
    select
        org_id,
        usage_date,
        service,
        sum(cost_usd_increment)::decimal(18, 6) as total_cost_usd,
        count(*) filter (where is_anomaly)::bigint as anomaly_event_count
    from silver_usage_events
    group by org_id, usage_date, service
),

stats as (
    select
        org_id,
        service,
        count(*) as n,
        avg(total_cost_usd::double) as mean_cost,
        stddev_samp(total_cost_usd::double) as sd_cost,
        median(total_cost_usd::double) as median_cost,
        quantile_cont(total_cost_usd::double, 0.99) as p99_cost
    from daily
    group by org_id, service
),

mad as (
    select d.org_id, d.service, median(abs(d.total_cost_usd::double - s.median_cost)) as mad_cost
    from daily as d
    join stats as s using (org_id, service)
    group by d.org_id, d.service
),

scored as (
    select
        d.*,
        case when s.n >= getvariable('anomaly_min_obs') and s.sd_cost > 0
            then (d.total_cost_usd::double - s.mean_cost) / s.sd_cost end as zscore_raw,
        case when s.n >= getvariable('anomaly_min_obs') and m.mad_cost > 0
            then 0.6745 * (d.total_cost_usd::double - s.median_cost) / m.mad_cost end as robust_z_raw,
        case when s.n >= getvariable('anomaly_min_obs') and s.sd_cost > 0
            then d.total_cost_usd::double > getvariable('anomaly_pctl_factor') * s.p99_cost end as pctl_hit
    from daily as d
    join stats as s using (org_id, service)
    join mad as m using (org_id, service)
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
