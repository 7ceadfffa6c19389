-- grain: one row per data record of a CSV snapshot, typed by its contract, numbered in file order (ordinality)
-- inputs: variables csv_path (the scratch copy: a literal name, no glob characters — DuckDB expands them),
-- csv_columns (struct name → type, the contract's columns in order), csv_max_line_bytes (the reader's
-- max_line_size); a value that breaks the contract goes to the temp tables _csv_rejects and _csv_reject_scans
-- (lake/sql/bronze/csv_read_check.sql), never silently into the rows
select *
from read_csv(
    getvariable('csv_path'),
    header = true,
    columns = getvariable('csv_columns'),
    delim = ',',
    quote = '"',
    escape = '"',
    strict_mode = true,
    store_rejects = true,
    ignore_errors = true,
    max_line_size = getvariable('csv_max_line_bytes'),
    rejects_table = '_csv_rejects',
    rejects_scan = '_csv_reject_scans',
    auto_detect = false
) with ordinality
