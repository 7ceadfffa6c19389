-- grain: one row per late event of the judged files (older than the watermark its file was judged against), for
-- audit (columns in LATE_EVENT_COLUMNS order)
-- inputs: _speed_events (the judged files' events)
with late as (
    select * from _speed_events where is_late
),

final as (
    select
        event_id, event_ts, org_id, service, metric, value, cost_usd_increment::decimal(18, 6) as cost_usd,
        source_file, source_line::integer as source_line, watermark, usage_date
    from late
)

select * from final
