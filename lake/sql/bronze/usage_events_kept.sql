-- grain: one row per existing bronze row of the partitions the batch rewrites that stays (not displaced)
-- inputs: bronze_existing (the bronze rows of the batch's days), _displaced (bronze/usage_events_displaced.sql);
-- variables bronze_partitions (the usage_date partitions the batch's new rows fall in, as meta.partitions names
-- them), null_partition (the name of the partition of rows of no day)
with rewritten as (
    select * from bronze_existing
    where list_contains(
        getvariable('bronze_partitions'), coalesce(cast(usage_date as varchar), getvariable('null_partition'))
    )
),

final as (
    select * from rewritten as b
    where not exists (
        select 1 from _displaced as d
        where d.event_id = b.event_id and d.source_file = b.source_file
            and d.usage_date is not distinct from b.usage_date
    )
)

select * from final
