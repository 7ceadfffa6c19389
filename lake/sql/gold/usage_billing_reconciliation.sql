-- grain: one row per (org_id, billing_month) in billing ∪ usage (SPEC §6b): what the events metered against what
-- was invoiced. Metered figures come from the daily mart (Σ of its days in the month), billed ones from
-- revenue_by_org_month (gross = Σ subtotal·fx). A month is covered when the events' date range — of all orgs, the
-- feed's — spans every day of it: a month the data starts or ends in is `partial_month` (docs/decisions.md).
with daily as (
    select org_id, usage_date, total_cost_usd from gold_org_daily_usage_by_service
),

feed as (
    select min(usage_date) as first_date, max(usage_date) as last_date from daily
),

metered as (
    select
        org_id,
        date_trunc('month', usage_date)::date as billing_month,
        sum(total_cost_usd) as metered_cost_usd,
        count(distinct usage_date) as usage_days
    from daily
    group by 1, 2
),

billed as (
    select org_id, billing_month, gross_revenue_usd as billed_subtotal_usd, invoice_count
    from gold_revenue_by_org_month
),

joined as (
    select
        coalesce(m.org_id, b.org_id) as org_id,
        coalesce(m.billing_month, b.billing_month) as billing_month,
        coalesce(m.metered_cost_usd, 0)::decimal(18, 6) as metered_cost_usd,
        coalesce(m.usage_days, 0)::bigint as usage_days,
        coalesce(
            f.first_date <= coalesce(m.billing_month, b.billing_month)
            and f.last_date >= last_day(coalesce(m.billing_month, b.billing_month)),
            false
        ) as month_covered,
        b.billed_subtotal_usd,
        coalesce(b.invoice_count, 0)::bigint as invoice_count
    from metered as m
    full outer join billed as b on b.org_id = m.org_id and b.billing_month = m.billing_month
    cross join feed as f
),

compared as (
    select
        *,
        (billed_subtotal_usd - metered_cost_usd)::decimal(18, 6) as difference_usd,
        case when metered_cost_usd <> 0
            then round((billed_subtotal_usd - metered_cost_usd)::double / metered_cost_usd::double, 6) end as difference_pct
    from joined
),

final as (
    select
        org_id,
        billing_month,
        metered_cost_usd,
        usage_days,
        month_covered,
        billed_subtotal_usd,
        invoice_count,
        difference_usd,
        difference_pct,
        case
            when billed_subtotal_usd is null then 'no_invoice'
            when usage_days = 0 then 'no_usage'
            when not month_covered then 'partial_month'
            -- |difference_pct| ≤ tolerance decided exactly on the decimals, not on the rounded ratio; a month whose
            -- events cost 0 in all has no ratio and matches only a bill of exactly 0
            when abs(difference_usd) <= getvariable('reconciliation_tolerance')::decimal(18, 9) * abs(metered_cost_usd)
                then 'match'
            when difference_usd > 0 then 'over_billed'
            else 'under_billed'
        end as status
    from compared
)

select * from final
