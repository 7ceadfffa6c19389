-- grain: one row per resource_id of silver resources (SPEC §6b). as_of = the latest usage_date in silver events;
-- "30d" = [as_of − 29, as_of], "14d" and "7d" likewise. Events are matched to a resource by resource_id. The daily
-- marts carry no resource, so this mart reads silver events (only the columns it needs).
with resources as (
    select * from silver_resources
),

events as (
    select resource_id, usage_date, metric, value, cost_usd_increment
    from silver_usage_events
    where resource_id is not null
),

as_of as (
    select max(usage_date) as as_of from silver_usage_events
),

per_resource as (
    select
        e.resource_id,
        count(*) filter (where e.usage_date between a.as_of - 29 and a.as_of) as events_30d,
        count(distinct e.usage_date) filter (where e.usage_date between a.as_of - 29 and a.as_of) as active_days_30d,
        sum(e.cost_usd_increment) filter (where e.usage_date between a.as_of - 29 and a.as_of) as cost_30d,
        sum(e.value::decimal(18, 6)) filter (where e.metric = 'cpu_hours' and e.usage_date between a.as_of - 29 and a.as_of)
            as cpu_hours_30d,
        sum(e.value::decimal(18, 6))
            filter (where e.metric = 'storage_gb_hours' and e.usage_date between a.as_of - 29 and a.as_of)
            as storage_gb_hours_30d,
        sum(e.value::decimal(18, 6)) filter (where e.metric = 'requests' and e.usage_date between a.as_of - 29 and a.as_of)
            as requests_30d,
        sum(e.cost_usd_increment) filter (where e.usage_date between a.as_of - 6 and a.as_of) as cost_7d,
        max(e.usage_date) as last_usage_date
    from events as e
    cross join as_of as a
    group by e.resource_id
),

final as (
    select
        r.resource_id,
        r.org_id,
        r.service,
        r.region,
        r.state,
        r.created_at,
        a.as_of,
        coalesce(u.events_30d, 0)::bigint as events_30d,
        coalesce(u.active_days_30d, 0)::bigint as active_days_30d,
        coalesce(u.cost_30d, 0)::decimal(18, 6) as cost_30d,
        coalesce(u.cpu_hours_30d, 0)::decimal(18, 6) as cpu_hours_30d,
        coalesce(u.storage_gb_hours_30d, 0)::decimal(18, 6) as storage_gb_hours_30d,
        coalesce(u.requests_30d, 0)::decimal(18, 6) as requests_30d,
        u.last_usage_date,
        (a.as_of - u.last_usage_date)::bigint as idle_days,
        case
            when u.last_usage_date is null then 'unused'
            when u.last_usage_date < a.as_of - 13 then 'idle'
            else 'active'
        end as utilization_class,
        coalesce(r.state in ('stopped', 'terminated') and u.cost_7d > 0, false) as stopped_but_billed
    from resources as r
    cross join as_of as a
    left join per_resource as u on u.resource_id = r.resource_id
)

select * from final
