-- grain: one row per malformed line (rule malformed_json) of every ingested events file, keyed by (file, line):
-- re-ingesting a file after a crash does not duplicate them
-- inputs: quarantine_existing (quarantine.usage_events), _parsed (bronze/usage_events.sql over the batch)
with existing as (
    select rule, detail, source_file, source_line, raw, null::date as usage_date
    from quarantine_existing where rule = 'malformed_json'
),

batch as (
    select _rule, _detail, source_file, source_line, _raw, null::date from _parsed where _rule is not null
),

final as (
    select * from existing
    union all
    select * from batch
    qualify row_number() over (partition by source_file, source_line order by source_file) = 1
)

select * from final
