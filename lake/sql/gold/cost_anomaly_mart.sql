-- grain: one row per (org_id, usage_date, service); day-level anomaly scores within each (org_id, service) series
-- against its trailing baseline (SPEC §5): the series' daily totals on [d - N, d - 1] that have usage
-- (N = anomaly_baseline_days; a day without events is no observation, day d is not in its own baseline)
-- inputs: gold_org_daily_usage_by_service (its total_cost_usd and anomaly_event_count are this mart's daily figures:
-- Σ cost and the count of anomalous events of the kept silver events of the day)
with daily as (
    select org_id, usage_date, service, total_cost_usd, anomaly_event_count
    from gold_org_daily_usage_by_service
),

-- the series' baseline list of each day computed here (variable model_units; null = every row read): the days read
-- for their windows alone are not scored. Two plans, one result (variable baseline_by_join, set by the run, as in
-- silver/usage_events.sql): a RANGE window builds every row's list, which suits a run that computes most of the days
-- it reads; a run computing a few days gathers each series' (day, total) pairs once and keeps, for each computed day,
-- those of its baseline days (a one-day run at S=100: 0.67 s -> 0.43 s, where the window built a list for each of the
-- 28 days read per day computed).
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
    where not coalesce(getvariable('baseline_by_join'), false)
    qualify getvariable('model_units') is null or list_contains(getvariable('model_units'), usage_date)

    union all

    select
        u.*,
        list_transform(
            list_filter(s.vs, v -> v.d between u.usage_date - getvariable('anomaly_baseline_days')::integer
                and u.usage_date - 1),
            v -> v.x
        ) as bl
    from daily as u
    left join (
        select org_id, service, list({'d': usage_date, 'x': total_cost_usd::double}) as vs
        from daily
        where coalesce(getvariable('baseline_by_join'), false)
        group by all
    ) as s on s.org_id = u.org_id and s.service = u.service
    where coalesce(getvariable('baseline_by_join'), false)
        and (getvariable('model_units') is null or list_contains(getvariable('model_units'), u.usage_date))
),

-- the statistics (holistic ones too: median, MAD, quantile) of those rows only
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
