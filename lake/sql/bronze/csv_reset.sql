-- The reject tables of a previous read on this connection: read_csv appends to them, never replaces them
drop table if exists _csv_rejects;
drop table if exists _csv_reject_scans;
