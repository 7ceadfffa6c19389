-- grain: one row per (attribution_model, channel, campaign) with touches (SPEC §6b). Each org's net revenue (Σ net of
-- revenue_by_org_month, 0 without invoices) is credited to its touches: `first_touch` all of it to the earliest touch
-- (touch timestamp, then touch_id); `linear` equally over all of them. Shares are truncated to 6 places and the
-- remainder goes to the org's earliest touch, so Σ attributed_net_revenue_usd per model equals Σ net revenue of the
-- orgs with touches exactly, and Σ attributed_orgs the number of those orgs (docs/decisions.md).
with touches as (
    select touch_id, org_id, channel, campaign, touch_ts, clicked, converted from silver_marketing_touches
),

org_revenue as (
    select org_id, sum(net_revenue_usd) as net_revenue_usd from gold_revenue_by_org_month group by org_id
),

ordered as (
    select
        t.*,
        row_number() over (partition by t.org_id order by t.touch_ts asc nulls last, t.touch_id asc) as touch_rank,
        count(*) over (partition by t.org_id) as org_touches,
        -- exact integer arithmetic in millionths: no double rounding in the split
        (coalesce(r.net_revenue_usd, 0) * 1000000)::hugeint as net_units
    from touches as t
    left join org_revenue as r on r.org_id = t.org_id
),

linear_split as (
    select
        *,
        net_units // org_touches as revenue_units,
        1000000::hugeint // org_touches as org_units
    from ordered
),

credits as (
    select
        'first_touch' as attribution_model,
        channel,
        campaign,
        clicked,
        converted,
        case when touch_rank = 1 then net_units else 0 end as revenue_units,
        case when touch_rank = 1 then 1000000 else 0 end as org_units
    from ordered
    union all
    select
        'linear' as attribution_model,
        channel,
        campaign,
        clicked,
        converted,
        revenue_units + case when touch_rank = 1 then net_units - revenue_units * org_touches else 0 end,
        org_units + case when touch_rank = 1 then 1000000 - org_units * org_touches else 0 end
    from linear_split
),

final as (
    select
        attribution_model,
        channel,
        campaign,
        count(*)::bigint as touches,
        count(*) filter (where clicked)::bigint as clicks,
        count(*) filter (where converted)::bigint as conversions,
        round(count(*) filter (where clicked) / count(*), 6) as click_rate,
        round(count(*) filter (where converted) / count(*), 6) as conversion_rate,
        (sum(org_units)::decimal(38, 0) * 0.000001)::decimal(18, 6) as attributed_orgs,
        (sum(revenue_units)::decimal(38, 0) * 0.000001)::decimal(18, 6) as attributed_net_revenue_usd
    from credits
    group by attribution_model, channel, campaign
)

select * from final
