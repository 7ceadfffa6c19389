/**
 * Exact decimal arithmetic on decimal text (DuckDB prints DECIMAL values as text; JavaScript numbers would round):
 * the one decimal helper of the code base, used by the serving codec, the speed layer's drift report and anything
 * else that sums or compares money. Pure.
 */

const FIXED = /^-?(0|[1-9]\d*)\.\d+$/;
const NEG_ZERO = /^-0\.0*$/;

/**
 * Canonical decimal text at a column's scale: "8.6674" and "8.667400" are the same value at scale 6. Digits beyond
 * the scale are kept (never rounded away), so a value that lost or gained precision still compares unequal.
 */
export function normalizeDecimal(raw: string, scale: number): string {
  const s = raw.trim();
  // Fast path: DuckDB prints DECIMAL(p, scale) exactly like this already.
  if (scale > 0 && s.length - s.indexOf('.') - 1 === scale && FIXED.test(s) && !NEG_ZERO.test(s)) return s;
  const m = /^([+-]?)(\d*)(?:\.(\d*))?$/.exec(s);
  if (!m || (m[2] === '' && (m[3] ?? '') === '')) throw new Error(`not a decimal: ${JSON.stringify(raw)}`);
  const int = m[2].replace(/^0+(?=\d)/, '') || '0';
  let frac = (m[3] ?? '').replace(/0+$/, '');
  if (frac.length < scale) frac = frac.padEnd(scale, '0');
  const zero = /^0*$/.test(int) && /^0*$/.test(frac);
  const sign = m[1] === '-' && !zero ? '-' : '';
  return frac.length > 0 ? `${sign}${int}.${frac}` : `${sign}${int}`;
}

/** A decimal string as an exact unscaled integer and its scale (at least `scale`; extra digits are kept). */
export function parseDecimal(raw: string, scale: number): { units: bigint; scale: number } {
  const norm = normalizeDecimal(raw, scale);
  const [int, frac = ''] = norm.replace('-', '').split('.');
  const units = BigInt(int + frac);
  return { units: norm.startsWith('-') ? -units : units, scale: frac.length };
}

/** A decimal string as an integer count of 10^-scale units (exact sums; digits beyond the scale are dropped). */
export function decimalUnits(raw: string, scale: number): bigint {
  const d = parseDecimal(raw, scale);
  return d.scale === scale ? d.units : d.units / 10n ** BigInt(d.scale - scale);
}

/** An integer count of 10^-scale units as decimal text with exactly `scale` places. */
export function formatUnits(units: bigint, scale: number): string {
  const neg = units < 0n;
  const digits = (neg ? -units : units).toString().padStart(scale + 1, '0');
  const out = scale > 0 ? `${digits.slice(0, -scale)}.${digits.slice(-scale)}` : digits;
  return neg ? `-${out}` : out;
}

/** A floating-point figure (a rate, a ratio) rounded to 6 places for display and JSON; not for money. */
export const round6 = (x: number): number => Math.round(x * 1e6) / 1e6;
