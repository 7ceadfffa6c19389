/**
 * Calendar arithmetic for logical dates (YYYY-MM-DD). Pure and deterministic, so workflow code and the CLI share it.
 * Time zones go through Intl (ICU), which the workflow sandbox provides.
 */

const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/;

/** A real calendar date YYYY-MM-DD (2025-02-30 and 2025-13-01 are not). */
export function isIsoDate(s: string): boolean {
  if (!ISO_DATE.test(s)) return false;
  const d = new Date(`${s}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === s;
}

/** The calendar date of `instant` in `timeZone` (IANA name). */
export function localDate(instant: Date, timeZone: string): string {
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
  }).formatToParts(instant);
  const get = (t: string): string => parts.find((p) => p.type === t)!.value;
  return `${get('year')}-${get('month')}-${get('day')}`;
}

export function addDays(date: string, days: number): string {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

/**
 * The logical date a scheduled run processes: the day before the local calendar date (in the schedule's time zone)
 * of its scheduled start. The 02:00 run of 2025-08-02 processes 2025-08-01, whatever UTC offset 02:00 has.
 */
export function scheduledLogicalDate(scheduledAt: Date, timeZone: string): string {
  return addDays(localDate(scheduledAt, timeZone), -1);
}

/** Every date from `from` to `to`, both included. */
export function dateRange(from: string, to: string): string[] {
  const out: string[] = [];
  for (let d = from; d <= to; d = addDays(d, 1)) out.push(d);
  return out;
}

/** Days in [from, to]; 0 when to < from. */
export function daysInRange(from: string, to: string): number {
  const ms = Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`);
  return ms < 0 ? 0 : Math.round(ms / 86_400_000) + 1;
}
