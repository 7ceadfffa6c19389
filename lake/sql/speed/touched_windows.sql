-- grain: one row per window (window_size, window_start, org_id, service) whose totals this activity may change:
-- those the judged files contribute to now or contributed to before (the serving upsert's scope)
-- inputs: _speed_contrib (the judged files' new contributions), _speed_windows_old (the rows they replace)
with now_touched as (
    select window_size, window_start, org_id, service, window_date from _speed_contrib
),

before_touched as (
    select window_size, window_start, org_id, service, window_date from _speed_windows_old
),

final as (
    select * from now_touched
    union
    select * from before_touched
)

select * from final
