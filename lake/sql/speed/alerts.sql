-- grain: one row per org 5-minute window the judged files touch whose cost (all services, all files) exceeds the
-- threshold and that has no alert yet (columns in ALERT_COLUMNS order)
-- inputs: _speed_contrib (the judged files' contributions), _speed_windows_out (the new content of the windows'
-- partitions), _speed_alerts_prev (the alerts already recorded); variables speed_alert_threshold_usd,
-- speed_alert_raised_by (the file version), speed_alert_source_file, speed_alert_raised_at (timestamp text)
with touched as (
    select distinct org_id, window_start from _speed_contrib where window_size = '5m'
),

hits as (
    select
        w.org_id, w.window_start, max(w.window_end) as window_end, sum(w.cost_usd)::decimal(18, 6) as cost_usd
    from _speed_windows_out as w
    join touched as t on t.org_id = w.org_id and t.window_start = w.window_start
    where w.window_size = '5m'
    group by w.org_id, w.window_start
    having sum(w.cost_usd) > cast(getvariable('speed_alert_threshold_usd') as decimal(18, 6))
),

raised as (
    select
        '5m/' || org_id || '/' || strftime(window_start, '%Y-%m-%dT%H:%M:%SZ') as alert_id, org_id, window_start,
        window_end, cost_usd, cast(getvariable('speed_alert_threshold_usd') as decimal(18, 6)) as threshold_usd,
        getvariable('speed_alert_raised_by')::varchar as raised_by,
        getvariable('speed_alert_source_file')::varchar as source_file,
        cast(getvariable('speed_alert_raised_at') as timestamp) as raised_at
    from hits
),

final as (
    select * from raised where alert_id not in (select alert_id from _speed_alerts_prev)
)

select * from final
