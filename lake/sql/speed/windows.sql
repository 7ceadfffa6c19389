-- grain: one row per (window_size, window_start, org_id, service, source_file): a judged file's contribution to a
-- tumbling window (columns in SPEED_WINDOW_COLUMNS order); late events are applied to no window
-- inputs: _speed_events (the judged files' events); variable speed_window_sizes (list of {window_size, minutes})
with sizes as (
    select sz.window_size, sz.minutes from (select unnest(getvariable('speed_window_sizes')) as sz)
),

bucketed as (
    select
        s.window_size,
        time_bucket(to_minutes(s.minutes::bigint), e.event_ts) as window_start,
        time_bucket(to_minutes(s.minutes::bigint), e.event_ts) + to_minutes(s.minutes::bigint) as window_end,
        e.org_id, e.service, e.metric, e.value, e.cost_usd_increment, e.source_file
    from _speed_events as e cross join sizes as s
    where not e.is_late
),

final as (
    select
        window_size, window_start, window_end, org_id, service,
        sum(cost_usd_increment)::decimal(18, 6) as cost_usd,
        coalesce(sum(value::decimal(18, 6)) filter (where metric = 'requests'), 0)::decimal(18, 6) as requests,
        count(*)::bigint as events,
        source_file,
        window_start::date as window_date
    from bucketed
    group by window_size, window_start, window_end, org_id, service, source_file
)

select * from final
