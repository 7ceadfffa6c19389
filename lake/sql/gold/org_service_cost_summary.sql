-- grain: one row per (org_id, summary_date, service) for every date of the usage range x every pair with usage
-- in the 14 days ending at that date (SPEC §6). The grid holds only those rows: each usage day of a pair opens the
-- 14 dates it is in the window of, so the mart's size depends on the usage rows, never on how far apart two
-- dates lie (a dense date x pair grid over a range stretched by one bad date ran out of memory).
-- inputs: gold_org_daily_usage_by_service (one row per (org, date, service) with at least one kept event; its
-- total_cost_usd is the day's Σ cost). Sums and windows are DECIMAL(38,6); only the output columns are narrowed.
with daily as (
    select org_id, service, usage_date, total_cost_usd::decimal(38, 6) as cost
    from gold_org_daily_usage_by_service
),

-- the usage date range of the whole input: a partition-scoped run reads only some days, so the run passes the
-- range in range_first / range_last (NULL when unset: the range of what is read)
date_range as (
    select
        coalesce(getvariable('range_first')::date, min(usage_date)) as first_date,
        coalesce(getvariable('range_last')::date, max(usage_date)) as last_date
    from daily
),

-- each usage day of a pair opens the dates up to 13 days after it, until the pair's next usage day: every grid date
-- once, without a 14x cross join and a DISTINCT over it
spans as (
    select
        org_id,
        service,
        usage_date,
        cost,
        least(
            coalesce(lead(usage_date) over (partition by org_id, service order by usage_date), usage_date + 14),
            usage_date + 14
        ) as span_end
    from daily
),

grid as (
    select
        x.org_id,
        x.service,
        (x.usage_date + k.offset_days::integer)::date as summary_date,
        case when k.offset_days = 0 then coalesce(x.cost, 0) else 0 end::decimal(38, 6) as cost,
        k.offset_days = 0 as has_usage
    from spans as x
    cross join date_range as r
    cross join lateral (select unnest(range(x.span_end - x.usage_date)) as offset_days) as k
    where (x.usage_date + k.offset_days::integer) between r.first_date and r.last_date
),

-- RANGE frames over dates: a day missing from the grid has no usage, so it adds 0 as the dense grid's zero rows did
windows as (
    select
        org_id,
        summary_date,
        service,
        cost as cost_1d,
        sum(cost) over (
            partition by org_id, service order by summary_date range between interval 6 days preceding and current row
        ) as cost_7d,
        sum(cost) over (
            partition by org_id, service order by summary_date range between interval 13 days preceding and current row
        ) as cost_14d,
        -- "with usage" = at least one kept event in the window (a zero-cost event still counts)
        count(*) filter (where has_usage) over (
            partition by org_id, service order by summary_date range between interval 13 days preceding and current row
        ) as usage_days_14d
    from grid
),

final as (
    select
        org_id,
        summary_date,
        service,
        cost_1d::decimal(18, 6) as cost_1d,
        cost_7d::decimal(18, 6) as cost_7d,
        cost_14d::decimal(18, 6) as cost_14d,
        row_number() over (partition by org_id, summary_date order by cost_14d desc, service asc)::integer as rank_14d
    from windows
    where usage_days_14d > 0
)

select * from final
