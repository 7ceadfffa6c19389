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
        -- an exchange rate beyond the plausible bound is not cast (DECIMAL(18,9) holds < 10^9): implausible_fx
        case
            when currency_code = 'USD' then 1.0::decimal(18, 9)
            when exchange_rate_to_usd <= getvariable('rule_max_fx_rate') then exchange_rate_to_usd::decimal(18, 9)
        end as fx_rate,
        currency_code = 'USD' and exchange_rate_to_usd is distinct from 1.0 as fx_corrected
    from ranked
),

-- exact USD amounts (DECIMAL(38, 15): |amount| < 10^12 times fx <= 10^6 fits), judged before any narrowing cast
amounts as (
    select
        *,
        subtotal::decimal(38, 6) * fx_rate as subtotal_usd_exact,
        coalesce(credits, 0)::decimal(38, 6) * fx_rate as credits_usd_exact,
        coalesce(taxes, 0)::decimal(38, 6) * fx_rate as taxes_usd_exact
    from fx
),

ruled as (
    select
        *,
        case
            when blank(invoice_id) then 'missing_required'
            when dup_rank > 1 then 'duplicate_key'
            when subtotal < 0 then 'negative_subtotal'
            when currency_code is null or not list_contains(getvariable('currencies'), currency_code) then 'unknown_currency'
            when currency_code <> 'USD' and (exchange_rate_to_usd is null or exchange_rate_to_usd <= 0) then 'bad_fx'
            when fx_rate is null then 'implausible_fx'
            when greatest(abs(subtotal_usd_exact), abs(credits_usd_exact), abs(taxes_usd_exact))
                > getvariable('rule_max_invoice_usd') then 'implausible_amount'
            when month < getvariable('rule_min_date')::date
                or month > ingest_ts + getvariable('rule_max_future_days')::integer * interval 1 day
                then 'implausible_timestamp'
        end as _rule
    from amounts
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
        -- kept rows are within rule_max_invoice_usd, so the DECIMAL(18,6) casts cannot overflow
        case when _rule is null then subtotal_usd_exact::decimal(18, 6) end as subtotal_usd,
        case when _rule is null then credits_usd_exact::decimal(18, 6) end as credits_usd,
        case when _rule is null then taxes_usd_exact::decimal(18, 6) end as taxes_usd,
        source_file,
        source_line,
        ingest_ts,
        _rule,
        case _rule
            when 'missing_required' then 'invoice_id is empty'
            when 'duplicate_key' then 'invoice_id ' || invoice_id || ' already seen earlier in the file'
            when 'negative_subtotal' then 'subtotal ' || subtotal::varchar || ' < 0'
            when 'unknown_currency' then 'currency ' || coalesce(currency, 'NULL') || ' not in the configured set'
            when 'bad_fx' then 'exchange_rate_to_usd missing or not positive for ' || currency_code
            when 'implausible_fx' then 'exchange_rate_to_usd ' || exchange_rate_to_usd::varchar || ' > '
                || getvariable('rule_max_fx_rate')::varchar
            when 'implausible_amount' then 'subtotal/credits/taxes in USD ' || concat_ws(' / ', subtotal_usd_exact::decimal(38, 6),
                credits_usd_exact::decimal(38, 6), taxes_usd_exact::decimal(38, 6)) || ' beyond ±' || getvariable('rule_max_invoice_usd')::varchar
            when 'implausible_timestamp' then 'month ' || month::varchar || ' outside [' || getvariable('rule_min_date')
                || ', ingest_ts + ' || getvariable('rule_max_future_days')::varchar || ' days]'
        end as _detail,
        raw as _raw
    from ruled
)

select * from final
