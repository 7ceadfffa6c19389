/**
 * The data-quality quirks the generator injects (SPEC §1 + §11), their rates and their spellings.
 *
 * Every quirk is counted exactly in the report under the rule id the pipeline uses (docs/decisions.md), and an
 * event carries at most one of them, so each count maps 1:1 onto a quarantine or flag count of the pipeline.
 */
import { weighted, type Weighted } from './prng';
import type { Region, Service } from './profile';

/** Per-event quirks, named after the silver rule or flag they trigger. */
export const EVENT_QUIRKS = [
  'malformed_json',
  'duplicate_event_id',
  'missing_required',
  'bad_timestamp',
  'unknown_service',
  'negative_cost',
  'small_negative_cost',
  'value_numeric_string',
  'value_cast_failed',
  'unit_imputed',
  'service_variant_spelling',
  'region_variant_spelling',
  'region_unknown',
  'orphan_org_events',
  'orphan_resource_events',
  'late_events',
  'cost_spikes',
] as const;
export type EventQuirk = (typeof EVENT_QUIRKS)[number];

/** Per-row quirks of the batch (CSV) sources. */
export const CSV_QUIRKS = [
  'orgs_duplicate_key',
  'orgs_nps_out_of_range',
  'users_invalid_email',
  'billing_negative_subtotal',
  'billing_fx_corrected',
  'billing_currency_lowercase',
  'tickets_bad_interval',
  'tickets_csat_out_of_range',
  'nps_missing_score',
  'nps_out_of_range',
] as const;
export type CsvQuirk = (typeof CSV_QUIRKS)[number];

export type QuirkCounts = Record<EventQuirk | CsvQuirk, number>;

export function emptyQuirkCounts(): QuirkCounts {
  const counts = {} as QuirkCounts;
  for (const q of [...EVENT_QUIRKS, ...CSV_QUIRKS]) counts[q] = 0;
  return counts;
}

/**
 * Probability that an event slot carries each quirk. Quarantining quirks (malformed, missing_required,
 * bad_timestamp, unknown_service, negative_cost) add up to ≈ 1 %, far below a 5 % quality gate. Two row-keeping
 * shapes follow the reference instead of "well under 1 %": numeric-string values (3.0 % there) and null units with
 * a value (4.7 %) — SPEC §1 names them as the feed's normal shape. Late events are ≈ 1 % as real feeds have.
 */
export const EVENT_QUIRK_RATES: Readonly<Record<EventQuirk, number>> = {
  malformed_json: 0.002,
  duplicate_event_id: 0.003,
  missing_required: 0.0015,
  bad_timestamp: 0.001,
  unknown_service: 0.0015,
  negative_cost: 0.0045, // reference: 211 of 43,200 below −0.01
  small_negative_cost: 0.0005,
  value_numeric_string: 0.03,
  value_cast_failed: 0.002,
  unit_imputed: 0.047,
  service_variant_spelling: 0.005,
  region_variant_spelling: 0.005,
  region_unknown: 0.002,
  orphan_org_events: 0.002,
  orphan_resource_events: 0.002,
  late_events: 0.01,
  cost_spikes: 0.003, // reference: 151 of 43,200 events at 12–28× their usual cost
};

/** The categorical draw per event slot: one quirk or none. */
export const EVENT_QUIRK_DRAW: Weighted<EventQuirk | 'none'> = weighted<EventQuirk | 'none'>([
  // 'none' first: ~88 % of draws then stop at the first comparison.
  ['none', 1 - EVENT_QUIRKS.reduce((sum, q) => sum + EVENT_QUIRK_RATES[q], 0)],
  ...EVENT_QUIRKS.map((q) => [q, EVENT_QUIRK_RATES[q]] as const),
]);

/**
 * Exact fractions of CSV rows that get a quirk (count = round(rows × rate), so tiny scales may have none).
 * `billing_fx_corrected` is not injected: it counts the USD rows whose noisy fx is not 1 (§1 shape).
 */
export const CSV_QUIRK_RATES = {
  orgs_duplicate_key: 0.0125,
  orgs_nps_out_of_range: 0.0125,
  users_invalid_email: 0.005,
  billing_negative_subtotal: 0.01,
  billing_currency_lowercase: 0.02,
  tickets_bad_interval: 0.005,
  tickets_csat_out_of_range: 0.01,
  nps_missing_score: 0.02,
  nps_out_of_range: 0.01,
} as const;

export function quirkRowCount(rows: number, rate: number): number {
  return Math.round(rows * rate);
}

/**
 * Non-canonical spellings that the silver alias table must map back (decisions.md: trim, lower-case, `-`/`_`/space
 * equivalent; `ec2|vm|compute_engine`, `s3|blob|object_storage`, `db|rds|sql`, `net|network|vpc`,
 * `bigquery|warehouse`, `gen_ai|gen-ai|ai|llm`). The pipeline's alias table must accept every entry.
 */
export const SERVICE_VARIANTS: Readonly<Record<Service, readonly string[]>> = {
  compute: [' Compute', 'COMPUTE', 'compute ', 'EC2', 'ec2', 'VM', 'compute_engine', 'Compute Engine'],
  storage: ['S3', 's3', 'Storage', ' storage', 'blob', 'object_storage', 'Object Storage'],
  database: ['DB', 'db', 'RDS', 'rds', 'sql', 'Database', ' database '],
  networking: ['net', 'Network', 'network', 'VPC', 'vpc', 'Networking', 'networking '],
  analytics: ['BigQuery', 'bigquery', 'warehouse', 'Analytics', ' analytics'],
  genai: ['gen_ai', 'Gen-AI', 'gen-ai', 'GenAI', 'AI', 'llm', 'LLM', 'gen ai'],
};

/**
 * Region spellings: case, whitespace and separator variants of every region (`us_east`, `US-EAST`, ` us-east`),
 * plus the cloud-style `-1` suffix and the separator-less form decisions.md lists for us-east (`us-east-1`,
 * `useast`), applied to every region.
 */
export function regionVariants(region: Region): readonly string[] {
  const [a = '', b = ''] = region.split('-');
  const title = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);
  return [
    region.toUpperCase(),
    `${a}_${b}`,
    ` ${region}`,
    `${region} `,
    `${title(a)}-${title(b)}`,
    `${a} ${b}`,
    `${region}-1`,
    `${a}${b}`,
  ];
}

/** Services no alias maps to (→ `unknown_service`). */
export const UNKNOWN_SERVICES = ['quantum', 'blockchain', 'mainframe', 'satellite', 'teleport'] as const;
/** Regions no alias maps to (→ region NULL, `region_unknown`); a JSON null region counts the same. */
export const UNKNOWN_REGIONS = ['mars-north', 'moon-base-1', 'atlantis', 'xx-void', null] as const;
/** Timestamps that are not ISO-8601 (→ `bad_timestamp`). */
export const BAD_TIMESTAMPS = [
  '2025-13-45T99:00:00Z',
  'yesterday',
  'not-a-timestamp',
  '31/08/2025 10:00',
  '2025-08-17T25:61:00Z',
  'N/A',
] as const;
/** Strings that do not cast to DOUBLE (→ value NULL, `value_cast_failed`). */
export const UNCASTABLE_VALUES = ['n/a', 'N/A', 'unknown', '12,5', 'approx 3', '--'] as const;

/** Ways an event lacks a required field (→ `missing_required`). */
export const MISSING_REQUIRED_KINDS = [
  'org_id_absent',
  'org_id_null',
  'org_id_empty',
  'cost_null',
  'cost_absent',
  'service_absent',
  'service_blank',
  'event_id_absent',
  'timestamp_absent',
] as const;
export type MissingRequiredKind = (typeof MISSING_REQUIRED_KINDS)[number];

/** Ways a line is not a JSON object (→ `malformed_json`). */
export const MALFORMED_KINDS = ['truncated', 'json_array', 'garbage_text', 'garbage_binary'] as const;
export type MalformedKind = (typeof MALFORMED_KINDS)[number];

/** Out-of-range scores (NPS scale is −100..100; CSAT 1..5). */
export const ORG_NPS_OUT_OF_RANGE = [150, 150, -150, 101, 250] as const;
export const SURVEY_NPS_OUT_OF_RANGE = [150, -120, 101] as const;
export const CSAT_OUT_OF_RANGE = [0, 6, 7] as const;
