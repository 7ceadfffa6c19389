-- grain: one row per parsed event of the batch that bronze keeps: first in landing order by event_id, within the
-- batch by (file key, line); against bronze, an existing row wins unless it came from a file whose key sorts after
-- this one's (then it is displaced). A changed version of a file never displaces its earlier version's rows (same
-- key: the existing row wins).
-- inputs: _parsed (bronze/usage_events.sql over the batch), bronze_lookup (the bronze rows of the batch's days; an
-- empty view when bronze holds none of them, so no lookup is made)
with parsed as (
    select * exclude (_rule, _detail, _raw) from _parsed where _rule is null
),

final as (
    -- a null event_id equals no existing id, so the NOT EXISTS keeps it (a plain anti join, no OR)
    select * from parsed as p
    where not exists (
        select 1 from bronze_lookup as b
        where b.event_id = p.event_id and b.usage_date is not distinct from p.usage_date
            and b.source_file <= p.source_file
    )
    qualify event_id is null
        or row_number() over (partition by event_id order by source_file, source_line) = 1
)

select * from final
