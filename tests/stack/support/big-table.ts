/**
 * A deterministic two-partition table for the killed-write tests: partition `big` is large enough (tens of MB of
 * incompressible Parquet) that its upload takes a while, partition `small` is a few rows. `version` changes every
 * value, so two versions have different content hashes and a reader can tell which one it sees.
 */
export function bigTableSql(version: string, rows: number): string {
  const v = version.replace(/[^a-z0-9]/gi, '');
  return `select case when i < 10 then 'small' else 'big' end as part, i as id,
      md5('${v}-' || i::varchar) || md5('${v}+' || i::varchar) as payload
    from range(${Math.floor(rows)}) t(i)`;
}

/** Per-partition row count and content digest of a relation with the big table's columns. */
export function digestSql(relation: string): string {
  return `select part, count(*)::bigint as n, sum(hash(id, payload))::varchar as h from ${relation} group by part order by part`;
}
