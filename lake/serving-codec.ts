import crypto from 'node:crypto';
import cassandra from 'cassandra-driver';
import type { ServingColumn, ServingTable } from '../config/serving';
import { decimalUnits, formatUnits, normalizeDecimal, parseDecimal } from './decimal';

export { decimalUnits, formatUnits, normalizeDecimal, parseDecimal };

/**
 * Row mapping between gold (DuckDB JSON row objects: decimals and bigints as strings, dates as YYYY-MM-DD) and
 * Cassandra (decimal, bigint, date), plus the canonical text form both sides are hashed in for reconciliation.
 * Decimals and bigints are encoded to CQL's wire format here (exact, through BigInt): the driver passes Buffers
 * through, and its own BigDecimal string parsing dominated the load's CPU time. Pure functions, unit-tested in
 * tests/activities/serving-codec.test.ts.
 */

const { types } = cassandra;

const NULL_TOKEN = '\\N';

/** Minimal big-endian two's-complement bytes of an integer (CQL varint). */
export function varintBytes(v: bigint): Buffer {
  if (v >= 0n) {
    let hex = v.toString(16);
    if (hex.length % 2 === 1) hex = `0${hex}`;
    if (parseInt(hex[0], 16) >= 8) hex = `00${hex}`;
    return Buffer.from(hex, 'hex');
  }
  let n = 1;
  while (-(1n << BigInt(8 * n - 1)) > v) n += 1;
  return Buffer.from(((1n << BigInt(8 * n)) + v).toString(16).padStart(2 * n, '0'), 'hex');
}

export function varintValue(b: Buffer): bigint {
  if (b.length === 0) return 0n;
  const v = BigInt(`0x${b.toString('hex')}`);
  return b[0] & 0x80 ? v - (1n << BigInt(b.length * 8)) : v;
}

/** CQL decimal wire format: int32 scale, then the unscaled value as a varint. */
export function encodeDecimal(raw: string, scale: number): Buffer {
  const d = parseDecimal(raw, scale);
  const head = Buffer.alloc(4);
  head.writeInt32BE(d.scale, 0);
  return Buffer.concat([head, varintBytes(d.units)]);
}

/** A driver BigDecimal (or its wire bytes) as exact decimal text, without the driver's slow string conversion. */
export function decimalText(v: unknown, scale: number): string {
  const buf = v instanceof Buffer ? v : v instanceof types.BigDecimal ? types.BigDecimal.toBuffer(v) : undefined;
  if (!buf) return normalizeDecimal(String(v), scale);
  const s = buf.readInt32BE(0);
  const units = varintValue(buf.subarray(4));
  const text = s >= 0 ? formatUnits(units, s) : (units * 10n ** BigInt(-s)).toString();
  return normalizeDecimal(text, scale);
}

function bigintText(v: unknown): string {
  if (v instanceof types.Long) return BigInt.asIntN(64, (BigInt(v.high) << 32n) | BigInt(v.low >>> 0)).toString();
  if (v instanceof Buffer) return v.readBigInt64BE(0).toString();
  return BigInt(String(v)).toString();
}

/** The canonical text of one value, whichever side it was read from. */
export function canonicalValue(c: ServingColumn, v: unknown): string {
  if (v === null || v === undefined) return NULL_TOKEN;
  switch (c.type) {
    case 'decimal':
      return decimalText(v, c.scale ?? 0);
    case 'bigint':
      return bigintText(v);
    case 'int':
    case 'double':
      return String(Number(v));
    case 'boolean':
      return String(v === true || v === 'true');
    case 'date':
      return String(v).slice(0, 10);
    default:
      return String(v);
  }
}

/** One value as the driver binds it: decimal and bigint as exact wire bytes, LocalDate, number or text. */
export function toCqlValue(c: ServingColumn, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  switch (c.type) {
    case 'decimal':
      return encodeDecimal(String(v), c.scale ?? 0);
    case 'bigint': {
      const b = Buffer.alloc(8);
      b.writeBigInt64BE(BigInt(String(v)), 0);
      return b;
    }
    case 'int':
    case 'double':
      return Number(v);
    case 'boolean':
      return v === true || v === 'true';
    case 'date':
      return types.LocalDate.fromString(String(v).slice(0, 10));
    default:
      return String(v);
  }
}

/** Parameters for the table's INSERT (columns in registry order); NULLs as `unset` when nothing can be overwritten. */
export function toCqlParams(
  t: ServingTable,
  row: Record<string, unknown>,
  nullAs: 'null' | 'unset' = 'null',
): unknown[] {
  return t.columns.map((c) => {
    const v = row[c.name];
    if (v === null || v === undefined) return nullAs === 'unset' ? types.unset : null;
    return toCqlValue(c, v);
  });
}

/** Primary-key text of a row (either side), used to find stale Cassandra rows. */
export function keyOf(t: ServingTable, row: Record<string, unknown>): string {
  return [...t.partitionKey, ...t.clustering]
    .map((k) =>
      canonicalValue(
        t.columns.find((c) => c.name === k)!,
        row[k],
      ),
    )
    .join('\u001f');
}

export function canonicalRow(t: ServingTable, row: Record<string, unknown>): string {
  return t.columns.map((c) => canonicalValue(c, row[c.name])).join('\u001f');
}

const MASK64 = (1n << 64n) - 1n;

/**
 * Order-independent digest of a set of rows: count, exact sum of the table's sum column, and the sum (mod 2^64) of
 * the first 64 bits of each canonical row's SHA-256. A changed value, a missing row or a duplicate all change it.
 */
export class Digest {
  count = 0;
  private hash = 0n;
  private sum = 0n;
  private readonly sumCol: ServingColumn;

  constructor(private readonly table: ServingTable) {
    this.sumCol = table.columns.find((c) => c.name === table.sumColumn)!;
  }

  add(row: Record<string, unknown>): void {
    this.count += 1;
    const h = crypto.hash('sha256', canonicalRow(this.table, row), 'buffer');
    this.hash = (this.hash + h.readBigUInt64BE(0)) & MASK64;
    const v = row[this.sumCol.name];
    if (v !== null && v !== undefined) {
      const text = canonicalValue(this.sumCol, v);
      this.sum += this.sumCol.type === 'decimal' ? decimalUnits(text, this.sumCol.scale ?? 0) : BigInt(text);
    }
  }

  get checksum(): string {
    return this.hash.toString(16).padStart(16, '0');
  }

  get sumText(): string {
    return this.sumCol.type === 'decimal' ? formatUnits(this.sum, this.sumCol.scale ?? 0) : this.sum.toString();
  }

  figures(): { rows: number; checksum: string; sum: string } {
    return { rows: this.count, checksum: this.checksum, sum: this.sumText };
  }

  equals(other: Digest): boolean {
    return this.count === other.count && this.hash === other.hash && this.sum === other.sum;
  }
}

/**
 * Which gold partitions need (re)loading: those the run reported as changed, plus any whose manifest hash differs
 * from the hash recorded at the last reconciled load (covers a load that failed after gold was published).
 */
export function partitionsToLoad(
  changed: string[] | undefined,
  manifest: Record<string, { hash: string; rows: number }>,
  loaded: Record<string, string> | undefined,
): string[] {
  const out = new Set(changed ?? []);
  const current = Object.fromEntries(Object.entries(manifest).map(([p, e]) => [p, `${e.rows}:${e.hash}`]));
  for (const [p, h] of Object.entries(current)) if (loaded?.[p] !== h) out.add(p);
  for (const p of Object.keys(loaded ?? {})) if (!(p in current)) out.add(p);
  return [...out].sort();
}

/** The per-partition fingerprints recorded in serving_state after a successful load. */
export function manifestFingerprint(manifest: Record<string, { hash: string; rows: number }>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(manifest)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([p, e]) => [p, `${e.rows}:${e.hash}`]),
  );
}
