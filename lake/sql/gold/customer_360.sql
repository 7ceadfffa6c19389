-- grain: one row per org_id of silver orgs (SPEC §6b); as_of = the latest usage_date in silver events, read from the
-- daily mart (every kept event is in one of its rows), so a run that lands one day reads small gold marts, not silver
-- events. Counts and sums an org has none of are 0, never NULL; ratios are NULL when their denominator is 0.
with orgs as (
    select * from silver_orgs
),

daily as (
    select org_id, usage_date, service, total_cost_usd, genai_tokens from gold_org_daily_usage_by_service
),

as_of as (
    select max(usage_date) as as_of from daily
),

usage as (
    select
        d.org_id,
        sum(d.total_cost_usd) filter (where d.usage_date between a.as_of - 29 and a.as_of) as cost_30d,
        sum(d.total_cost_usd) as cost_total,
        count(distinct d.service) filter (where d.usage_date between a.as_of - 29 and a.as_of) as active_services_30d,
        -- the GenAI mart's tokens: genai service only (tokens exist on v2 genai events)
        sum(d.genai_tokens) filter (where d.service = 'genai' and d.usage_date between a.as_of - 29 and a.as_of)
            as genai_tokens_30d,
        min(d.usage_date) as first_usage_date,
        max(d.usage_date) as last_usage_date
    from daily as d
    cross join as_of as a
    group by d.org_id
),

revenue as (
    select
        org_id,
        sum(net_revenue_usd) as net_revenue_usd_total,
        sum(total_billed_usd) as total_billed_usd_total,
        sum(invoice_count) as invoice_count,
        max(billing_month) as last_billing_month
    from gold_revenue_by_org_month
    group by org_id
),

support as (
    select
        t.org_id,
        count(*) as tickets_total,
        count(*) filter (where t.resolved_at is null) as open_tickets,
        count(*) filter (where t.severity = 'critical' and t.ticket_date between a.as_of - 29 and a.as_of)
            as critical_tickets_30d,
        round(count(*) filter (where t.sla_breached) / count(*), 6) as sla_breach_rate,
        round(avg(t.csat), 6) as avg_csat
    from silver_tickets as t
    cross join as_of as a
    group by t.org_id
),

marketing as (
    select
        org_id,
        count(*) as touches,
        count(*) filter (where clicked) as clicks,
        count(*) filter (where converted) as conversions,
        max(touch_date) as last_touch_date
    from silver_marketing_touches
    group by org_id
),

nps as (
    select
        org_id,
        arg_max(nps_score, survey_date) as latest_nps_score,
        count(*) as nps_surveys
    from silver_nps_surveys
    group by org_id
),

people as (
    select
        org_id,
        count(*) as users_total,
        count(*) filter (where active) as active_users
    from silver_users
    group by org_id
),

final as (
    select
        o.org_id,
        o.org_name,
        o.industry,
        o.plan_tier,
        o.hq_region,
        o.is_enterprise,
        o.signup_date,
        o.lifecycle_stage,
        o.marketing_source,
        a.as_of,
        coalesce(u.cost_30d, 0)::decimal(18, 6) as cost_30d,
        coalesce(u.cost_total, 0)::decimal(18, 6) as cost_total,
        coalesce(u.active_services_30d, 0)::bigint as active_services_30d,
        coalesce(u.genai_tokens_30d, 0)::bigint as genai_tokens_30d,
        u.first_usage_date,
        u.last_usage_date,
        coalesce(r.net_revenue_usd_total, 0)::decimal(18, 6) as net_revenue_usd_total,
        coalesce(r.total_billed_usd_total, 0)::decimal(18, 6) as total_billed_usd_total,
        coalesce(r.invoice_count, 0)::bigint as invoice_count,
        r.last_billing_month,
        coalesce(s.tickets_total, 0)::bigint as tickets_total,
        coalesce(s.open_tickets, 0)::bigint as open_tickets,
        coalesce(s.critical_tickets_30d, 0)::bigint as critical_tickets_30d,
        s.sla_breach_rate,
        s.avg_csat,
        coalesce(m.touches, 0)::bigint as touches,
        coalesce(m.clicks, 0)::bigint as clicks,
        coalesce(m.conversions, 0)::bigint as conversions,
        m.last_touch_date,
        n.latest_nps_score,
        coalesce(n.nps_surveys, 0)::bigint as nps_surveys,
        coalesce(p.users_total, 0)::bigint as users_total,
        coalesce(p.active_users, 0)::bigint as active_users
    from orgs as o
    cross join as_of as a
    left join usage as u on u.org_id = o.org_id
    left join revenue as r on r.org_id = o.org_id
    left join support as s on s.org_id = o.org_id
    left join marketing as m on m.org_id = o.org_id
    left join nps as n on n.org_id = o.org_id
    left join people as p on p.org_id = o.org_id
)

select * from final
