-- grain: one row per bronze event (event_id already unique in bronze); rejected rows carry _rule
-- inputs: bronze_usage_events, silver_orgs, silver_resources, _aliases, silver_usage_events_baseline (this table's
-- own kept rows of baseline days not computed here; empty when every day is); variables anomaly_*
with source as (
    select * from bronze_usage_events
),

conformed as (
    select
        s.*,
        sa.canonical as service_canonical,
        ra.canonical as region_canonical,
        -- plain decimal numbers only: 'NaN', 'Infinity', '1_000' are cast failures, not values
        case when regexp_full_match(trim(s.value), '[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?')
            then try_cast(trim(s.value) as double) end as value_double,
        lower(trim(s.metric)) as metric_clean
    from source as s
    left join _aliases as sa on sa.kind = 'service' and sa.token = norm_token(s.service)
    left join _aliases as ra on ra.kind = 'region' and ra.token = norm_token(s.region)
),

ruled as (
    select
        *,
        case
            when blank(event_id) or blank(timestamp_raw) or blank(org_id) or blank(service)
                or cost_usd_increment is null then 'missing_required'
            when event_ts is null then 'bad_timestamp'
            -- plausibility (docs/decisions.md): a date far from the data would stretch every date range built on it
            when event_ts < getvariable('rule_min_date')::timestamp
                or event_ts > ingest_ts + getvariable('rule_max_future_days')::integer * interval 1 day
                then 'implausible_timestamp'
            when service_canonical is null then 'unknown_service'
            when cost_usd_increment < -0.01 then 'negative_cost'
            -- ... and a magnitude no event can have would overflow the sums of gold (bounds in config)
            when cost_usd_increment > getvariable('rule_max_event_cost_usd') then 'implausible_cost'
            when value_double not between -getvariable('rule_max_event_value') and getvariable('rule_max_event_value')
                then 'implausible_value'
            when carbon_kg not between -getvariable('rule_max_event_carbon_kg') and getvariable('rule_max_event_carbon_kg')
                then 'implausible_carbon'
            when genai_tokens not between -getvariable('rule_max_event_genai_tokens') and getvariable('rule_max_event_genai_tokens')
                then 'implausible_tokens'
        end as _rule
    from conformed
),

explained as (
    select
        *,
        case _rule
            when 'missing_required' then 'missing or empty: ' || concat_ws(', ',
                case when blank(event_id) then 'event_id' end,
                case when blank(timestamp_raw) then 'timestamp' end,
                case when blank(org_id) then 'org_id' end,
                case when blank(service) then 'service' end,
                case when cost_usd_increment is null then
                    case when cast_errors like '%cost_usd_increment%' then 'cost_usd_increment (not numeric)'
                    else 'cost_usd_increment' end end)
            when 'bad_timestamp' then 'timestamp ' || timestamp_raw || ' is not ISO-8601'
            when 'unknown_service' then 'service ' || service || ' is not a known service'
            when 'implausible_timestamp' then 'timestamp ' || timestamp_raw || ' outside [' || getvariable('rule_min_date')
                || ', ingest_ts + ' || getvariable('rule_max_future_days')::varchar || ' days]'
            when 'negative_cost' then 'cost_usd_increment ' || cost_usd_increment::varchar || ' < -0.01'
            when 'implausible_cost' then 'cost_usd_increment ' || cost_usd_increment::varchar || ' > '
                || getvariable('rule_max_event_cost_usd')::varchar
            when 'implausible_value' then 'value ' || value_double::varchar || ' outside ±'
                || getvariable('rule_max_event_value')::varchar
            when 'implausible_carbon' then 'carbon_kg ' || carbon_kg::varchar || ' outside ±'
                || getvariable('rule_max_event_carbon_kg')::varchar
            when 'implausible_tokens' then 'genai_tokens ' || genai_tokens::varchar || ' outside ±'
                || getvariable('rule_max_event_genai_tokens')::varchar
        end as _detail
    from ruled
),

-- the anomaly series of a kept event (NULL for a rejected one, which no baseline row matches)
grouped as (
    select
        *,
        case when _rule is null then
            case when getvariable('anomaly_by_metric') then coalesce(metric_clean, '') else '' end
        end as anomaly_group
    from explained
),

kept as (
    select * from grouped where _rule is null
),

-- SPEC §5 trailing baseline: an event of day d is scored against the kept events of its series on
-- [d - N, d - 1] (N = anomaly_baseline_days); day d itself is never part of its own baseline, so every event of a
-- day shares one baseline. The statistics are computed once per (series, day) from the day's value lists, not once
-- per event: a per-event RANGE window evaluates MAD over the whole frame for every row (O(rows x frame)), which
-- took minutes on a series with 150,000 events a day. The values: the kept rows of the days computed here and of the
-- baseline days read from silver.
series_rows as (
    select org_id, service_canonical, anomaly_group, usage_date, cost_usd_increment::double as x, true as computed
    from kept
    union all
    -- days of the baseline that this run does not compute: the kept rows silver already holds for them
    select
        org_id,
        service as service_canonical,
        case when getvariable('anomaly_by_metric') then coalesce(metric, '') else '' end as anomaly_group,
        usage_date,
        cost_usd_increment::double as x,
        false as computed
    from silver_usage_events_baseline
),

day_values as (
    select org_id, service_canonical, anomaly_group, usage_date, list(x) as xs, bool_or(computed) as computed
    from series_rows
    where not coalesce(getvariable('baseline_by_join'), false)
    group by org_id, service_canonical, anomaly_group, usage_date
),

-- the baseline list of each computed (series, day): the values of its series' days in [d - N, d - 1]. Two plans, one
-- result (variable baseline_by_join, set by the run): a RANGE window over the day lists builds every row's list,
-- which suits a run that computes most of the days it reads; a run computing a few days (a daily run, a landed file)
-- reads N days of baseline for each, and the join plan gathers each series' (day, value) pairs once and keeps, for
-- each computed day, the pairs of its baseline days (no day lists, no list of lists: 2.3 s -> 1.5 s for a one-day
-- run at S=100). Order does not matter to the statistics (a day's own list never had one either).
day_baseline as (
    select
        org_id,
        service_canonical,
        anomaly_group,
        usage_date,
        flatten(list(xs) over (
            partition by org_id, service_canonical, anomaly_group
            order by usage_date
            range between (getvariable('anomaly_baseline_days')::integer * interval 1 day) preceding
                and interval 1 day preceding
        )) as bl
    from day_values
    where not coalesce(getvariable('baseline_by_join'), false)
    -- statistics only for the days computed here (a baseline day read from silver is scored by its own run)
    qualify computed

    union all

    select
        c.org_id,
        c.service_canonical,
        c.anomaly_group,
        c.usage_date,
        list_transform(
            list_filter(s.vs, v -> v.d between c.usage_date - getvariable('anomaly_baseline_days')::integer
                and c.usage_date - 1),
            v -> v.x
        ) as bl
    from (
        select distinct org_id, service_canonical, anomaly_group, usage_date from kept
        where coalesce(getvariable('baseline_by_join'), false)
    ) as c
    left join (
        select org_id, service_canonical, anomaly_group, list({'d': usage_date, 'x': x}) as vs
        from series_rows
        where coalesce(getvariable('baseline_by_join'), false)
        group by all
    ) as s
        on s.org_id = c.org_id and s.service_canonical = c.service_canonical and s.anomaly_group = c.anomaly_group
),

day_stats as (
    select
        org_id,
        service_canonical,
        anomaly_group,
        usage_date,
        len(bl) as n,
        list_avg(bl) as mean_cost,
        list_stddev_samp(bl) as sd_cost,
        -- non-zero spread decided exactly (min < max), not by a float stddev that may come out as 1e-17
        list_min(bl) < list_max(bl) as has_spread,
        -- median and p99 from one quantile aggregate (one selection over the list, not two)
        list_aggregate(bl, 'quantile_cont', [0.5, 0.99]) as quantiles,
        list_aggregate(bl, 'mad') as mad_cost
    from day_baseline
),

-- every bronze row with its day's baseline statistics (kept rows only: a rejected row's anomaly_group is NULL); one
-- join on the series and day, not a second pass over the events joined back by event_id
scored as (
    select
        e.*,
        case when b.n >= getvariable('anomaly_min_obs') and b.has_spread
            then abs(e.cost_usd_increment::double - b.mean_cost) / b.sd_cost end as zscore_abs,
        case when b.n >= getvariable('anomaly_min_obs') and b.mad_cost > 0
            then 0.6745 * abs(e.cost_usd_increment::double - b.quantiles[1]) / b.mad_cost end as robust_z_abs,
        case when b.n >= getvariable('anomaly_min_obs')
            then e.cost_usd_increment::double > getvariable('anomaly_pctl_factor') * b.quantiles[2] end as pctl_hit
    from grouped as e
    left join day_stats as b
        on b.org_id = e.org_id and b.service_canonical = e.service_canonical
            and b.anomaly_group = e.anomaly_group and b.usage_date = e.usage_date
),

final as (
    select
        e.event_id,
        e.event_ts,
        e.usage_date,
        e.org_id,
        e.resource_id,
        e.service_canonical as service,
        e.region_canonical as region,
        e.metric_clean as metric,
        e.value_double as value,
        e.value is not null and e.value_double is null as value_cast_failed,
        case
            when e.unit is null and e.value_double is not null then
                case e.metric_clean when 'requests' then 'count' when 'cpu_hours' then 'hours'
                    when 'storage_gb_hours' then 'gb_hours' end
            else e.unit
        end as unit,
        e.unit is null and e.value_double is not null
            and e.metric_clean in ('requests', 'cpu_hours', 'storage_gb_hours') as unit_imputed,
        e.region_canonical is null as region_unknown,
        e.cost_usd_increment,
        e.schema_version,
        e.carbon_kg,
        e.genai_tokens,
        o.org_name,
        o.industry,
        o.plan_tier,
        o.hq_region,
        r.state as resource_state,
        o.org_id is null as orphan_org,
        e.resource_id is not null and r.resource_id is null as orphan_resource,
        round(e.zscore_abs, 6) as zscore,
        round(e.robust_z_abs, 6) as robust_z,
        coalesce(e.zscore_abs > getvariable('anomaly_zscore'), false) as zscore_flag,
        coalesce(e.robust_z_abs > getvariable('anomaly_robust_z'), false) as mad_flag,
        coalesce(e.pctl_hit, false) as pctl_flag,
        coalesce(e.zscore_abs > getvariable('anomaly_zscore'), false)
            or coalesce(e.robust_z_abs > getvariable('anomaly_robust_z'), false)
            or coalesce(e.pctl_hit, false) as is_anomaly,
        e.source_file,
        e.source_line,
        e.ingest_ts,
        e._rule,
        e._detail,
        -- the raw bronze record, only for rejected rows (building JSON for every kept row costs real time at scale)
        case when e._rule is not null then to_json({
            'event_id': e.event_id, 'timestamp': e.timestamp_raw, 'org_id': e.org_id, 'resource_id': e.resource_id,
            'service': e.service, 'region': e.region, 'metric': e.metric, 'value': e.value, 'unit': e.unit,
            'cost_usd_increment': e.cost_usd_increment, 'schema_version': e.schema_version, 'carbon_kg': e.carbon_kg,
            'genai_tokens': e.genai_tokens, 'cast_errors': e.cast_errors, 'source_file': e.source_file,
            'source_line': e.source_line
        })::varchar end as _raw
    from scored as e
    left join silver_orgs as o on o.org_id = e.org_id
    left join silver_resources as r on r.resource_id = e.resource_id
)

select * from final
