/**
 * Value formatting that matches the reference files byte for byte.
 *
 * The reference was written by Python (pandas `to_csv`, `json.dumps`), so numbers use Python's float repr:
 * `238.0` (never `238`), `8.9e-05` (exponent below 1e-4, two-digit exponent) — JavaScript's `String(x)` differs
 * on both. Booleans are `True`/`False`; CSV quoting is minimal; lines end with `\n`.
 */

const MS_PER_DAY = 86_400_000;

/** Python `repr(float)`. Only finite values below 1e16 occur in generated data. */
export function pyFloat(x: number): string {
  if (x === 0) return '0.0'; // also folds -0, which rounding tiny negatives can produce
  if (Number.isInteger(x)) return `${x}.0`;
  const abs = Math.abs(x);
  if (abs < 1e-4) return x.toExponential().replace(/e([+-])(\d)$/, 'e$10$2');
  return String(x);
}

const POWERS_OF_TEN = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000];

/**
 * `pyFloat` for a value already rounded to `dp` ≤ 6 decimals, by integer arithmetic: twice as fast as the
 * shortest-round-trip conversion, and the events loop formats three numbers per event.
 */
export function pyFixed(x: number, dp: number): string {
  const scale = POWERS_OF_TEN[dp] as number;
  let units = Math.round(x * scale);
  if (units === 0) return '0.0';
  const sign = units < 0 ? '-' : '';
  if (units < 0) units = -units;
  const whole = Math.floor(units / scale);
  let fraction = units - whole * scale;
  if (fraction === 0) return `${sign}${whole}.0`;
  if (units * 10_000 < scale) return pyFloat(x); // below 1e-4 Python switches to exponent notation
  let digits = dp;
  while (fraction % 10 === 0) {
    fraction /= 10;
    digits--;
  }
  return `${sign}${whole}.${String(fraction).padStart(digits, '0')}`;
}

/** Rounds half away from zero to `dp` decimals (the shortest repr then prints at most `dp` decimals). */
export function round(x: number, dp: number): number {
  const f = POWERS_OF_TEN[dp] ?? 10 ** dp; // table lookup: `**` showed up in the events profile
  return x < 0 ? -Math.round(-x * f) / f : Math.round(x * f) / f;
}

export function pyBool(b: boolean): 'True' | 'False' {
  return b ? 'True' : 'False';
}

/** Minimal CSV quoting, as Python's csv module does it. */
export function csvField(value: string): string {
  return /[",\n\r]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

export function csvLine(fields: readonly string[]): string {
  return fields.map(csvField).join(',') + '\n';
}

/** Days since 1970-01-01 of a `YYYY-MM-DD` date. */
export function parseDay(isoDate: string): number {
  const ms = Date.parse(`${isoDate}T00:00:00Z`);
  if (!Number.isFinite(ms) || new Date(ms).toISOString().slice(0, 10) !== isoDate) {
    throw new Error(`invalid date '${isoDate}', expected YYYY-MM-DD`);
  }
  return ms / MS_PER_DAY;
}

/** `YYYY-MM-DD` of an epoch day. */
export function formatDay(epochDay: number): string {
  return new Date(epochDay * MS_PER_DAY).toISOString().slice(0, 10);
}

/** `YYYY-MM-01` of the month containing the epoch day, and the epoch day of the next month's first day. */
export function monthOf(epochDay: number): { label: string; nextMonthDay: number } {
  const d = new Date(epochDay * MS_PER_DAY);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth();
  return {
    label: `${y}-${String(m + 1).padStart(2, '0')}-01`,
    nextMonthDay: Date.UTC(y, m + 1, 1) / MS_PER_DAY,
  };
}

/**
 * Formats minute offsets from a start day as `YYYY-MM-DDTHH:MM:00Z` without a Date per event: the event loop
 * formats millions of timestamps, so day strings and `HH:MM` strings are precomputed.
 */
export class MinuteClock {
  private readonly hhmm: string[];
  private readonly days: string[] = [];

  constructor(private readonly startDay: number) {
    this.hhmm = Array.from(
      { length: 1440 },
      (_, m) => `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`,
    );
  }

  /** @param minute minutes since the start day, ≥ 0 */
  format(minute: number): string {
    const dayOffset = Math.floor(minute / 1440);
    let day = this.days[dayOffset];
    if (day === undefined) {
      day = formatDay(this.startDay + dayOffset);
      this.days[dayOffset] = day;
    }
    return `${day}T${this.hhmm[minute - dayOffset * 1440] as string}:00Z`;
  }
}
