-- grain: one row per parsed event of the batch that bronze keeps: first in landing order by event_id, within the
-- batch by (file key, line); against bronze, an existing row wins unless it came from a file whose key sorts after
-- this one's (then it is displaced). A changed version of a file never displaces its earlier version's rows (same
-- key: the existing row wins).
-- inputs: _parsed (bronze/usage_events.sql over the batch), bronze_lookup (event_id, usage_date and source_file of the
-- bronze rows of the batch's days whose event_id the batch has; empty when bronze holds none of those days, so no
-- lookup is made)
with parsed as (
    select * exclude (_rule, _detail, _raw) from _parsed where _rule is null
),

survivors as (
    -- a null event_id equals no existing id, so the NOT EXISTS keeps it (a plain anti join, no OR)
    select * from parsed as p
    where not exists (
        select 1 from bronze_lookup as b
        where b.event_id = p.event_id and b.usage_date is not distinct from p.usage_date
            and b.source_file <= p.source_file
    )
),

-- ids that occur more than once among the survivors: only their rows are ordered (a window over every row of the
-- batch sorted a million rows to find the few repeated ids)
repeated as (
    select event_id from survivors where event_id is not null group by event_id having count(*) > 1
),

final as (
    -- an anti join never matches a null event_id: rows without an id are all kept, as the window kept them
    select s.* from survivors as s anti join repeated as r on r.event_id = s.event_id
    union all
    select s.* from survivors as s semi join repeated as r on r.event_id = s.event_id
    qualify row_number() over (partition by s.event_id order by s.source_file, s.source_line) = 1
)

select * from final
