-- grain: one row per data record of a CSV snapshot, with the columns every bronze row carries
-- inputs: temp tables _csv_raw (lake/sql/bronze/csv_read.sql) and _csv_lines(ordinality, line): the physical line
-- each record starts on, filled only when a quoted field spans lines (else empty: the line is ordinality + 1);
-- variables ingest_ts, source_file, and run_id (set by openLake for every step)
with records as (
    select r.* exclude (ordinality), coalesce(l.line, (r.ordinality + 1)::integer) as source_line
    from _csv_raw as r
    left join _csv_lines as l on l.ordinality = r.ordinality
),

final as (
    select
        * exclude (source_line),
        getvariable('ingest_ts')::timestamp as ingest_ts,
        getvariable('source_file') as source_file,
        source_line,
        getvariable('run_id') as run_id
    from records
)

select * from final
