-- grain: one row per non-empty line of the newly landed event files (parsed or not)
-- inputs: temp table _event_lines(source_file, source_line, line) (lake/sql/bronze/usage_events_lines.sql), variables
-- run_id, ingest_ts
with cleaned as (
    -- CRLF line endings and a UTF-8 byte-order mark are not part of the record
    select
        source_file,
        source_line,
        -- rtrim with a character list walks the whole line's code points: only lines that end in CR (ends_with
        -- compares bytes) go through it, the same result at a fraction of the cost
        case
            when starts_with(line, chr(65279)) then substr(rtrim(line, chr(13)), 2)
            when ends_with(line, chr(13)) then rtrim(line, chr(13))
            else line
        end as line
    from _event_lines
),

non_empty as (
    select * from cleaned where not regexp_full_match(line, '\s*')
),

classified as (
    select
        *,
        -- a valid JSON text that starts with '{' is an object (cheaper than json_type on every line)
        json_valid(line) and starts_with(ltrim(line), '{') as is_object
    from non_empty
),

extracted as (
    select
        source_file,
        source_line,
        line,
        is_object,
        -- one parse per line; every field as text (numbers keep their JSON spelling), typed explicitly below
        case when is_object then json_transform(line, '{
            "event_id": "VARCHAR", "timestamp": "VARCHAR", "org_id": "VARCHAR", "resource_id": "VARCHAR",
            "service": "VARCHAR", "region": "VARCHAR", "metric": "VARCHAR", "value": "VARCHAR", "unit": "VARCHAR",
            "cost_usd_increment": "VARCHAR", "schema_version": "VARCHAR", "carbon_kg": "VARCHAR", "genai_tokens": "VARCHAR"
        }') end as j
    from classified
),

typed as (
    select
        nullif(j.event_id, '') as event_id,
        j."timestamp" as timestamp_raw,
        -- ISO-8601 only: YYYY-MM-DDTHH:MM[:SS[.fff]] with Z, an offset or no zone (= UTC); DuckDB's cast alone is laxer.
        -- An offset is a real one: hours 00-14 (UTC-12:00 … UTC+14:00 and a little slack), minutes 00-59; DuckDB
        -- would shift `+99:99` by four days instead of refusing it.
        case when regexp_full_match(j."timestamp", '\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-](0\d|1[0-4])(:?[0-5]\d)?)?')
            then try_cast(j."timestamp" as timestamptz)::timestamp end as event_ts,
        nullif(j.org_id, '') as org_id,
        nullif(j.resource_id, '') as resource_id,
        j.service as service,
        j.region as region,
        j.metric as metric,
        j.value as value,
        nullif(trim(j.unit), '') as unit,
        coalesce(try_cast(j.cost_usd_increment as decimal(18, 6)), try_cast(try_cast(j.cost_usd_increment as double) as decimal(18, 6))) as cost_usd_increment,
        try_cast(try_cast(j.schema_version as double) as integer) as schema_version,
        coalesce(try_cast(j.carbon_kg as decimal(18, 9)), try_cast(try_cast(j.carbon_kg as double) as decimal(18, 9))) as carbon_kg,
        try_cast(try_cast(j.genai_tokens as double) as bigint) as genai_tokens,
        nullif(concat_ws(',',
            case when j.cost_usd_increment is not null and coalesce(try_cast(j.cost_usd_increment as decimal(18, 6)), try_cast(try_cast(j.cost_usd_increment as double) as decimal(18, 6))) is null then 'cost_usd_increment' end,
            case when j.schema_version is not null and try_cast(try_cast(j.schema_version as double) as integer) is null then 'schema_version' end,
            case when j.carbon_kg is not null and coalesce(try_cast(j.carbon_kg as decimal(18, 9)), try_cast(try_cast(j.carbon_kg as double) as decimal(18, 9))) is null then 'carbon_kg' end,
            case when j.genai_tokens is not null and try_cast(try_cast(j.genai_tokens as double) as bigint) is null then 'genai_tokens' end
        ), '') as cast_errors,
        source_file,
        source_line,
        line,
        is_object
    from extracted
),

final as (
    select
        event_id, timestamp_raw, event_ts, org_id, resource_id, service, region, metric, value, unit,
        cost_usd_increment, schema_version, carbon_kg, genai_tokens, cast_errors,
        event_ts::date as usage_date,
        getvariable('ingest_ts')::timestamp as ingest_ts,
        source_file,
        source_line,
        getvariable('run_id') as run_id,
        case when not is_object then 'malformed_json' end as _rule,
        case when not is_object then
            case when json_valid(line) then 'line is valid JSON but not an object' else 'line is not valid JSON' end
        end as _detail,
        case when not is_object then left(line, 65536) end as _raw
    from typed
)

select * from final
