-- grain: one row per org_id (first line wins); rejected rows carry _rule
with source as (
    select * from bronze_orgs
),

ranked as (
    select s.*, row_number() over (partition by org_id order by source_file, source_line) as dup_rank, to_json(s)::varchar as raw
    from source as s
),

final as (
    select
        org_id,
        trim(org_name) as org_name,
        trim(industry) as industry,
        coalesce(canon('region', hq_region), hq_region) as hq_region,
        lower(trim(plan_tier)) as plan_tier,
        is_enterprise,
        signup_date,
        sales_rep,
        lifecycle_stage,
        marketing_source,
        case when nps_score between -100 and 100 then nps_score end as nps_score,
        coalesce(nps_score not between -100 and 100, false) as nps_out_of_range,
        source_file,
        source_line,
        ingest_ts,
        case
            when blank(org_id) then 'missing_required'
            when dup_rank > 1 then 'duplicate_key'
        end as _rule,
        case
            when blank(org_id) then 'org_id is empty'
            when dup_rank > 1 then 'org_id ' || org_id || ' already seen earlier in the file'
        end as _detail,
        raw as _raw
    from ranked
)

select * from final
