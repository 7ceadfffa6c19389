-- grain: one row per (org_id, ticket_date, severity)
with tickets as (
    select * from silver_tickets
),

final as (
    select
        org_id,
        ticket_date,
        severity,
        count(*)::bigint as total_tickets,
        count(*) filter (where resolved_at is null)::bigint as open_tickets,
        count(*) filter (where sla_breached)::bigint as sla_breach_count,
        round(count(*) filter (where sla_breached) / count(*), 6) as sla_breach_rate,
        round(avg(csat), 6) as avg_csat,
        round(avg(epoch(resolved_at - created_at) / 86400.0) filter (where resolved_at is not null), 6) as avg_resolution_days
    from tickets
    group by org_id, ticket_date, severity
)

select * from final
