-- grain: one row per ticket_id (first line wins)
with source as (
    select * from bronze_tickets
),

ranked as (
    select s.*, row_number() over (partition by ticket_id order by source_file, source_line) as dup_rank,
        to_json(s)::varchar as raw
    from source as s
),

final as (
    select
        ticket_id,
        org_id,
        lower(trim(category)) as category,
        lower(trim(severity)) as severity,
        created_at,
        resolved_at,
        created_at::date as ticket_date,
        case when csat between 1 and 5 then csat end as csat,
        coalesce(csat not between 1 and 5, false) as csat_out_of_range,
        coalesce(sla_breached, false) as sla_breached,
        source_file,
        source_line,
        ingest_ts,
        case
            when blank(ticket_id) then 'missing_required'
            when dup_rank > 1 then 'duplicate_key'
            when resolved_at < created_at then 'bad_interval'
            -- a date far from the data would publish a bogus ticket_date partition (docs/decisions.md)
            when created_at < getvariable('rule_min_date')::timestamp
                or created_at > ingest_ts + getvariable('rule_max_future_days')::integer * interval 1 day
                then 'implausible_timestamp'
        end as _rule,
        case
            when blank(ticket_id) then 'ticket_id is empty'
            when dup_rank > 1 then 'ticket_id ' || ticket_id || ' already seen earlier in the file'
            when resolved_at < created_at then 'resolved_at ' || resolved_at::varchar || ' < created_at ' || created_at::varchar
            when created_at < getvariable('rule_min_date')::timestamp
                or created_at > ingest_ts + getvariable('rule_max_future_days')::integer * interval 1 day
                then 'created_at ' || created_at::varchar || ' outside [' || getvariable('rule_min_date') || ', ingest_ts + '
                    || getvariable('rule_max_future_days')::varchar || ' days]'
        end as _detail,
        raw as _raw
    from ranked
)

select * from final
