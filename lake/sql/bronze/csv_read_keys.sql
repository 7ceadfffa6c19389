-- grain: one row per record the CSV reader returned, in file order: its first field as text ('' when null), to
-- find the first record of the file it did not return
-- inputs: temp table _csv_raw (lake/sql/bronze/csv_read.sql), variable csv_first_column (the contract's first column)
with final as (
    select ordinality, coalesce(struct_extract(r, getvariable('csv_first_column'))::varchar, '') as v
    from _csv_raw as r
)

select v from final order by ordinality
