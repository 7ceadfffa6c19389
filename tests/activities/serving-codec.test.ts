import cassandra from 'cassandra-driver';
import { DuckDBInstance } from '@duckdb/node-api';
import { ApplicationFailure } from '@temporalio/common';
import { loadConfig } from '../../config/env';
import { createTableCql, migrations, replicationLiteral, servingTable, SERVING_TABLES } from '../../config/serving';
import { CassandraUnavailable, describeError } from '../../lake/cassandra';
import { NotBuiltYet } from '../../lake/lakehouse';
import {
  canonicalRow,
  decimalText,
  decimalUnits,
  encodeDecimal,
  Digest,
  formatUnits,
  keyOf,
  normalizeDecimal,
  partitionsToLoad,
  toCqlParams,
  varintBytes,
  varintValue,
} from '../../lake/serving-codec';
import { checkServingTables, loadServing, ReconciliationMismatch, toFailure } from '../../activities/serving';
import { runQuery, ticketDays } from '../../serving/queries';
import type { QuerySource } from '../../serving/queries';

const { types, errors } = cassandra;

// Loading DuckDB's native binding (via the activity module) starts its ref reaper; an instance's close stops it.
afterAll(async () => (await DuckDBInstance.create(':memory:')).closeSync());

/** Pure parts of the serving layer: row mapping, canonical form and digest, load scope, DDL, error classes, queries. */
describe('serving codec', () => {
  const usage = servingTable('finops_daily_usage');
  const goldRow = {
    org_id: 'org_a',
    usage_date: '2025-08-31',
    service: 'compute',
    total_cost_usd: '8.667400',
    total_requests: '388.000000',
    cpu_hours: '0.000000',
    storage_gb_hours: '-0.004000',
    genai_tokens: '9007199254740993',
    carbon_kg: null,
    event_count: '3',
    avg_cost_per_request: 0.022339,
    anomaly_event_count: '0',
  };

  it('normalises decimals to the column scale without rounding anything away', () => {
    expect(normalizeDecimal('8.6674', 6)).toBe('8.667400');
    expect(normalizeDecimal('-0.004', 6)).toBe('-0.004000');
    expect(normalizeDecimal('0', 6)).toBe('0.000000');
    expect(normalizeDecimal('-0.000000', 6)).toBe('0.000000');
    expect(normalizeDecimal('007.5', 6)).toBe('7.500000');
    expect(normalizeDecimal('12.3456789', 6)).toBe('12.3456789');
    expect(normalizeDecimal('5', 0)).toBe('5');
    expect(() => normalizeDecimal('1e3', 6)).toThrow(/not a decimal/);
    expect(() => normalizeDecimal('', 6)).toThrow(/not a decimal/);
  });

  it('sums decimals exactly', () => {
    const units = decimalUnits('0.100000', 6) + decimalUnits('0.2', 6) + decimalUnits('-0.000001', 6);
    expect(formatUnits(units, 6)).toBe('0.299999');
    expect(formatUnits(-5n, 6)).toBe('-0.000005');
  });

  it('maps a gold row to exact CQL wire values (decimal, bigint beyond 2^53), LocalDate, NULL or unset', () => {
    const p = toCqlParams(usage, goldRow);
    const col = (n: string) => p[usage.columns.findIndex((c) => c.name === n)];
    expect(types.BigDecimal.fromBuffer(col('total_cost_usd') as Buffer).toString()).toBe('8.667400');
    expect(types.BigDecimal.fromBuffer(col('storage_gb_hours') as Buffer).toString()).toBe('-0.004000');
    expect((col('genai_tokens') as Buffer).readBigInt64BE(0)).toBe(9007199254740993n);
    expect(col('usage_date')).toBeInstanceOf(types.LocalDate);
    expect(col('carbon_kg')).toBeNull();
    expect(col('avg_cost_per_request')).toBe(0.022339);
    expect(toCqlParams(usage, goldRow, 'unset')[usage.columns.findIndex((c) => c.name === 'carbon_kg')]).toBe(
      types.unset,
    );
  });

  it('encodes varints and decimals exactly as the driver does', () => {
    for (const v of [
      '0',
      '1',
      '-1',
      '127',
      '128',
      '-128',
      '-129',
      '255',
      '256',
      '-32768',
      '123456789012345678901234567890',
    ]) {
      expect(varintValue(varintBytes(BigInt(v)))).toBe(BigInt(v));
      expect(varintBytes(BigInt(v))).toEqual(types.Integer.toBuffer(types.Integer.fromString(v)));
    }
    for (const d of ['0.000000', '-0.000001', '340.525900', '-12345678901.123456', '0.262631000']) {
      const scale = d.split('.')[1].length;
      expect(encodeDecimal(d, scale)).toEqual(types.BigDecimal.toBuffer(types.BigDecimal.fromString(d)));
      expect(decimalText(types.BigDecimal.fromString(d), scale)).toBe(d);
    }
  });

  it('gives a row the same canonical form whether read from gold or back from Cassandra', () => {
    const params = toCqlParams(usage, goldRow);
    // What the driver hands back on a SELECT: BigDecimal, Long, LocalDate (read as text), numbers, strings.
    const readBack = Object.fromEntries(
      usage.columns.map((c, i) => {
        const v = params[i];
        if (v === null) return [c.name, null];
        if (c.type === 'decimal') return [c.name, types.BigDecimal.fromBuffer(v as Buffer)];
        if (c.type === 'bigint') return [c.name, types.Long.fromString((v as Buffer).readBigInt64BE(0).toString())];
        return [c.name, v instanceof types.LocalDate ? v.toString() : v];
      }),
    );
    expect(canonicalRow(usage, readBack)).toBe(canonicalRow(usage, goldRow));
    expect(keyOf(usage, readBack)).toBe('org_a\u001f2025-08-31\u001fcompute');
  });

  it('digests are order-independent and catch a changed value, a missing row and a duplicate', () => {
    const other = { ...goldRow, service: 'storage', total_cost_usd: '1.000000' };
    const a = new Digest(usage);
    a.add(goldRow);
    a.add(other);
    const b = new Digest(usage);
    b.add(other);
    b.add(goldRow);
    expect(a.equals(b)).toBe(true);
    expect(a.figures()).toEqual({ rows: 2, checksum: b.checksum, sum: '9.667400' });

    const changed = new Digest(usage);
    changed.add(goldRow);
    changed.add({ ...other, total_cost_usd: '1.000001' });
    expect(changed.equals(a)).toBe(false);

    const dup = new Digest(usage);
    dup.add(goldRow);
    dup.add(goldRow);
    expect(dup.equals(a)).toBe(false);
  });

  it('loads the changed partitions plus any whose gold hash moved since the last load, and removed ones', () => {
    const manifest = {
      '2025-08-30': { hash: 'h1', rows: 5 },
      '2025-08-31': { hash: 'h2', rows: 6 },
      '2025-09-01': { hash: 'h3', rows: 1 },
    };
    const loaded = { '2025-08-29': '4:h0', '2025-08-30': '5:h1', '2025-08-31': '6:old' };
    expect(partitionsToLoad(['2025-08-30'], manifest, loaded)).toEqual([
      '2025-08-29',
      '2025-08-30',
      '2025-08-31',
      '2025-09-01',
    ]);
    expect(
      partitionsToLoad([], manifest, { '2025-08-30': '5:h1', '2025-08-31': '6:h2', '2025-09-01': '1:h3' }),
    ).toEqual([]);
  });
});

describe('serving schema', () => {
  it('declares query-first keys, compaction and no TTL', () => {
    const ddl = createTableCql('cloud_analytics', servingTable('finops_daily_usage'));
    expect(ddl).toContain('CREATE TABLE IF NOT EXISTS cloud_analytics.finops_daily_usage');
    expect(ddl).toContain('PRIMARY KEY ((org_id), usage_date, service)');
    expect(ddl).toContain("'class': 'LeveledCompactionStrategy'");
    expect(ddl).toContain('default_time_to_live = 0');
    expect(ddl).toMatch(/total_cost_usd decimal/);
    expect(createTableCql('ks', servingTable('org_service_cost_summary'))).toContain(
      'PRIMARY KEY ((org_id), summary_date, rank_14d)',
    );
    expect(createTableCql('ks', servingTable('support_tickets_summary'))).toContain(
      'PRIMARY KEY ((scope), ticket_date, severity)',
    );
    expect(createTableCql('ks', servingTable('revenue_monthly'))).toContain("'class': 'SizeTieredCompactionStrategy'");
    for (const m of migrations('ks'))
      for (const s of m.statements) expect(s).toMatch(/^CREATE TABLE IF NOT EXISTS ks\./);
    // Every table's scope column is its first clustering column (IN slices per partition).
    for (const t of SERVING_TABLES) if (t.scopeColumn) expect(t.clustering[0]).toBe(t.scopeColumn);
  });

  it('accepts replication maps and refuses anything else', () => {
    expect(replicationLiteral("{'class': 'SimpleStrategy', 'replication_factor': 1}")).toBe(
      "{'class': 'SimpleStrategy', 'replication_factor': 1}",
    );
    expect(replicationLiteral("{'class':'NetworkTopologyStrategy','dc1':3,'dc2':'2'}")).toContain(
      'NetworkTopologyStrategy',
    );
    expect(() => replicationLiteral("{'class': 'SimpleStrategy'}; DROP KEYSPACE x")).toThrow(/CQL map/);
    expect(() => createTableCql('bad-name', servingTable('revenue_monthly'))).toThrow(/identifier/);
  });
});

describe('serving failures', () => {
  it('fails non-retryably when asked to serve without a Cassandra config', async () => {
    const config = loadConfig({ CPA_LAKE_ROOT: '/tmp/unused' });
    const err = await loadServing(
      { config, db: {} as never },
      { lake: '/tmp/unused', landing: '/tmp/unused', runId: 'r1' },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
    expect((err as ApplicationFailure).type).toBe('ServingNotConfigured');
  });

  it('classifies driver errors: unreachable = retryable, refused statement and mismatch = non-retryable', () => {
    const unreachable = describeError(
      new errors.NoHostAvailableError({ '127.0.0.1:1': new Error('connect ECONNREFUSED') }),
    );
    expect(unreachable).toBeInstanceOf(CassandraUnavailable);
    expect(unreachable.message).toBe('Cassandra unreachable: 127.0.0.1:1: connect ECONNREFUSED');
    expect(toFailure(unreachable, 'x')).toBe(unreachable);
    const refused = toFailure(
      new errors.ResponseError(types.responseErrorCodes.syntaxError, 'line 1:0 no viable alternative'),
      'x',
    );
    expect(refused).toMatchObject({ nonRetryable: true, type: 'CassandraRejected' });
    const figures = { rows: 1, checksum: 'c', sum: '1' };
    const table = { table: 't', matched: false, gold: figures, cassandra: { ...figures, rows: 2 } };
    const mismatch = toFailure(new ReconciliationMismatch('reconciliation failed: ks.t …', [table as never]), 'x');
    expect(mismatch).toMatchObject({ nonRetryable: true, type: 'ReconciliationFailed' });
    // Every table's figures travel with the failure: `cpa serving load` prints them from the workflow's failure.
    expect((mismatch as ApplicationFailure).details?.[0]).toMatchObject({ results: [table] });
    // A lake without the gold mart: a retry finds none either.
    expect(toFailure(new NotBuiltYet('table gold.x has not been built yet'), 'x')).toMatchObject({
      nonRetryable: true,
      type: 'GoldNotBuilt',
      message: 'table gold.x has not been built yet',
    });
    // An unknown table name is bad input: retrying asks for the same name.
    expect(() => checkServingTables(['finops_daily_usage', 'nope'])).toThrow(
      expect.objectContaining({ nonRetryable: true, type: 'ContractViolation' }) as Error,
    );
  });
});

describe('queries (shared logic)', () => {
  /** A backend whose fetch records (query, params) and answers from `rows` (default: nothing). */
  function fakeSource(latest: string): QuerySource & {
    calls: Array<[string, unknown]>;
    rows: Partial<Record<string, Array<Record<string, unknown>>>>;
  } {
    const calls: Array<[string, unknown]> = [];
    const rows: Partial<Record<string, Array<Record<string, unknown>>>> = {};
    return {
      backend: 'duckdb',
      calls,
      rows,
      latestDate: async () => latest,
      fetch: (async (q: string, p: unknown) => {
        calls.push([q, p]);
        return rows[q] ?? [];
      }) as QuerySource['fetch'],
      orgs: async () => [],
      close: async () => undefined,
    };
  }

  it('defaults as_of to the latest date in the data and derives the windows from it', async () => {
    const src = fakeSource('2025-08-31');
    expect((await runQuery(src, 'q1', { org: 'org_a' })).params).toEqual({
      org: 'org_a',
      asOf: '2025-08-31',
      from: '2025-08-02',
      to: '2025-08-31',
      top: null,
    });
    expect((await runQuery(src, 'q2', { org: 'org_a' })).params).toMatchObject({ asOf: '2025-08-31', top: 5 });
    expect((await runQuery(src, 'q3', {})).params).toMatchObject({ org: null, from: '2025-08-02', to: '2025-08-31' });
    expect((await runQuery(src, 'q4', { org: 'org_a' })).params).toMatchObject({
      from: '2024-09-01',
      to: '2025-08-01',
    });
    expect((await runQuery(src, 'q5', { org: 'org_a', asOf: '2025-07-31', from: '2025-07-30' })).params).toMatchObject({
      from: '2025-07-30',
      to: '2025-07-31',
    });
    await expect(runQuery(src, 'q1', {})).rejects.toThrow('q1 needs --org');
    await expect(runQuery(src, 'q1', { org: "x' or 1=1" })).rejects.toThrow('--org must be');
    await expect(runQuery(src, 'q1', { org: 'org_a', from: '2025-09-01' })).rejects.toThrow('is after');
  });

  it('q3 zero-fills the window and computes rates from counts', () => {
    const rows = ticketDays(
      [
        {
          ticket_date: '2025-08-30',
          severity: 'critical',
          total_tickets: '3',
          open_tickets: '1',
          sla_breach_count: '1',
        },
        { ticket_date: '2025-08-30', severity: 'low', total_tickets: 4, open_tickets: 0, sla_breach_count: 0 },
      ],
      '2025-08-29',
      '2025-08-30',
    );
    expect(rows).toEqual([
      {
        ticket_date: '2025-08-29',
        critical_tickets: 0,
        critical_open: 0,
        critical_sla_breaches: 0,
        critical_sla_breach_rate: null,
        total_tickets: 0,
        sla_breaches: 0,
        sla_breach_rate: null,
      },
      {
        ticket_date: '2025-08-30',
        critical_tickets: 3,
        critical_open: 1,
        critical_sla_breaches: 1,
        critical_sla_breach_rate: 0.333333,
        total_tickets: 7,
        sla_breaches: 1,
        sla_breach_rate: 0.142857,
      },
    ]);
  });

  it('q6–q9: defaults (both models, top 10, the latest month), q8 keeps idle and stopped-but-billed, q9 drops match', async () => {
    const src = fakeSource('2025-08-01');
    expect((await runQuery(src, 'q7', {})).params).toMatchObject({ model: null, top: 10, asOf: null });
    expect(src.calls.filter(([n]) => n === 'q7').map(([, p]) => p)).toEqual([
      { model: 'first_touch', top: 10 },
      { model: 'linear', top: 10 },
    ]);
    await expect(runQuery(src, 'q7', { model: 'last_touch' })).rejects.toThrow('--model must be one of');
    expect((await runQuery(src, 'q9', {})).params).toMatchObject({ month: '2025-08-01' });
    expect((await runQuery(src, 'q9', { month: '2025-07' })).params).toMatchObject({ month: '2025-07-01' });
    expect((await runQuery(src, 'q9', { asOf: '2025-06-15' })).params).toMatchObject({ month: '2025-06-01' });
    await expect(runQuery(src, 'q6', {})).rejects.toThrow('q6 needs --org');
    await expect(runQuery(src, 'q8', {})).rejects.toThrow('q8 needs --org');

    const res = (id: string, cls: string, billed: boolean) => ({
      resource_id: id,
      utilization_class: cls,
      stopped_but_billed: billed,
      idle_days: '3',
      cost_30d: '1.5',
      as_of: '2025-08-31',
    });
    src.rows.q8 = [
      res('r3', 'idle', false),
      res('r1', 'active', true),
      res('r2', 'active', false),
      res('r4', 'unused', false),
    ];
    const q8 = await runQuery(src, 'q8', { org: 'org_a' });
    expect(q8.rows.map((r) => [r.resource_id, r.utilization_class, r.stopped_but_billed, r.cost_30d])).toEqual([
      ['r1', 'active', true, '1.500000'],
      ['r3', 'idle', false, '1.500000'],
    ]);
    expect(q8.params.asOf).toBe('2025-08-31');
    src.rows.q9 = [
      { status: 'under_billed', org_id: 'b', billing_month: '2025-08-01', month_covered: true },
      { status: 'match', org_id: 'a', billing_month: '2025-08-01', month_covered: true },
      { status: 'no_invoice', org_id: 'c', billing_month: '2025-08-01', month_covered: false },
    ];
    const q9 = await runQuery(src, 'q9', {});
    expect(q9.rows.map((r) => [r.status, r.org_id, r.month_covered])).toEqual([
      ['no_invoice', 'c', false],
      ['under_billed', 'b', true],
    ]);
  });
});
