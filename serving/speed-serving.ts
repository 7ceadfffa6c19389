import cassandra from 'cassandra-driver';
import type { DuckDBConnection } from '@duckdb/node-api';
import { ApplicationFailure } from '@temporalio/common';
import type { Config } from '../config/env';
import { bootstrapCql } from '../config/serving';
import { CassandraRejected, connect, describeError } from '../lake/cassandra';
import type { CassandraClient } from '../lake/cassandra';
import { queryRows } from '../lake/duckdb';
import type { SpeedAlert } from '../lake/speed';

const { types } = cassandra;

/**
 * The speed layer's serving tables (SPEC §7/§8), created by this module (CREATE … IF NOT EXISTS, idempotent) next to
 * the batch serving schema of config/serving.ts. Query-first:
 * - `speed_windows`: "windows of size S for org O on day D, in time order" → partition (org_id, window_size,
 *   window_date), clustering (window_start, service). A day bounds the partition (≤ 288 windows × 6 services).
 * - `speed_alerts`: "alerts of day D" → partition alert_date, clustering (window_start, org_id).
 * Rows are totals over all files (the lake keeps per-file contributions); an upsert by primary key is idempotent.
 */
export function speedServingCql(keyspace: string): string[] {
  return [
    `CREATE TABLE IF NOT EXISTS ${keyspace}.speed_windows (
       org_id text, window_size text, window_date date, window_start timestamp, service text,
       window_end timestamp, cost_usd decimal, requests decimal, events bigint, updated_at timestamp,
       PRIMARY KEY ((org_id, window_size, window_date), window_start, service)
     ) WITH CLUSTERING ORDER BY (window_start ASC, service ASC)`,
    `CREATE TABLE IF NOT EXISTS ${keyspace}.speed_alerts (
       alert_date date, window_start timestamp, org_id text, alert_id text, window_end timestamp,
       cost_usd decimal, threshold_usd decimal, raised_by text, raised_at timestamp,
       PRIMARY KEY ((alert_date), window_start, org_id)
     )`,
  ];
}

const clients = new WeakMap<Config, Promise<CassandraClient>>();

/** One client per worker process and config, schema ensured once. */
async function client(config: Config): Promise<CassandraClient> {
  let p = clients.get(config);
  if (!p) {
    const c = config.cassandra!;
    p = (async () => {
      const cl = await connect(c);
      for (const stmt of [...bootstrapCql(c.keyspace, c.replication), ...speedServingCql(c.keyspace)]) {
        await cl.execute(stmt, [], { prepare: false });
      }
      return cl;
    })();
    clients.set(config, p);
    p.catch(() => clients.delete(config));
  }
  return p;
}

/**
 * Writes the windows the speed activity may have changed (temp table `_speed_touched` of its connection: those the
 * judged files touch now or touched before): the totals of `_speed_windows_out` are upserted, and a window that no
 * longer has a row there (a re-judged file's events became late) is deleted. Then the file's alerts. Returns rows
 * written. Unreachable Cassandra → retryable; a rejected statement → non-retryable `ServingRejected`.
 */
export async function upsertSpeedServing(
  config: Config,
  conn: DuckDBConnection,
  alerts: SpeedAlert[],
): Promise<number> {
  const ks = config.cassandra!.keyspace;
  const rows = await queryRows(
    conn,
    `select w.window_size, strftime(w.window_start, '%Y-%m-%dT%H:%M:%SZ') as window_start,
            strftime(any_value(w.window_end), '%Y-%m-%dT%H:%M:%SZ') as window_end, w.org_id, w.service,
            w.window_date::varchar as window_date, sum(w.cost_usd)::decimal(18, 6)::varchar as cost_usd,
            sum(w.requests)::decimal(18, 6)::varchar as requests, sum(w.events)::varchar as events
     from _speed_windows_out as w
     where exists (select 1 from _speed_touched as t
                   where t.window_size = w.window_size and t.window_start = w.window_start
                     and t.org_id = w.org_id and t.service = w.service)
     group by w.window_size, w.window_start, w.org_id, w.service, w.window_date`,
  );
  const gone = await queryRows(
    conn,
    `select t.window_size, strftime(t.window_start, '%Y-%m-%dT%H:%M:%SZ') as window_start, t.org_id, t.service,
            t.window_date::varchar as window_date
     from _speed_touched as t
     where not exists (select 1 from _speed_windows_out as w where w.window_size = t.window_size
                       and w.window_start = t.window_start and w.org_id = t.org_id and w.service = t.service)`,
  );
  try {
    const cl = await client(config);
    const now = new Date();
    const windowParams = rows.map((r) => [
      String(r.org_id),
      String(r.window_size),
      types.LocalDate.fromString(String(r.window_date)),
      new Date(String(r.window_start)),
      String(r.service),
      new Date(String(r.window_end)),
      types.BigDecimal.fromString(String(r.cost_usd)),
      types.BigDecimal.fromString(String(r.requests)),
      types.Long.fromString(String(r.events)),
      now,
    ]);
    await cassandra.concurrent.executeConcurrent(
      cl,
      `INSERT INTO ${ks}.speed_windows (org_id, window_size, window_date, window_start, service, window_end, cost_usd,
         requests, events, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      windowParams,
      { concurrencyLevel: 32 },
    );
    if (gone.length > 0) {
      await cassandra.concurrent.executeConcurrent(
        cl,
        `DELETE FROM ${ks}.speed_windows WHERE org_id = ? AND window_size = ? AND window_date = ? AND window_start = ?
           AND service = ?`,
        gone.map((r) => [
          String(r.org_id),
          String(r.window_size),
          types.LocalDate.fromString(String(r.window_date)),
          new Date(String(r.window_start)),
          String(r.service),
        ]),
        { concurrencyLevel: 32 },
      );
    }
    const alertParams = alerts.map((a) => [
      types.LocalDate.fromString(a.window_start.slice(0, 10)),
      new Date(a.window_start),
      a.org_id,
      a.alert_id,
      new Date(a.window_end),
      types.BigDecimal.fromString(a.cost_usd),
      types.BigDecimal.fromString(a.threshold_usd),
      a.raised_by,
      new Date(a.raised_at),
    ]);
    if (alertParams.length > 0) {
      await cassandra.concurrent.executeConcurrent(
        cl,
        `INSERT INTO ${ks}.speed_alerts (alert_date, window_start, org_id, alert_id, window_end, cost_usd, threshold_usd,
           raised_by, raised_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        alertParams,
        { concurrencyLevel: 8 },
      );
    }
    return windowParams.length + gone.length + alertParams.length;
  } catch (e) {
    const err = describeError(e, config.cassandra);
    if (err instanceof CassandraRejected) throw ApplicationFailure.nonRetryable(err.message, 'ServingRejected');
    throw err;
  }
}

/** Reads one org's windows of one size for one day from Cassandra (the serving copy of `cpa speed`). */
export async function readSpeedServing(
  config: Config,
  q: { org: string; window: string; day: string },
): Promise<Array<Record<string, string | number>>> {
  const cl = await client(config);
  const rs = await cl.execute(
    `SELECT window_start, window_end, service, cost_usd, requests, events FROM ${config.cassandra!.keyspace}.speed_windows
     WHERE org_id = ? AND window_size = ? AND window_date = ?`,
    [q.org, q.window, types.LocalDate.fromString(q.day)],
    { prepare: true },
  );
  return rs.rows.map((r) => ({
    window_start: (r.get('window_start') as Date).toISOString(),
    window_end: (r.get('window_end') as Date).toISOString(),
    service: String(r.get('service')),
    cost_usd: String(r.get('cost_usd')),
    requests: String(r.get('requests')),
    events: Number(r.get('events')),
  }));
}

/** Closes the process's client (CLI commands and tests). */
export async function closeSpeedServing(config: Config): Promise<void> {
  const p = clients.get(config);
  clients.delete(config);
  if (p) await (await p.catch(() => undefined))?.shutdown();
}
