-- grain: one row per touch_id (first line wins)
with source as (
    select * from bronze_marketing_touches
),

ranked as (
    select s.*, row_number() over (partition by touch_id order by source_file, source_line) as dup_rank,
        to_json(s)::varchar as raw
    from source as s
),

final as (
    select
        touch_id,
        org_id,
        trim(campaign) as campaign,
        coalesce(canon('channel', channel), lower(trim(channel))) as channel,
        "timestamp" as touch_ts,
        "timestamp"::date as touch_date,
        coalesce(clicked, false) as clicked,
        coalesce(converted, false) as converted,
        source_file,
        source_line,
        ingest_ts,
        case
            when blank(touch_id) then 'missing_required'
            when dup_rank > 1 then 'duplicate_key'
        end as _rule,
        case
            when blank(touch_id) then 'touch_id is empty'
            when dup_rank > 1 then 'touch_id ' || touch_id || ' already seen earlier in the file'
        end as _detail,
        raw as _raw
    from ranked
)

select * from final
