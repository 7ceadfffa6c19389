-- grain: one row per existing bronze row displaced by a first-seen row of the batch (same event_id and day, from a
-- file whose key sorts before the existing row's)
-- inputs: bronze_lookup (event_id, usage_date and source_file of the bronze rows of the batch's days whose event_id
-- the batch has), _new_events (bronze/usage_events_first_seen.sql)
with existing as (
    select event_id, usage_date, source_file from bronze_lookup where event_id is not null
),

final as (
    select b.event_id, b.usage_date, b.source_file from existing as b
    where exists (
        select 1 from _new_events as n
        where n.event_id = b.event_id and n.usage_date is not distinct from b.usage_date
            and n.source_file < b.source_file
    )
)

select * from final
