-- grain: one row per resource_id (first line wins)
with source as (
    select * from bronze_resources
),

ranked as (
    select s.*, row_number() over (partition by resource_id order by source_file, source_line) as dup_rank,
        to_json(s)::varchar as raw
    from source as s
),

final as (
    select
        resource_id,
        org_id,
        canon('service', service) as service,
        canon('region', region) as region,
        created_at,
        lower(trim(state)) as state,
        tags_json,
        source_file,
        source_line,
        ingest_ts,
        case
            when blank(resource_id) then 'missing_required'
            when dup_rank > 1 then 'duplicate_key'
        end as _rule,
        case
            when blank(resource_id) then 'resource_id is empty'
            when dup_rank > 1 then 'resource_id ' || resource_id || ' already seen earlier in the file'
        end as _detail,
        raw as _raw
    from ranked
)

select * from final
