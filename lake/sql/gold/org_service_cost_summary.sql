-- grain: one row per (org_id, summary_date, service) for every date of the usage range x every pair with usage
-- in the 14 days ending at that date (SPEC §6); windows are computed on the dense grid, then the grid is cut
with daily as (
    select org_id, service, usage_date, sum(cost_usd_increment)::decimal(18, 6) as cost
    from silver_usage_events
    group by org_id, service, usage_date
),

-- the usage date range of the whole input: a partition-scoped run reads only some days, so the run passes the
-- range in range_first / range_last (NULL when unset: the range of what is read)
date_range as (
    select
        coalesce(getvariable('range_first')::date, min(usage_date)) as first_date,
        coalesce(getvariable('range_last')::date, max(usage_date)) as last_date
    from daily
),

dates as (
    select unnest(generate_series(first_date, last_date, interval 1 day))::date as summary_date
    from date_range
    where first_date is not null
),

pairs as (
    select distinct org_id, service from daily
),

grid as (
    select
        p.org_id,
        p.service,
        d.summary_date,
        coalesce(x.cost, 0)::decimal(18, 6) as cost,
        x.usage_date is not null as has_usage
    from pairs as p
    cross join dates as d
    left join daily as x on x.org_id = p.org_id and x.service = p.service and x.usage_date = d.summary_date
),

windows as (
    select
        org_id,
        summary_date,
        service,
        cost as cost_1d,
        sum(cost) over (partition by org_id, service order by summary_date rows between 6 preceding and current row)::decimal(18, 6) as cost_7d,
        sum(cost) over (partition by org_id, service order by summary_date rows between 13 preceding and current row)::decimal(18, 6) as cost_14d,
        -- "with usage" = at least one kept event in the window (a zero-cost event still counts)
        count(*) filter (where has_usage) over (
            partition by org_id, service order by summary_date rows between 13 preceding and current row
        ) as usage_days_14d
    from grid
),

final as (
    select
        org_id,
        summary_date,
        service,
        cost_1d,
        cost_7d,
        cost_14d,
        row_number() over (partition by org_id, summary_date order by cost_14d desc, service asc)::integer as rank_14d
    from windows
    where usage_days_14d > 0
)

select * from final
