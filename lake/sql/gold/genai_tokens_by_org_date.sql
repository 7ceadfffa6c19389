-- grain: one row per (org_id, usage_date) with at least one kept v2 genai event
with genai as (
    select * from silver_usage_events
    where service = 'genai' and schema_version = 2
),

daily as (
    select
        org_id,
        usage_date,
        coalesce(sum(genai_tokens), 0)::bigint as total_tokens,
        count(*)::bigint as genai_events,
        sum(cost_usd_increment)::decimal(18, 6) as total_cost_usd
    from genai
    group by org_id, usage_date
),

final as (
    select
        org_id,
        usage_date,
        total_tokens,
        genai_events,
        total_cost_usd,
        case when total_tokens > 0 then round(total_cost_usd::double / total_tokens * 1000, 6) end as est_cost_per_1k_tokens
    from daily
)

select * from final
