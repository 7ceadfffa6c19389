-- grain: one row per (org_id, billing_month) with at least one kept invoice
with invoices as (
    select * from silver_billing
),

monthly as (
    select
        org_id,
        billing_month,
        count(distinct currency) as currency_count,
        min(currency) as any_currency,
        sum(subtotal) as subtotal_sum,
        sum(subtotal::decimal(38, 6) * fx_rate) as gross_exact,
        sum(credits::decimal(38, 6) * fx_rate) as credits_exact,
        sum(taxes::decimal(38, 6) * fx_rate) as taxes_exact,
        arg_min(fx_rate, source_line) as first_fx,
        count(*)::bigint as invoice_count
    from invoices
    group by org_id, billing_month
),

rounded as (
    select
        *,
        gross_exact::decimal(18, 6) as gross_revenue_usd,
        credits_exact::decimal(18, 6) as credits_usd,
        taxes_exact::decimal(18, 6) as taxes_usd
    from monthly
),

final as (
    select
        m.org_id,
        m.billing_month,
        o.org_name,
        o.industry,
        o.plan_tier,
        case when m.currency_count > 1 then 'MIXED' else m.any_currency end as currency_original,
        case
            when m.currency_count > 1 then null
            when m.subtotal_sum <> 0 then round((m.gross_exact / m.subtotal_sum)::double, 6)
            else round(m.first_fx::double, 6)
        end as fx_rate,
        m.gross_revenue_usd,
        m.credits_usd,
        m.taxes_usd,
        -- from the rounded columns, so every row reads consistently: net = gross − credits, total = net + taxes
        (m.gross_revenue_usd - m.credits_usd)::decimal(18, 6) as net_revenue_usd,
        (m.gross_revenue_usd - m.credits_usd + m.taxes_usd)::decimal(18, 6) as total_billed_usd,
        m.invoice_count
    from rounded as m
    left join silver_orgs as o on o.org_id = m.org_id
)

select * from final
