-- grain: one row per (org_id, usage_date, service) with at least one kept event
with events as (
    select * from silver_usage_events
),

-- Sums of DECIMAL(18,6) / DECIMAL(18,9) are DECIMAL(38,·) and Σ BIGINT is HUGEINT in DuckDB; only the output columns
-- are narrowed, and the silver plausibility rules bound every addend (docs/decisions.md "What bounds each sum").
daily as (
    select
        org_id,
        usage_date,
        service,
        sum(cost_usd_increment)::decimal(18, 6) as total_cost_usd,
        coalesce(sum(value::decimal(18, 6)) filter (where metric = 'requests'), 0)::decimal(18, 6) as total_requests,
        coalesce(sum(value::decimal(18, 6)) filter (where metric = 'cpu_hours'), 0)::decimal(18, 6) as cpu_hours,
        coalesce(sum(value::decimal(18, 6)) filter (where metric = 'storage_gb_hours'), 0)::decimal(18, 6) as storage_gb_hours,
        coalesce(sum(genai_tokens), 0)::bigint as genai_tokens,
        -- unknown is not zero: NULL when the day has no v2 event
        case when count(*) filter (where schema_version >= 2) > 0
            then coalesce(sum(carbon_kg), 0) end::decimal(18, 9) as carbon_kg,
        count(*)::bigint as event_count,
        count(*) filter (where is_anomaly)::bigint as anomaly_event_count
    from events
    group by org_id, usage_date, service
),

final as (
    select
        org_id,
        usage_date,
        service,
        total_cost_usd,
        total_requests,
        cpu_hours,
        storage_gb_hours,
        genai_tokens,
        carbon_kg,
        event_count,
        case when total_requests <> 0 then round(total_cost_usd::double / total_requests::double, 6) end as avg_cost_per_request,
        anomaly_event_count
    from daily
)

select * from final
