-- grain: one row per invoice_id (first line wins); amounts normalised to USD
with source as (
    select * from bronze_billing
),

ranked as (
    select s.*, row_number() over (partition by invoice_id order by source_file, source_line) as dup_rank,
        upper(trim(currency)) as currency_code,
        to_json(s)::varchar as raw
    from source as s
),

fx as (
    select
        *,
        case when currency_code = 'USD' then 1.0::decimal(18, 9) else exchange_rate_to_usd::decimal(18, 9) end as fx_rate,
        currency_code = 'USD' and exchange_rate_to_usd is distinct from 1.0 as fx_corrected
    from ranked
),

final as (
    select
        invoice_id,
        org_id,
        date_trunc('month', month)::date as billing_month,
        subtotal,
        coalesce(credits, 0)::decimal(18, 6) as credits,
        coalesce(taxes, 0)::decimal(18, 6) as taxes,
        currency_code as currency,
        fx_rate,
        fx_corrected,
        (subtotal::decimal(38, 6) * fx_rate)::decimal(18, 6) as subtotal_usd,
        (coalesce(credits, 0)::decimal(38, 6) * fx_rate)::decimal(18, 6) as credits_usd,
        (coalesce(taxes, 0)::decimal(38, 6) * fx_rate)::decimal(18, 6) as taxes_usd,
        source_file,
        source_line,
        ingest_ts,
        case
            when blank(invoice_id) then 'missing_required'
            when dup_rank > 1 then 'duplicate_key'
            when subtotal < 0 then 'negative_subtotal'
            when currency_code is null or not list_contains(getvariable('currencies'), currency_code) then 'unknown_currency'
            when currency_code <> 'USD' and (exchange_rate_to_usd is null or exchange_rate_to_usd <= 0) then 'bad_fx'
        end as _rule,
        case
            when blank(invoice_id) then 'invoice_id is empty'
            when dup_rank > 1 then 'invoice_id ' || invoice_id || ' already seen earlier in the file'
            when subtotal < 0 then 'subtotal ' || subtotal::varchar || ' < 0'
            when currency_code is null or not list_contains(getvariable('currencies'), currency_code)
                then 'currency ' || coalesce(currency, 'NULL') || ' not in the configured set'
            when currency_code <> 'USD' and (exchange_rate_to_usd is null or exchange_rate_to_usd <= 0)
                then 'exchange_rate_to_usd missing or not positive for ' || currency_code
        end as _detail,
        raw as _raw
    from fx
)

select * from final
