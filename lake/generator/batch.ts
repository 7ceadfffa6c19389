/**
 * The seven batch (CSV) sources. Each table has its own random stream, so changing one table's generator does
 * not change the others' rows. Column order and headers are the reference's (checked by the tests).
 */
import path from 'node:path';

import { csvLine, formatDay, pyBool, pyFloat, round } from './format';
import { IdMinter } from './ids';
import type { GeneratorPlan } from './plan';
import { Rng } from './prng';
import * as P from './profile';
import type { Region, Service } from './profile';
import {
  CSAT_OUT_OF_RANGE,
  CSV_QUIRK_RATES,
  ORG_NPS_OUT_OF_RANGE,
  quirkRowCount,
  SURVEY_NPS_OUT_OF_RANGE,
  type QuirkCounts,
} from './quirks';
import { BufferedFileWriter } from './writer';

export const CSV_HEADERS = {
  customers_orgs: [
    'org_id',
    'org_name',
    'industry',
    'hq_region',
    'plan_tier',
    'is_enterprise',
    'signup_date',
    'sales_rep',
    'lifecycle_stage',
    'marketing_source',
    'nps_score',
  ],
  users: ['user_id', 'org_id', 'email', 'role', 'active', 'created_at', 'last_login'],
  resources: ['resource_id', 'org_id', 'service', 'region', 'created_at', 'state', 'tags_json'],
  billing_monthly: [
    'invoice_id',
    'org_id',
    'month',
    'subtotal',
    'credits',
    'taxes',
    'currency',
    'exchange_rate_to_usd',
  ],
  support_tickets: ['ticket_id', 'org_id', 'category', 'severity', 'created_at', 'resolved_at', 'csat', 'sla_breached'],
  marketing_touches: ['touch_id', 'org_id', 'campaign', 'channel', 'timestamp', 'clicked', 'converted'],
  nps_surveys: ['org_id', 'survey_date', 'nps_score', 'comment'],
} as const;
export type CsvTable = keyof typeof CSV_HEADERS;

/** What the events generator needs from the dimensions. */
export interface ResourceRef {
  readonly id: string;
  readonly orgId: string;
  readonly service: Service;
  readonly region: Region;
}

export interface BatchSources {
  readonly orgIds: readonly string[];
  readonly resources: readonly ResourceRef[];
  readonly rows: Readonly<Record<CsvTable, number>>;
}

/** An inclusive range of epoch days, clamped so a short `days` option still gives a non-empty range. */
function dayRange(from: number, to: number): { from: number; to: number } {
  return { from, to: Math.max(from, to) };
}

function endDay(plan: GeneratorPlan): number {
  return plan.startDay + plan.days - 1;
}

function randomDay(rng: Rng, range: { from: number; to: number }): number {
  return rng.intBetween(range.from, range.to);
}

/** An NPS-scale score written like the reference (`-3.0`), clamped to the valid scale. */
function npsScore(rng: Rng, mean: number, sd: number): string {
  return pyFloat(Math.max(-100, Math.min(100, Math.round(mean + sd * rng.normal()))));
}

async function writeTable(dir: string, table: CsvTable, rows: Iterable<readonly string[]>): Promise<number> {
  const writer = BufferedFileWriter.open(path.join(dir, `${table}.csv`));
  await writer.write(csvLine(CSV_HEADERS[table]));
  let count = 0;
  for (const row of rows) {
    await writer.write(csvLine(row));
    count++;
  }
  await writer.close();
  return count;
}

/** Assigns disjoint random row sets to quirks: row index → quirk (lookups only, so Map order never matters). */
function assignRowQuirks<Q extends string>(
  rng: Rng,
  rows: number,
  quirks: ReadonlyArray<readonly [Q, number]>,
): Map<number, Q> {
  const total = quirks.reduce((sum, [, k]) => sum + k, 0);
  const indices = rng.sampleIndices(rows, total);
  const assigned = new Map<number, Q>();
  let next = 0;
  for (const [quirk, k] of quirks) {
    for (let i = 0; i < k && next < indices.length; i++) assigned.set(indices[next++] as number, quirk);
  }
  return assigned;
}

function* orgRows(plan: GeneratorPlan, orgIds: readonly string[], counts: QuirkCounts): Generator<string[]> {
  const rng = new Rng(plan.seed, 'table/customers_orgs');
  const n = plan.orgs;
  const quirks = assignRowQuirks(rng, n, [
    ['nps', quirkRowCount(n, CSV_QUIRK_RATES.orgs_nps_out_of_range)],
    ['duplicate', quirkRowCount(n, CSV_QUIRK_RATES.orgs_duplicate_key)],
  ]);
  const signup = dayRange(plan.startDay + P.WINDOWS.signup.fromStart, plan.startDay + P.WINDOWS.signup.toStart);
  // A re-sent org row (a CRM update) appears somewhere after the original; the first line wins in silver.
  const duplicatesAfter = new Map<number, string[][]>();
  for (let i = 0; i < n; i++) {
    const quirk = quirks.get(i);
    let nps = rng.chance(P.ORG_NPS.emptyRate) ? '' : npsScore(rng, P.ORG_NPS.mean, P.ORG_NPS.sd);
    if (quirk === 'nps') {
      nps = pyFloat(rng.pick(ORG_NPS_OUT_OF_RANGE));
      counts.orgs_nps_out_of_range++;
    }
    const row = [
      orgIds[i] as string,
      `${rng.pick(P.ORG_NAME_WORDS)} ${rng.pick(P.ORG_NAME_SUFFIXES)} ${i}`,
      rng.draw(P.INDUSTRIES),
      rng.draw(P.HQ_REGIONS),
      rng.draw(P.PLAN_TIERS),
      pyBool(rng.chance(P.ENTERPRISE_RATE)),
      formatDay(randomDay(rng, signup)),
      rng.draw(P.SALES_REPS),
      rng.draw(P.LIFECYCLE_STAGES),
      rng.draw(P.MARKETING_SOURCES),
      nps,
    ];
    if (quirk === 'duplicate') {
      const copy = [...row];
      copy[8] = rng.draw(P.LIFECYCLE_STAGES);
      const after = rng.intBetween(i, n - 1);
      duplicatesAfter.set(after, [...(duplicatesAfter.get(after) ?? []), copy]);
      counts.orgs_duplicate_key++;
    }
    yield row;
    // Rows queued after an earlier index are emitted once that index has been written.
    for (const dup of duplicatesAfter.get(i) ?? []) yield dup;
  }
}

function* userRows(plan: GeneratorPlan, orgIds: readonly string[], counts: QuirkCounts): Generator<string[]> {
  const rng = new Rng(plan.seed, 'table/users');
  const ids = new IdMinter('user_', 4, new Rng(plan.seed, 'ids/user'));
  const n = plan.users;
  const invalid = assignRowQuirks(rng, n, [['email', quirkRowCount(n, CSV_QUIRK_RATES.users_invalid_email)]]);
  const created = dayRange(plan.startDay + P.WINDOWS.userCreated.fromStart, endDay(plan) + P.WINDOWS.userCreated.toEnd);
  for (let i = 0; i < n; i++) {
    const userId = ids.mint(i);
    let email = `${userId}@example.com`;
    if (invalid.has(i)) {
      email = rng.pick([
        `${userId}@example`,
        `${userId}.example.com`,
        `${userId} @example.com`,
        `${userId}@@example.com`,
        '',
      ]);
      counts.users_invalid_email++;
    }
    const createdDay = randomDay(rng, created);
    const lastLogin = rng.chance(P.LAST_LOGIN_EMPTY_RATE) ? '' : formatDay(rng.intBetween(createdDay, endDay(plan)));
    yield [
      userId,
      rng.pick(orgIds),
      email,
      rng.draw(P.ROLES),
      pyBool(rng.chance(P.USER_ACTIVE_RATE)),
      formatDay(createdDay),
      lastLogin,
    ];
  }
}

/** Tag lists as Python prints them: `["env:prod", "pii:true"]`. */
function tagsJson(rng: Rng): string {
  if (rng.chance(P.TAGS_EMPTY_RATE)) return '';
  const count = rng.chance(0.6) ? 1 : rng.chance(0.75) ? 2 : 3;
  const tags = rng.shuffle([...P.RESOURCE_TAGS]).slice(0, count);
  return `[${tags.map((t) => `"${t}"`).join(', ')}]`;
}

function makeResources(plan: GeneratorPlan, orgIds: readonly string[]): { refs: ResourceRef[]; rows: string[][] } {
  const rng = new Rng(plan.seed, 'table/resources');
  const ids = new IdMinter('res_', 4, new Rng(plan.seed, 'ids/resource'));
  const created = dayRange(
    plan.startDay + P.WINDOWS.resourceCreated.fromStart,
    endDay(plan) + P.WINDOWS.resourceCreated.toEnd,
  );
  const refs: ResourceRef[] = [];
  const rows: string[][] = [];
  for (let i = 0; i < plan.resources; i++) {
    // Every org owns at least one resource, so every org has usage (as in the reference).
    const orgId = i < orgIds.length ? (orgIds[i] as string) : rng.pick(orgIds);
    const ref: ResourceRef = {
      id: ids.mint(i),
      orgId,
      service: rng.draw(P.RESOURCE_SERVICES),
      region: rng.draw(P.RESOURCE_REGIONS),
    };
    refs.push(ref);
    rows.push([
      ref.id,
      orgId,
      ref.service,
      ref.region,
      formatDay(randomDay(rng, created)),
      rng.draw(P.RESOURCE_STATES),
      tagsJson(rng),
    ]);
  }
  // Shuffle rows and refs together so the file is not ordered by org.
  const order = rng.shuffle(Array.from({ length: refs.length }, (_, i) => i));
  return { refs: order.map((i) => refs[i] as ResourceRef), rows: order.map((i) => rows[i] as string[]) };
}

function fxRate(rng: Rng, currency: 'USD' | 'EUR' | 'ARS'): number {
  switch (currency) {
    case 'USD':
      return rng.chance(P.FX.usdExactRate) ? 1 : round(1 + P.FX.usdSd * rng.normal(), 5);
    case 'EUR':
      return round(P.FX.eurMean + P.FX.eurSd * rng.normal(), 5);
    case 'ARS':
      return round(rng.between(P.FX.arsLow, P.FX.arsHigh), 5);
  }
}

function* billingRows(plan: GeneratorPlan, orgIds: readonly string[], counts: QuirkCounts): Generator<string[]> {
  const rng = new Rng(plan.seed, 'table/billing_monthly');
  const ids = new IdMinter('inv_', 4, new Rng(plan.seed, 'ids/invoice'));
  const n = orgIds.length * plan.billingMonths.length;
  const quirks = assignRowQuirks(rng, n, [
    ['negative', quirkRowCount(n, CSV_QUIRK_RATES.billing_negative_subtotal)],
    ['lowercase', quirkRowCount(n, CSV_QUIRK_RATES.billing_currency_lowercase)],
  ]);
  let i = 0;
  for (const orgId of orgIds) {
    for (const month of plan.billingMonths) {
      const quirk = quirks.get(i);
      let subtotal = round(P.BILLING.subtotalMedian * Math.exp(P.BILLING.subtotalSigma * rng.normal()), 2);
      let currency: 'USD' | 'EUR' | 'ARS' = rng.draw(P.CURRENCIES);
      let written: string = currency;
      if (quirk === 'negative') {
        // A credit note. Non-USD so the row (quarantined) never also counts as an fx correction.
        subtotal = -subtotal;
        currency = rng.chance(0.5) ? 'EUR' : 'ARS';
        written = currency;
        counts.billing_negative_subtotal++;
      } else if (quirk === 'lowercase') {
        currency = rng.chance(0.8) ? 'USD' : 'EUR';
        written = currency.toLowerCase();
        counts.billing_currency_lowercase++;
      }
      const fx = fxRate(rng, currency);
      if (currency === 'USD' && fx !== 1) counts.billing_fx_corrected++;
      const credits = rng.chance(P.BILLING.creditsEmptyRate)
        ? ''
        : pyFloat(round(Math.min(80, rng.exponential(18)), 2));
      yield [
        ids.mint(i),
        orgId,
        month,
        pyFloat(subtotal),
        credits,
        pyFloat(round(subtotal * P.BILLING.taxRate, 2)),
        written,
        pyFloat(fx),
      ];
      i++;
    }
  }
}

function* ticketRows(plan: GeneratorPlan, orgIds: readonly string[], counts: QuirkCounts): Generator<string[]> {
  const rng = new Rng(plan.seed, 'table/support_tickets');
  const ids = new IdMinter('tkt_', 4, new Rng(plan.seed, 'ids/ticket'));
  const n = plan.tickets;
  const quirks = assignRowQuirks(rng, n, [
    ['interval', quirkRowCount(n, CSV_QUIRK_RATES.tickets_bad_interval)],
    ['csat', quirkRowCount(n, CSV_QUIRK_RATES.tickets_csat_out_of_range)],
  ]);
  const created = dayRange(
    plan.startDay + P.WINDOWS.ticketCreated.fromStart,
    endDay(plan) + P.WINDOWS.ticketCreated.toEnd,
  );
  for (let i = 0; i < n; i++) {
    const quirk = quirks.get(i);
    const createdDay = randomDay(rng, created);
    let resolved = '';
    if (quirk === 'interval') {
      resolved = formatDay(createdDay - rng.intBetween(1, 5));
      counts.tickets_bad_interval++;
    } else if (!rng.chance(P.TICKETS.unresolvedRate)) {
      resolved = formatDay(createdDay + Math.floor(rng.exponential(P.TICKETS.meanResolutionDays)));
    }
    let csat = rng.chance(P.TICKETS.csatEmptyRate) ? '' : pyFloat(rng.draw(P.CSAT_SCORES));
    if (quirk === 'csat') {
      csat = pyFloat(rng.pick(CSAT_OUT_OF_RANGE));
      counts.tickets_csat_out_of_range++;
    }
    yield [
      ids.mint(i),
      rng.pick(orgIds),
      rng.draw(P.TICKET_CATEGORIES),
      rng.draw(P.SEVERITIES),
      formatDay(createdDay),
      resolved,
      csat,
      pyBool(rng.chance(P.TICKETS.slaBreachRate)),
    ];
  }
}

function* touchRows(plan: GeneratorPlan, orgIds: readonly string[]): Generator<string[]> {
  const rng = new Rng(plan.seed, 'table/marketing_touches');
  const ids = new IdMinter('mkt_', 4, new Rng(plan.seed, 'ids/touch'));
  const days = dayRange(plan.startDay + P.WINDOWS.touch.fromStart, endDay(plan) + P.WINDOWS.touch.toEnd);
  for (let i = 0; i < plan.touches; i++) {
    yield [
      ids.mint(i),
      rng.pick(orgIds),
      rng.draw(P.CAMPAIGNS),
      rng.draw(P.CHANNELS),
      formatDay(randomDay(rng, days)),
      pyBool(rng.chance(P.TOUCHES.clickRate)),
      pyBool(rng.chance(P.TOUCHES.convertRate)),
    ];
  }
}

function* surveyRows(plan: GeneratorPlan, orgIds: readonly string[], counts: QuirkCounts): Generator<string[]> {
  const rng = new Rng(plan.seed, 'table/nps_surveys');
  const days = dayRange(plan.startDay + P.WINDOWS.survey.fromStart, endDay(plan) + P.WINDOWS.survey.toEnd);
  // (org_id, survey_date) is the key: draw until unique so the file has no duplicate_key rows.
  const taken = new Set<string>();
  const surveys: Array<{ org: number; day: number }> = [];
  for (let attempts = 0; surveys.length < plan.surveys && attempts < plan.surveys * 20; attempts++) {
    const survey = { org: rng.int(orgIds.length), day: randomDay(rng, days) };
    const key = `${survey.org}|${survey.day}`;
    if (taken.has(key)) continue;
    taken.add(key);
    surveys.push(survey);
  }
  surveys.sort((a, b) => a.org - b.org || a.day - b.day);
  const quirks = assignRowQuirks(rng, surveys.length, [
    ['missing', quirkRowCount(surveys.length, CSV_QUIRK_RATES.nps_missing_score)],
    ['range', quirkRowCount(surveys.length, CSV_QUIRK_RATES.nps_out_of_range)],
  ]);
  for (const [i, survey] of surveys.entries()) {
    const quirk = quirks.get(i);
    let score = npsScore(rng, P.SURVEY_NPS.mean, P.SURVEY_NPS.sd);
    if (quirk === 'missing') {
      score = '';
      counts.nps_missing_score++;
    } else if (quirk === 'range') {
      score = pyFloat(rng.pick(SURVEY_NPS_OUT_OF_RANGE));
      counts.nps_out_of_range++;
    }
    yield [orgIds[survey.org] as string, formatDay(survey.day), score, rng.draw(P.SURVEY_COMMENTS)];
  }
}

/** Writes the seven CSVs into `dir` and returns the dimension keys the events refer to. */
export async function writeBatchSources(plan: GeneratorPlan, dir: string, counts: QuirkCounts): Promise<BatchSources> {
  const orgMinter = new IdMinter('org_', 4, new Rng(plan.seed, 'ids/org'));
  const orgIds = Array.from({ length: plan.orgs }, (_, i) => orgMinter.mint(i));
  const resources = makeResources(plan, orgIds);
  const rows: Record<CsvTable, number> = {
    customers_orgs: await writeTable(dir, 'customers_orgs', orgRows(plan, orgIds, counts)),
    users: await writeTable(dir, 'users', userRows(plan, orgIds, counts)),
    resources: await writeTable(dir, 'resources', resources.rows),
    billing_monthly: await writeTable(dir, 'billing_monthly', billingRows(plan, orgIds, counts)),
    support_tickets: await writeTable(dir, 'support_tickets', ticketRows(plan, orgIds, counts)),
    marketing_touches: await writeTable(dir, 'marketing_touches', touchRows(plan, orgIds)),
    nps_surveys: await writeTable(dir, 'nps_surveys', surveyRows(plan, orgIds, counts)),
  };
  return { orgIds, resources: resources.refs, rows };
}
