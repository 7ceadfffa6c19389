-- grain: one row per event of one judged file that passes the silver rules, with its lateness
-- inputs: _speed_silver (the silver usage_events model over the file's first-seen bronze rows);
-- variable speed_watermark (DuckDB timestamp text, '-infinity' when no earlier file is done)
with kept as (
    select event_id, event_ts, usage_date, org_id, service, metric, value, cost_usd_increment, source_file, source_line
    from _speed_silver
    where _rule is null
),

final as (
    select
        *,
        event_ts < cast(getvariable('speed_watermark') as timestamp) as is_late,
        cast(getvariable('speed_watermark') as timestamp) as watermark
    from kept
)

select * from final
