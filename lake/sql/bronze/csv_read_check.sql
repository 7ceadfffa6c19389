-- grain: one row: how many records the CSV reader returned, whether it rejected any value, and the first value it
-- rejected (lowest line, then column; nulls when none)
-- inputs: temp tables _csv_raw and _csv_rejects (lake/sql/bronze/csv_read.sql)
with read_rows as (
    select count(*)::bigint as read_rows, exists (select 1 from _csv_rejects) as rejected from _csv_raw
),

first_reject as (
    select line, line_byte_position, column_idx, column_name, error_type, error_message
    from _csv_rejects
    order by line, column_idx
    limit 1
),

final as (
    select * from read_rows left join first_reject on true
)

select * from final
