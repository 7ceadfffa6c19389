-- grain: one row per line of the newly landed event files (empty ones too), with its file and line number
-- inputs: temp table _event_files(path, source_file), variable event_paths
-- The first half of the bronze parse (lake/sql/bronze/usage_events.sql reads its output from _event_lines). read_text
-- returns one row per file, so a plan that splits and parses in one statement runs on one thread: measured on 85
-- S=100 files (306,000 lines, 2 threads) 0.9-1.1 s in one statement against 0.2 s here plus 0.48 s for the rest, which
-- then runs in parallel over this table's row groups (so does everything per line, the cleaning too).
with files as (
    select f.source_file, t.content
    from read_text(getvariable('event_paths')) as t
    join _event_files as f on f.path = t.filename
),

split as (
    select source_file, string_split(content, chr(10)) as parts from files
),

lines as (
    select source_file, unnest(parts) as line, generate_subscripts(parts, 1) as source_line from split
)

select source_file, source_line::integer as source_line, line from lines
