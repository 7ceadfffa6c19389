/**
 * The shape of the reference dataset (../shared/datasets/reference/landing), measured with DuckDB, as the
 * generator's parameters. Figures in comments are the reference's (S = 1) so a later re-profiling can compare.
 */
import { weighted } from './prng';

export const CANONICAL_SERVICES = ['compute', 'storage', 'database', 'networking', 'analytics', 'genai'] as const;
export type Service = (typeof CANONICAL_SERVICES)[number];

export const CANONICAL_REGIONS = [
  'us-east',
  'us-west',
  'eu-west',
  'eu-central',
  'ap-south',
  'ap-northeast',
  'sa-east',
] as const;
export type Region = (typeof CANONICAL_REGIONS)[number];

export type Metric = 'requests' | 'cpu_hours' | 'storage_gb_hours';

/** Per-org row counts at S = 1 (80 orgs): 800 users, 400 resources, 1,000 tickets, 1,500 touches, 92 surveys. */
export const PER_ORG = { users: 10, resources: 5, tickets: 12.5, touches: 18.75, surveys: 1.15 } as const;

export const REFERENCE = {
  orgs: 80,
  events: 43_200,
  files: 120,
  /** Above S = 10 files keep this size instead of multiplying (4.3 M events → 1,200 files at S = 100). */
  eventsPerLargeFile: 3_600,
  /** schema_version 2 (carbon_kg, genai_tokens) starts on day 16: 2025-07-18 for the 2025-07-03 start. */
  schemaV2FromDayIndex: 15,
} as const;

// --- customers_orgs.csv ---
export const ORG_NAME_WORDS = [
  'Gamma',
  'Zenith',
  'Vertex',
  'Omega',
  'Nimbus',
  'Delta',
  'Nova',
  'Alpha',
  'Beta',
  'Apex',
];
export const ORG_NAME_SUFFIXES = ['Cloud', 'Tech', 'Labs', 'Data', 'Digital', 'AI'];
export const INDUSTRIES = weighted([
  ['Gaming', 12],
  ['Education', 10],
  ['Manufacturing', 10],
  ['Retail', 9],
  ['Government', 9],
  ['Healthcare', 8],
  ['Fintech', 7],
  ['E-commerce', 6],
  ['Energy', 5],
  ['Media', 4],
] as const);
export const HQ_REGIONS = weighted<Region>([
  ['eu-central', 16],
  ['ap-south', 15],
  ['us-east', 14],
  ['ap-northeast', 11],
  ['sa-east', 10],
  ['us-west', 7],
  ['eu-west', 7],
]);
export const PLAN_TIERS = weighted([
  ['standard', 41],
  ['pro', 21],
  ['enterprise', 10],
  ['free', 8],
] as const);
export const ENTERPRISE_RATE = 17 / 80; // independent of plan_tier in the reference
export const SALES_REPS = weighted([
  ['rep_a', 14],
  ['rep_b', 18],
  ['rep_c', 9],
  ['rep_d', 22],
  ['rep_e', 17],
] as const);
export const LIFECYCLE_STAGES = weighted([
  ['active', 54],
  ['at_risk', 11],
  ['churned', 6],
  ['prospect', 6],
  ['lead', 3],
] as const);
export const MARKETING_SOURCES = weighted([
  ['event', 21],
  ['organic', 17],
  ['partner', 16],
  ['ads', 14],
  ['referral', 12],
] as const);
/** Org NPS: NPS scale, mean ≈ 14, sd ≈ 22, 11 of 80 empty. */
export const ORG_NPS = { mean: 14, sd: 22, emptyRate: 11 / 80 } as const;

// --- users.csv ---
export const ROLES = weighted([
  ['data_engineer', 201],
  ['devops', 162],
  ['developer', 130],
  ['analyst', 113],
  ['ml_engineer', 105],
  ['admin', 89],
] as const);
export const USER_ACTIVE_RATE = 728 / 800;
export const LAST_LOGIN_EMPTY_RATE = 139 / 800;

// --- resources.csv ---
export const RESOURCE_SERVICES = weighted<Service>([
  ['compute', 116],
  ['storage', 71],
  ['database', 68],
  ['networking', 64],
  ['analytics', 42],
  ['genai', 39],
]);
export const RESOURCE_REGIONS = weighted<Region>([
  ['ap-northeast', 72],
  ['us-east', 69],
  ['us-west', 61],
  ['sa-east', 57],
  ['ap-south', 55],
  ['eu-west', 46],
  ['eu-central', 40],
]);
export const RESOURCE_STATES = weighted([
  ['running', 242],
  ['stopped', 119],
  ['terminated', 39],
] as const);
export const RESOURCE_TAGS = [
  'team:ml',
  'env:prod',
  'costcenter:beta',
  'team:core',
  'pii:true',
  'backup:daily',
  'env:dev',
  'costcenter:alpha',
];
export const TAGS_EMPTY_RATE = 83 / 400;

// --- billing_monthly.csv ---
export const CURRENCIES = weighted([
  ['USD', 160],
  ['ARS', 51],
  ['EUR', 29],
] as const);
/** Subtotal: lognormal, median ≈ 690, p95 ≈ 1,580. Taxes are 21 % of the subtotal; 137 of 240 credits empty. */
export const BILLING = { subtotalMedian: 690, subtotalSigma: 0.45, taxRate: 0.21, creditsEmptyRate: 137 / 240 };
/** fx per currency: USD rows carry noise around 1 (§1), ARS ≈ 0.00148, EUR ≈ 1.10. 5 decimals. */
export const FX = {
  usdSd: 0.045,
  usdExactRate: 0.1, // the reference has none; a few exact 1.0 rows keep `fx_corrected` from being every USD row
  eurMean: 1.1,
  eurSd: 0.04,
  arsLow: 0.00133,
  arsHigh: 0.0016,
} as const;

// --- support_tickets.csv ---
export const TICKET_CATEGORIES = weighted([
  ['integration', 181],
  ['billing', 180],
  ['availability', 165],
  ['usability', 161],
  ['performance', 158],
  ['security', 155],
] as const);
export const SEVERITIES = weighted([
  ['low', 412],
  ['medium', 328],
  ['high', 204],
  ['critical', 56],
] as const);
export const CSAT_SCORES = weighted([
  [1, 45],
  [2, 127],
  [3, 242],
  [4, 197],
  [5, 95],
] as const);
export const TICKETS = {
  unresolvedRate: 240 / 1000,
  csatEmptyRate: 254 / 1000,
  slaBreachRate: 95 / 1000,
  meanResolutionDays: 4,
} as const;

// --- marketing_touches.csv ---
export const CAMPAIGNS = weighted([
  ['upgrade_enterprise', 271],
  ['webinar_finops', 263],
  ['genai_launch', 252],
  ['welcome', 247],
  ['upgrade_pro', 245],
  ['security_week', 222],
] as const);
export const CHANNELS = weighted([
  ['event', 401],
  ['email', 385],
  ['ads', 358],
  ['in_app', 356],
] as const);
export const TOUCHES = { clickRate: 453 / 1500, convertRate: 144 / 1500 } as const;

// --- nps_surveys.csv ---
export const SURVEY_COMMENTS = weighted([
  ['Missing features', 20],
  ['Love genAI features', 14],
  ['Complex billing', 13],
  ['Stable but slow', 13],
  ['Too expensive', 12],
  ['Great support', 10],
  ['', 10],
] as const);
/** Survey NPS: mean ≈ 25, sd ≈ 20 (range −16..68 in the reference). */
export const SURVEY_NPS = { mean: 25, sd: 20 } as const;

/**
 * Date windows, in days relative to the first (`start`) and last (`end`) event day; the reference's
 * 2025-07-03..2025-08-31 gives signups 2025-05-04..2025-07-02 etc.
 */
export const WINDOWS = {
  signup: { fromStart: -60, toStart: -1 },
  userCreated: { fromStart: -60, toEnd: -20 },
  resourceCreated: { fromStart: -60, toEnd: -10 },
  ticketCreated: { fromStart: -55, toEnd: 0 },
  touch: { fromStart: -60, toEnd: 0 },
  survey: { fromStart: -40, toEnd: 0 },
  /** Billing months: every calendar month touching [start − 30 days, end] (June–August for the reference). */
  billingFromStart: -30,
} as const;

// --- usage events ---
export const METRICS = weighted<Metric>([
  ['requests', 19_512],
  ['storage_gb_hours', 12_996],
  ['cpu_hours', 10_692],
]);
export const METRIC_UNITS: Readonly<Record<Metric, string>> = {
  requests: 'count',
  cpu_hours: 'hours',
  storage_gb_hours: 'gb_hours',
};
/** Latent usage per event: requests are integers ~N(120, 10) (min 80); hours are N(μ, σ) clipped at 0, 4 dp. */
export const METRIC_VALUES: Readonly<Record<Metric, { mean: number; sd: number; min: number; dp: number }>> = {
  requests: { mean: 120, sd: 10, min: 80, dp: 0 },
  cpu_hours: { mean: 1.8, sd: 1.5, min: 0, dp: 4 },
  storage_gb_hours: { mean: 10, sd: 8, min: 0, dp: 4 },
};
/**
 * cost = value × unit price of the service × noise. The reference's cost/value ratio depends on the service only
 * (same for all three metrics) with a spread of ≈ ±15 %. The noise is clipped to [0.4, 1.6] so that a ×20–50 spike
 * is always distinguishable from an ordinary event.
 */
export const UNIT_PRICE: Readonly<Record<Service, number>> = {
  compute: 0.08,
  storage: 0.02,
  database: 0.05,
  networking: 0.01,
  analytics: 0.07,
  genai: 0.12,
};
export const COST_NOISE = { sd: 0.15, min: 0.4, max: 1.6 } as const;
export const SPIKE_FACTOR = { min: 20, max: 50 } as const;
/** carbon_kg = round(value × 0.0002, 6), integer 0 when value is null or 0 (reference v2 events). */
export const CARBON_PER_UNIT = 0.0002;
/** genai_tokens on v2 genai events: N(817, 450) clipped at 0. */
export const GENAI_TOKENS = { mean: 817, sd: 450 } as const;
/** Ordinary (non-quirk) shape of the feed: 2 % of values null; a null value has a null unit 5 % of the time. */
export const VALUE_NULL_RATE = 877 / 43_200;
export const UNIT_NULL_RATE = 2_075 / 43_200;
