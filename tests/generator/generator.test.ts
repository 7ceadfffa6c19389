/**
 * The generator's contract: deterministic bytes, the reference's file layout and headers, and a report whose
 * quirk counts are exactly what an independent re-read of the files finds (so pipeline tests can rely on them).
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { parse } from 'csv-parse/sync';

import { CSV_HEADERS, EVENTS_DIR, generate, makePlan, REPORT_FILE, type GeneratorReport } from '../../lake/generator';
import { UNIT_PRICE, type Service } from '../../lake/generator/profile';

const REFERENCE_LANDING = path.resolve(__dirname, '../../../shared/datasets/reference/landing');
const CSV_FILES = Object.keys(CSV_HEADERS).map((table) => `${table}.csv`);

let workDir: string;

beforeAll(async () => {
  workDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'cpa-generator-'));
});

afterAll(async () => {
  await fsp.rm(workDir, { recursive: true, force: true });
});

async function generateInto(
  name: string,
  scale: number,
  seed: number,
): Promise<{ dir: string; report: GeneratorReport }> {
  const dir = path.join(workDir, name);
  const report = await generate({ scale, seed, out: dir });
  return { dir, report };
}

async function listFiles(dir: string): Promise<string[]> {
  const entries = await fsp.readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

async function hashTree(dir: string): Promise<Map<string, string>> {
  const hashes = new Map<string, string>();
  for (const file of await listFiles(dir)) {
    hashes.set(
      file,
      createHash('sha256')
        .update(await fsp.readFile(path.join(dir, file)))
        .digest('hex'),
    );
  }
  return hashes;
}

async function readCsv(dir: string, table: string): Promise<Array<Record<string, string>>> {
  return parse(await fsp.readFile(path.join(dir, `${table}.csv`), 'utf8'), { columns: true }) as Array<
    Record<string, string>
  >;
}

describe('determinism', () => {
  it('writes byte-identical files for the same scale and seed, and different ones for another seed', async () => {
    const a = await generateInto('det-a', 0.05, 7);
    const b = await generateInto('det-b', 0.05, 7);
    const c = await generateInto('det-c', 0.05, 8);
    const [ha, hb, hc] = await Promise.all([hashTree(a.dir), hashTree(b.dir), hashTree(c.dir)]);
    expect([...ha.keys()]).toEqual([...hb.keys()]);
    expect(ha).toEqual(hb);
    expect(a.report).toEqual(b.report);
    expect(ha.get('usage_events_stream/events_part_0000.jsonl')).not.toEqual(
      hc.get('usage_events_stream/events_part_0000.jsonl'),
    );
    for (const csv of CSV_FILES) expect(ha.get(csv)).not.toEqual(hc.get(csv));
  });

  it('leaves no temporary files and refuses to mix with another run', async () => {
    const files = await listFiles(path.join(workDir, 'det-a'));
    expect(files.filter((f) => path.basename(f).startsWith('.'))).toEqual([]);
    await expect(generate({ scale: 0.01, seed: 7, out: path.join(workDir, 'det-a') })).rejects.toThrow(/another run/);
  });
});

describe('plan', () => {
  it('scales like the reference: S=1 is 80 orgs, 43,200 events in 120 files', () => {
    expect(makePlan(1, 1, '2025-07-03', 60)).toMatchObject({
      orgs: 80,
      users: 800,
      resources: 400,
      tickets: 1000,
      touches: 1500,
      surveys: 92,
      events: 43_200,
      files: 120,
      billingMonths: ['2025-06-01', '2025-07-01', '2025-08-01'],
    });
    expect(makePlan(0.1, 1, '2025-07-03', 60)).toMatchObject({ orgs: 8, events: 4_320, files: 12 });
    expect(makePlan(0.01, 1, '2025-07-03', 60)).toMatchObject({ orgs: 3, files: 1 });
    expect(makePlan(10, 1, '2025-07-03', 60)).toMatchObject({ events: 432_000, files: 1_200 });
    expect(makePlan(100, 1, '2025-07-03', 60)).toMatchObject({ events: 4_320_000, files: 1_200 });
  });
});

describe('layout', () => {
  let dir: string;
  let report: GeneratorReport;

  beforeAll(async () => {
    ({ dir, report } = await generateInto('layout', 0.1, 42));
  });

  it('has the reference CSV headers, in order', async () => {
    for (const csv of CSV_FILES) {
      const reference = (await fsp.readFile(path.join(REFERENCE_LANDING, csv), 'utf8')).split('\n')[0];
      const generated = (await fsp.readFile(path.join(dir, csv), 'utf8')).split('\n')[0];
      expect(generated).toEqual(reference);
    }
  });

  it('names events files like the reference and writes the report', async () => {
    const names = await fsp.readdir(path.join(dir, EVENTS_DIR));
    expect(names.sort()).toEqual(
      Array.from({ length: 12 }, (_, k) => `events_part_${String(k).padStart(4, '0')}.jsonl`),
    );
    const written = JSON.parse(await fsp.readFile(path.join(dir, REPORT_FILE), 'utf8')) as GeneratorReport;
    expect(written).toEqual(report);
    expect(report).toMatchObject({ files: 12, events_written: 4_320, orgs: 8 });
  });

  it('uses the reference value formats: True/False, Python floats, LF line ends', async () => {
    const orgs = await fsp.readFile(path.join(dir, 'customers_orgs.csv'), 'utf8');
    expect(orgs).not.toContain('\r');
    for (const row of await readCsv(dir, 'customers_orgs')) {
      expect(['True', 'False']).toContain(row.is_enterprise);
      expect(row.signup_date).toMatch(/^\d{4}-\d{2}-\d{2}$/);
      if (row.nps_score !== '') expect(row.nps_score).toMatch(/^-?\d+\.0$/);
    }
    const line = (await fsp.readFile(path.join(dir, EVENTS_DIR, 'events_part_0000.jsonl'), 'latin1')).split('\n')[0];
    expect(line).toMatch(/^\{"event_id": "evt_[0-9a-z]{12}", "timestamp": "2025-07-0\dT\d{2}:\d{2}:00Z", "org_id": /);
  });
});

// --- independent recount of every quirk ---------------------------------------------------------------------

const SERVICE_ALIASES: Record<Service, string[]> = {
  compute: ['compute', 'ec2', 'vm', 'compute-engine'],
  storage: ['storage', 's3', 'blob', 'object-storage'],
  database: ['database', 'db', 'rds', 'sql'],
  networking: ['networking', 'net', 'network', 'vpc'],
  analytics: ['analytics', 'bigquery', 'warehouse'],
  genai: ['genai', 'gen-ai', 'ai', 'llm'],
};
const REGIONS = ['us-east', 'us-west', 'eu-west', 'eu-central', 'ap-south', 'ap-northeast', 'sa-east'];
const KEY_ORDER = [
  'event_id',
  'timestamp',
  'org_id',
  'resource_id',
  'service',
  'region',
  'metric',
  'value',
  'unit',
  'cost_usd_increment',
  'schema_version',
  'carbon_kg',
  'genai_tokens',
];

/** decisions.md: trim, lower-case, '-', '_' and ' ' equivalent. */
function token(raw: string): string {
  return raw.trim().toLowerCase().replace(/[_ ]/g, '-');
}

function canonicalService(raw: string): Service | undefined {
  const t = token(raw);
  return (Object.keys(SERVICE_ALIASES) as Service[]).find((s) => SERVICE_ALIASES[s].includes(t));
}

function canonicalRegion(raw: string): string | undefined {
  const t = token(raw);
  return REGIONS.find((r) => t === r || t === r.replace(/-/g, '') || t === `${r}-1`);
}

function parseTimestamp(raw: unknown): number | undefined {
  if (typeof raw !== 'string' || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$/.test(raw)) {
    return undefined;
  }
  const ms = Date.parse(raw);
  return Number.isFinite(ms) ? ms : undefined;
}

function isBlank(v: unknown): boolean {
  return v === undefined || v === null || (typeof v === 'string' && v.trim() === '');
}

type Counts = Record<string, number>;

/** Re-reads the events files in order and classifies every line by the silver rules; one quirk per line at most. */
async function recountEvents(
  dir: string,
  orgIds: Set<string>,
  resourceIds: Set<string>,
): Promise<{ counts: Counts; lines: number; distinct: number; multiQuirkLines: string[] }> {
  const counts: Counts = {};
  const bump = (k: string): void => void (counts[k] = (counts[k] ?? 0) + 1);
  const seen = new Set<string>();
  const multiQuirkLines: string[] = [];
  let lines = 0;
  let previousMax = Number.NEGATIVE_INFINITY;
  const files = (await fsp.readdir(path.join(dir, EVENTS_DIR))).sort();
  for (const file of files) {
    let fileMax = previousMax;
    const text = await fsp.readFile(path.join(dir, EVENTS_DIR, file), 'latin1');
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      lines++;
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        parsed = undefined;
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
        bump('malformed_json');
        continue;
      }
      const e = parsed as Record<string, unknown>;
      expect(KEY_ORDER.filter((k) => k in e)).toEqual(Object.keys(e));
      const ts = parseTimestamp(e.timestamp);
      if (ts !== undefined && ts > fileMax) fileMax = ts;
      if (typeof e.event_id === 'string' && e.event_id.trim() !== '') {
        if (seen.has(e.event_id)) {
          bump('duplicate_event_id');
          continue;
        }
        seen.add(e.event_id);
      }
      const quirks: string[] = [];
      const service = typeof e.service === 'string' ? canonicalService(e.service) : undefined;
      const cost = typeof e.cost_usd_increment === 'number' ? e.cost_usd_increment : undefined;
      if (['event_id', 'timestamp', 'org_id', 'service', 'cost_usd_increment'].some((k) => isBlank(e[k]))) {
        quirks.push('missing_required');
      } else if (ts === undefined) quirks.push('bad_timestamp');
      else if (service === undefined) quirks.push('unknown_service');
      else if ((cost as number) < -0.01) quirks.push('negative_cost');
      if (cost !== undefined && cost < 0 && cost >= -0.01) quirks.push('small_negative_cost');
      if (typeof e.value === 'string') {
        quirks.push(
          e.value.trim() !== '' && Number.isFinite(Number(e.value)) ? 'value_numeric_string' : 'value_cast_failed',
        );
      }
      if (e.unit === null && typeof e.value === 'number') quirks.push('unit_imputed');
      if (service !== undefined && e.service !== service) quirks.push('service_variant_spelling');
      const region = typeof e.region === 'string' ? canonicalRegion(e.region) : undefined;
      if (region === undefined) quirks.push('region_unknown');
      else if (e.region !== region) quirks.push('region_variant_spelling');
      if (typeof e.org_id === 'string' && e.org_id !== '' && !orgIds.has(e.org_id)) quirks.push('orphan_org_events');
      if (typeof e.resource_id === 'string' && !resourceIds.has(e.resource_id)) quirks.push('orphan_resource_events');
      if (service !== undefined && cost !== undefined && typeof e.value === 'number' && e.value > 0) {
        if (cost / e.value / UNIT_PRICE[service] > 4) quirks.push('cost_spikes');
      }
      if (ts !== undefined && ts < previousMax - 2 * 3_600_000) quirks.push('late_events');
      // Shape of the reference: carbon only on v2 (from 2025-07-18), genai_tokens only on v2 genai events.
      if (ts !== undefined) expect(e.schema_version).toBe(ts >= Date.parse('2025-07-18T00:00:00Z') ? 2 : 1);
      expect('carbon_kg' in e).toBe(e.schema_version === 2);
      if ('genai_tokens' in e) expect([e.schema_version, service]).toEqual([2, 'genai']);
      for (const q of quirks) bump(q);
      if (quirks.length > 1) multiQuirkLines.push(line);
    }
    previousMax = fileMax;
  }
  return { counts, lines, distinct: seen.size, multiQuirkLines };
}

async function recountCsv(dir: string): Promise<Counts> {
  const outside = (raw: string | undefined, lo: number, hi: number): boolean =>
    raw !== undefined && raw !== '' && (Number(raw) < lo || Number(raw) > hi);
  const orgs = await readCsv(dir, 'customers_orgs');
  const firstOrgRows = orgs.filter((row, i) => orgs.findIndex((r) => r.org_id === row.org_id) === i);
  const users = await readCsv(dir, 'users');
  const billing = await readCsv(dir, 'billing_monthly');
  const tickets = await readCsv(dir, 'support_tickets');
  const surveys = await readCsv(dir, 'nps_surveys');
  const count = <T>(rows: T[], predicate: (row: T) => boolean): number => rows.filter(predicate).length;
  return {
    orgs_duplicate_key: orgs.length - firstOrgRows.length,
    orgs_nps_out_of_range: count(firstOrgRows, (r) => outside(r.nps_score, -100, 100)),
    users_invalid_email: count(users, (r) => !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(r.email ?? '')),
    billing_negative_subtotal: count(billing, (r) => Number(r.subtotal) < 0),
    billing_fx_corrected: count(
      billing,
      (r) =>
        Number(r.subtotal) >= 0 && r.currency?.trim().toUpperCase() === 'USD' && Number(r.exchange_rate_to_usd) !== 1,
    ),
    billing_currency_lowercase: count(billing, (r) => r.currency !== r.currency?.toUpperCase()),
    tickets_bad_interval: count(tickets, (r) => r.resolved_at !== '' && (r.resolved_at ?? '') < (r.created_at ?? '')),
    tickets_csat_out_of_range: count(tickets, (r) => outside(r.csat, 1, 5)),
    nps_missing_score: count(surveys, (r) => r.nps_score === ''),
    nps_out_of_range: count(surveys, (r) => outside(r.nps_score, -100, 100)),
  };
}

describe('quirk report', () => {
  let dir: string;
  let report: GeneratorReport;

  beforeAll(async () => {
    ({ dir, report } = await generateInto('quirks', 0.5, 42));
  });

  it('counts exactly what the events files contain, one quirk per event', async () => {
    const orgIds = new Set((await readCsv(dir, 'customers_orgs')).map((r) => r.org_id as string));
    const resourceIds = new Set((await readCsv(dir, 'resources')).map((r) => r.resource_id as string));
    const recount = await recountEvents(dir, orgIds, resourceIds);
    expect(recount.multiQuirkLines).toEqual([]);
    expect(recount.lines).toBe(report.events_written);
    expect(recount.distinct).toBe(report.distinct_event_ids);
    const eventQuirks = Object.fromEntries(
      Object.keys(report.quirks)
        .filter((k) => !(k in CSV_HEADERS) && !/^(orgs|users|billing|tickets|nps)_/.test(k))
        .map((k) => [k, recount.counts[k] ?? 0]),
    );
    const reported = Object.fromEntries(Object.entries(report.quirks).filter(([k]) => k in eventQuirks));
    expect(eventQuirks).toEqual(reported);
    // Every event quirk occurs at S = 0.5, so the comparison above is not vacuous.
    for (const [quirk, n] of Object.entries(reported)) expect([quirk, n > 0]).toEqual([quirk, true]);
  });

  it('counts exactly what the CSV files contain', async () => {
    const recount = await recountCsv(dir);
    const reported = Object.fromEntries(
      Object.keys(recount).map((k) => [k, report.quirks[k as keyof typeof report.quirks]]),
    );
    expect(recount).toEqual(reported);
    expect(recount.orgs_duplicate_key).toBeGreaterThan(0);
    expect(recount.billing_fx_corrected).toBeGreaterThan(0);
  });

  it('keeps quarantining quirks far below a 5 % quality gate', () => {
    const q = report.quirks;
    const quarantined = q.malformed_json + q.missing_required + q.bad_timestamp + q.unknown_service + q.negative_cost;
    expect(quarantined / report.events_written).toBeLessThan(0.02);
  });

  it('sends events files roughly in time order: later files start later', async () => {
    const firstTimestamps: string[] = [];
    for (const file of (await fsp.readdir(path.join(dir, EVENTS_DIR))).sort()) {
      const text = await fsp.readFile(path.join(dir, EVENTS_DIR, file), 'latin1');
      const stamps = [...text.matchAll(/"timestamp": "(\d{4}-\d{2}-\d{2}T[^"]+)"/g)].map((m) => m[1] as string).sort();
      firstTimestamps.push(stamps[Math.floor(stamps.length / 2)] as string);
    }
    expect(firstTimestamps).toEqual([...firstTimestamps].sort());
  });
});
