-- grain: one row per (org_id, survey_date) (first line wins)
with source as (
    select * from bronze_nps_surveys
),

ranked as (
    select s.*, row_number() over (partition by org_id, survey_date order by source_file, source_line) as dup_rank,
        to_json(s)::varchar as raw
    from source as s
),

final as (
    select
        org_id,
        survey_date,
        nps_score,
        comment,
        source_file,
        source_line,
        ingest_ts,
        case
            when blank(org_id) or survey_date is null then 'missing_required'
            when dup_rank > 1 then 'duplicate_key'
            when nps_score is null then 'missing_score'
            when nps_score not between -100 and 100 then 'out_of_range'
        end as _rule,
        case
            when blank(org_id) or survey_date is null then 'org_id and survey_date are required'
            when dup_rank > 1 then 'survey for this org and date already seen earlier in the file'
            when nps_score is null then 'nps_score is empty'
            when nps_score not between -100 and 100 then 'nps_score ' || nps_score::varchar || ' outside [-100, 100]'
        end as _detail,
        raw as _raw
    from ranked
)

select * from final
