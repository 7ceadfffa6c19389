-- grain: one row per user_id (first line wins); email never leaves silver in clear text
with source as (
    select * from bronze_users
),

ranked as (
    select s.*, row_number() over (partition by user_id order by source_file, source_line) as dup_rank,
        to_json(s)::varchar as raw
    from source as s
),

final as (
    select
        user_id,
        org_id,
        case when regexp_full_match(trim(email), '[^@\s]+@[^@\s]+\.[^@\s]+')
            then sha256(getvariable('email_salt') || lower(trim(email))) end as email_hash,
        case when regexp_full_match(trim(email), '[^@\s]+@[^@\s]+\.[^@\s]+')
            then lower(split_part(trim(email), '@', 2)) end as email_domain,
        lower(trim(role)) as role,
        active,
        created_at,
        last_login,
        source_file,
        source_line,
        ingest_ts,
        case
            when blank(user_id) then 'missing_required'
            when dup_rank > 1 then 'duplicate_key'
            when email is null or not regexp_full_match(trim(email), '[^@\s]+@[^@\s]+\.[^@\s]+') then 'invalid_email'
        end as _rule,
        case
            when blank(user_id) then 'user_id is empty'
            when dup_rank > 1 then 'user_id ' || user_id || ' already seen earlier in the file'
            when email is null then 'email is empty'
            when not regexp_full_match(trim(email), '[^@\s]+@[^@\s]+\.[^@\s]+') then 'email is not a valid address'
        end as _detail,
        -- PII: the quarantined raw record keeps the hash, not the address
        json_merge_patch(raw, json_object('email', sha256(getvariable('email_salt') || lower(trim(coalesce(email, ''))))))::varchar as _raw
    from ranked
)

select * from final
