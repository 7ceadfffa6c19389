/**
 * Scale factor → sizes. A pure function so the CLI can print what a scale means before generating it.
 */
import { monthOf, parseDay } from './format';
import { PER_ORG, REFERENCE, WINDOWS } from './profile';

export interface GeneratorPlan {
  readonly scale: number;
  readonly seed: number;
  readonly startDay: number;
  readonly days: number;
  readonly orgs: number;
  readonly users: number;
  readonly resources: number;
  readonly tickets: number;
  readonly touches: number;
  readonly surveys: number;
  /** Lines in all events files together, malformed lines and duplicates included. */
  readonly events: number;
  readonly files: number;
  /** `YYYY-MM-01` of each billing month. */
  readonly billingMonths: readonly string[];
}

/** Events files: 120·S up to S = 10 (like the reference), then files of ≈ 3,600 events. */
export function fileCount(scale: number, events: number): number {
  if (scale <= 10) return Math.max(1, Math.min(events, Math.round(REFERENCE.files * scale)));
  return Math.ceil(events / REFERENCE.eventsPerLargeFile);
}

function billingMonths(startDay: number, days: number): string[] {
  const months: string[] = [];
  let day = startDay + WINDOWS.billingFromStart;
  const lastDay = startDay + days - 1;
  while (day <= lastDay) {
    const { label, nextMonthDay } = monthOf(day);
    months.push(label);
    day = nextMonthDay;
  }
  return months;
}

export function makePlan(scale: number, seed: number, startDate: string, days: number): GeneratorPlan {
  const orgs = Math.max(3, Math.round(REFERENCE.orgs * scale));
  const events = Math.max(1, Math.round(REFERENCE.events * scale));
  const startDay = parseDay(startDate);
  return {
    scale,
    seed,
    startDay,
    days,
    orgs,
    users: orgs * PER_ORG.users,
    resources: orgs * PER_ORG.resources,
    tickets: Math.round(orgs * PER_ORG.tickets),
    touches: Math.round(orgs * PER_ORG.touches),
    surveys: Math.round(orgs * PER_ORG.surveys),
    events,
    files: fileCount(scale, events),
    billingMonths: billingMonths(startDay, days),
  };
}

/** `events_part_0007.jsonl`: 4 digits, more only when there are more than 10,000 files. */
export function eventFileName(index: number, files: number): string {
  const width = Math.max(4, String(files - 1).length);
  return `events_part_${String(index).padStart(width, '0')}.jsonl`;
}
