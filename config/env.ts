import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

/**
 * Configuration comes from the environment only, parsed once at start-up. Every variable is documented in
 * `.env.example`. A bad value fails start-up with one message listing every bad variable; secrets are never
 * echoed back.
 */

const bool = z
  .string()
  .trim()
  .toLowerCase()
  .refine((s) => ['1', '0', 'true', 'false', 'yes', 'no', 'on', 'off'].includes(s), 'must be true or false')
  .transform((s) => ['1', 'true', 'yes', 'on'].includes(s));

const positiveInt = z.coerce.number().int().positive();
const rate = z.coerce.number().min(0).max(1);

/** A lake or landing location: a local path (made absolute) or an s3://bucket/prefix URI. */
export const lakeUri = z
  .string()
  .trim()
  .min(1)
  .refine((s) => !/^[a-z][a-z0-9+.-]*:\/\//i.test(s) || /^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/.test(s), {
    message: 'must be a local path or s3://bucket[/prefix]',
  })
  .transform((s) => (s.startsWith('s3://') ? s.replace(/\/+$/, '') : path.resolve(s)));

/**
 * Per-table quarantine-rate limits, tuned on the reference dataset's baseline: events must be clean (measured
 * 0.49% negative_cost); survey non-response is normal (20.7% missing_score measured), so surveys get a wide limit.
 */
const DEFAULT_TABLE_LIMITS: Record<string, number> = { usage_events: 0.05, nps_surveys: 0.35 };

const schema = z.object({
  CPA_LAKE_ROOT: lakeUri.default('./.lake'),
  CPA_LANDING_ROOT: lakeUri.optional(),
  CPA_EMAIL_SALT: z.string().min(8, 'must be at least 8 characters').default('cpa-local-development-salt'),
  CPA_CURRENCIES: z
    .string()
    .default('USD,EUR,ARS,GBP,BRL,JPY,INR')
    .transform((s) =>
      s
        .split(',')
        .map((c) => c.trim().toUpperCase())
        .filter(Boolean),
    )
    .refine(
      (list) => list.length > 0 && list.every((c) => /^[A-Z]{3}$/.test(c)),
      'must be ISO-4217 codes, comma separated',
    ),
  CPA_QUALITY_MAX_QUARANTINE_RATE: rate.default(0.1),
  CPA_QUALITY_MAX_ANOMALY_RATE: rate.default(0.1),
  CPA_QUALITY_THRESHOLDS: z
    .string()
    .optional()
    .transform((s, ctx) => {
      if (!s) return DEFAULT_TABLE_LIMITS;
      try {
        return { ...DEFAULT_TABLE_LIMITS, ...z.record(z.string(), rate).parse(JSON.parse(s)) };
      } catch {
        ctx.addIssue({ code: 'custom', message: 'must be JSON like {"usage_events":0.02}' });
        return z.NEVER;
      }
    }),
  CPA_ANOMALY_ZSCORE: z.coerce.number().positive().default(3),
  CPA_ANOMALY_ROBUST_Z: z.coerce.number().positive().default(3.5),
  CPA_ANOMALY_PCTL_FACTOR: z.coerce.number().positive().default(1.5),
  CPA_ANOMALY_MIN_OBS: positiveInt.default(7),
  CPA_ANOMALY_BASELINE_DAYS: positiveInt.default(28),
  CPA_ANOMALY_EVENT_BY_METRIC: bool.default(true),
  CPA_RECONCILIATION_TOLERANCE: z.coerce.number().min(0).max(10).default(0.02),
  // Plausibility bounds (docs/decisions.md "Plausibility rules"): each is capped below what its bronze type holds.
  CPA_RULE_MAX_EVENT_COST_USD: z.coerce.number().positive().max(1e11).default(100_000),
  CPA_RULE_MAX_EVENT_VALUE: z.coerce.number().positive().max(1e11).default(1_000_000),
  CPA_RULE_MAX_EVENT_CARBON_KG: z.coerce.number().positive().max(1e8).default(1_000),
  CPA_RULE_MAX_EVENT_GENAI_TOKENS: z.coerce.number().int().positive().max(1e15).default(1_000_000_000),
  CPA_RULE_MAX_INVOICE_USD: z.coerce.number().positive().max(1e11).default(10_000_000),
  CPA_RULE_MAX_FX_RATE: z.coerce.number().positive().max(1e6).default(1_000),
  CPA_RULE_MIN_DATE: z
    .string()
    .trim()
    .regex(/^\d{4}-\d{2}-\d{2}$/, 'must be YYYY-MM-DD')
    .refine(
      (s) => !Number.isNaN(Date.parse(`${s}T00:00:00Z`)) && new Date(`${s}T00:00:00Z`).toISOString().startsWith(s),
      'not a calendar date',
    )
    .default('2000-01-01'),
  CPA_RULE_MAX_FUTURE_DAYS: z.coerce.number().int().min(0).max(3650).default(1),
  CPA_DUCKDB_THREADS: positiveInt.default(2),
  CPA_DUCKDB_MEMORY_LIMIT: z
    .string()
    .regex(/^\d+(\.\d+)?\s*(KB|MB|GB|KiB|MiB|GiB)$/i, 'must look like 4GB')
    .default('2.5GB'),
  CPA_DUCKDB_TEMP_DIR: z.string().optional(),
  CPA_MODEL_CHUNK_ROWS: positiveInt.default(2_000_000),
  CPA_DUCKDB_HEAVY_ROWS: z.coerce.number().int().min(0).default(200_000),
  CPA_DUCKDB_EXTENSION_DIR: z.string().optional(),
  CPA_CACHE_DIR: z.string().optional(),
  CPA_LAKE_CATALOG: z.string().trim().optional(),
  CPA_LAKE_SNAPSHOT_RETENTION: z
    .string()
    .trim()
    .regex(/^\d+\s*(minutes?|hours?|days?)$/i, 'must look like 7 days, 12 hours or 30 minutes')
    .default('7 days'),
  TEMPORAL_ADDRESS: z.string().trim().optional(),
  TEMPORAL_NAMESPACE: z.string().default('default'),
  TEMPORAL_TASK_QUEUE: z.string().default('cpa-pipeline'),
  CPA_WORKER_IDENTITY: z.string().optional(),
  TEMPORAL_CLI_PATH: z.string().optional(),
  TEMPORAL_TLS: bool.default(false),
  TEMPORAL_TLS_CERT_PATH: z.string().optional(),
  TEMPORAL_TLS_KEY_PATH: z.string().optional(),
  TEMPORAL_API_KEY: z.string().optional(),
  CPA_DEV_UI_PORT: positiveInt.default(8233),
  CPA_DEV_PORT: positiveInt.default(7233),
  CPA_CLI_OUTAGE_SECONDS: positiveInt.max(86400).default(300),
  CPA_S3_ENDPOINT: z.string().url().optional(),
  CPA_S3_REGION: z.string().default('us-east-1'),
  CPA_S3_ACCESS_KEY_ID: z.string().optional(),
  CPA_S3_SECRET_ACCESS_KEY: z.string().optional(),
  CPA_S3_URL_STYLE: z.enum(['path', 'vhost']).default('path'),
  CPA_CASSANDRA_CONTACT_POINTS: z.string().optional(),
  CPA_CASSANDRA_LOCAL_DC: z.string().default('datacenter1'),
  CPA_CASSANDRA_KEYSPACE: z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,47}$/, 'must be a lower-case CQL identifier')
    .default('cloud_analytics'),
  CPA_CASSANDRA_USERNAME: z.string().optional(),
  CPA_CASSANDRA_PASSWORD: z.string().optional(),
  CPA_CASSANDRA_TLS: bool.default(false),
  CPA_CASSANDRA_REPLICATION: z.string().default("{'class': 'SimpleStrategy', 'replication_factor': 1}"),
  CPA_LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
  CPA_SCHEDULE_TIMEZONE: z
    .string()
    .trim()
    .default('UTC')
    .refine((tz) => isTimeZone(tz), 'must be an IANA time zone such as UTC or Europe/Madrid'),
  CPA_LAKE_LEASE_SECONDS: z.coerce.number().int().min(10).max(86400).default(300),
  CPA_WATCH_ENABLED: bool.default(true),
  CPA_WATCH_INTERVAL_SECONDS: z.coerce.number().positive().max(3600).default(1),
  CPA_WATCH_CONCURRENCY: positiveInt.max(64).default(4),
  CPA_SPEED_WATERMARK_LAG_MINUTES: z.coerce.number().int().min(0).max(10080).default(120),
  CPA_ALERT_COST_5MIN_USD: z.coerce.number().positive().optional(),
  CPA_ALERT_WEBHOOK_URL: z
    .string()
    .trim()
    .url()
    .refine((u) => /^https?:\/\//i.test(u), 'must be an http(s) URL')
    .optional(),
  OPENLINEAGE_URL: z
    .string()
    .trim()
    .url()
    .refine((u) => /^https?:\/\//i.test(u), 'must be an http(s) URL')
    .optional(),
});

export type RawEnv = z.infer<typeof schema>;

export interface Config {
  lakeRoot: string;
  landingRoot: string;
  /** PostgreSQL catalog of S3 lakes (libpq string or postgres:// URI; may carry a password: never printed). */
  lakeCatalog?: string;
  /** Lake upkeep (`cpa lake maintain`): snapshots older than this expire, as a DuckDB interval ('7 days'). */
  snapshotRetention: string;
  emailSalt: string;
  currencies: string[];
  quality: { maxQuarantineRate: number; maxAnomalyRate: number; perTable: Record<string, number> };
  anomaly: {
    zscore: number;
    robustZ: number;
    pctlFactor: number;
    minObs: number;
    /** Trailing baseline length N (SPEC §5): an observation of day d is scored against [d − N, d − 1]. */
    baselineDays: number;
    byMetric: boolean;
  };
  /** usage_billing_reconciliation: |difference_pct| up to this is `match` (SPEC §6b, default 0.02). */
  reconciliationTolerance: number;
  /**
   * Plausibility bounds of the silver rules `implausible_*` (docs/decisions.md): a record outside them is
   * quarantined, so no single value can overflow a gold sum or stretch a mart's date range.
   */
  rules: {
    maxEventCostUsd: number;
    maxEventValue: number;
    maxEventCarbonKg: number;
    maxEventGenaiTokens: number;
    maxInvoiceUsd: number;
    maxFxRate: number;
    /** Earliest plausible date (YYYY-MM-DD) of an event timestamp, a ticket or an invoice month. */
    minDate: string;
    /** How many days after its bronze ingest_ts a record's timestamp may lie. */
    maxFutureDays: number;
  };
  /**
   * `heavyRows`: DuckDB runs one thread until a step reads at least this many rows, then `threads` until no activity
   * runs (lake/duckdb.ts acquireThreads, withWork: on a small lake the second thread costs more than it saves; the
   * count is lowered only while no query runs, which otherwise deadlocked DuckDB). 0 = always `threads`.
   */
  duckdb: { threads: number; memoryLimit: string; tempDir?: string; extensionDir?: string; heavyRows: number };
  /**
   * A silver build over more bronze rows than this runs in chunks of consecutive days, each published before the next
   * (activities/models.ts): memory stays bounded by one chunk and its trailing baseline, whatever the lake's size.
   */
  modelChunkRows: number;
  temporal: {
    address?: string;
    namespace: string;
    taskQueue: string;
    /** The worker's identity in the Temporal history (default: Temporal's `<pid>@<host>`). */
    workerIdentity?: string;
    cliPath?: string;
    tls: boolean;
    tlsCertPath?: string;
    tlsKeyPath?: string;
    apiKey?: string;
    devPort: number;
    devUiPort: number;
    /**
     * How long a command waiting for a workflow keeps retrying an unreachable server before it gives up with exit 3
     * (outcome unknown): the run goes on in Temporal without it.
     */
    cliOutageSeconds: number;
  };
  s3: { endpoint?: string; region: string; accessKeyId?: string; secretAccessKey?: string; urlStyle: 'path' | 'vhost' };
  cassandra?: {
    contactPoints: string[];
    localDataCenter: string;
    keyspace: string;
    username?: string;
    password?: string;
    tls: boolean;
    replication: string;
  };
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  /** The daily schedule (worker/schedules.ts): 02:00 in this IANA time zone. */
  schedule: { timeZone: string };
  /** Lake write lease (lake/lease.ts): TTL of `_meta/locks/lake.json`; the holder renews it every third of it. */
  lakeLease: { ttlSeconds: number };
  /** Streaming ingestion and the speed layer (worker/watcher.ts, activities/speed.ts; SPEC §7). */
  streaming: {
    watchEnabled: boolean;
    watchIntervalMs: number;
    watchConcurrency: number;
    watermarkLagMinutes: number;
    /** Org cost in one 5-minute window above which an alert is raised; undefined = no alerts. */
    alertCost5minUsd?: number;
    /** Secret (may carry a token): never printed. */
    alertWebhookUrl?: string;
  };
  /**
   * Marquez-compatible OpenLineage endpoint (SPEC §13): every step's run events are POSTed to
   * `<url>/api/v1/lineage`; undefined = events are only written under `<lake>/_meta/lineage/`. May carry a token.
   */
  openLineageUrl?: string;
}

/** Thrown when the environment does not validate; the message lists every bad variable, one per line. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Reads KEY=VALUE lines of a git-ignored env file (written by `npm run stack:up`) without overriding the environment. */
export function readEnvFile(file: string): Record<string, string> {
  if (!fs.existsSync(file)) return {};
  const out: Record<string, string> = {};
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const m = /^\s*([A-Z][A-Z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (m) out[m[1]] = m[2].replace(/^(['"])(.*)\1$/, '$2');
  }
  return out;
}

/** Parses and validates the configuration. `overrides` (e.g. CLI flags) win over the environment. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<RawEnv> = {}): Config {
  const parsed = schema.safeParse({ ...stripEmpty(env), ...stripUndefined(overrides) });
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.') || '(env)'}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  const lakeRoot = e.CPA_LAKE_ROOT;
  const cassandra = e.CPA_CASSANDRA_CONTACT_POINTS
    ? {
        contactPoints: e.CPA_CASSANDRA_CONTACT_POINTS.split(',').map((s) => s.trim()),
        localDataCenter: e.CPA_CASSANDRA_LOCAL_DC,
        keyspace: e.CPA_CASSANDRA_KEYSPACE,
        username: e.CPA_CASSANDRA_USERNAME,
        password: e.CPA_CASSANDRA_PASSWORD,
        tls: e.CPA_CASSANDRA_TLS,
        replication: e.CPA_CASSANDRA_REPLICATION,
      }
    : undefined;
  return {
    lakeRoot,
    landingRoot: e.CPA_LANDING_ROOT ?? joinUri(lakeRoot, 'landing'),
    lakeCatalog: e.CPA_LAKE_CATALOG || undefined,
    snapshotRetention: e.CPA_LAKE_SNAPSHOT_RETENTION,
    emailSalt: e.CPA_EMAIL_SALT,
    currencies: e.CPA_CURRENCIES,
    quality: {
      maxQuarantineRate: e.CPA_QUALITY_MAX_QUARANTINE_RATE,
      maxAnomalyRate: e.CPA_QUALITY_MAX_ANOMALY_RATE,
      perTable: e.CPA_QUALITY_THRESHOLDS,
    },
    anomaly: {
      zscore: e.CPA_ANOMALY_ZSCORE,
      robustZ: e.CPA_ANOMALY_ROBUST_Z,
      pctlFactor: e.CPA_ANOMALY_PCTL_FACTOR,
      minObs: e.CPA_ANOMALY_MIN_OBS,
      baselineDays: e.CPA_ANOMALY_BASELINE_DAYS,
      byMetric: e.CPA_ANOMALY_EVENT_BY_METRIC,
    },
    reconciliationTolerance: e.CPA_RECONCILIATION_TOLERANCE,
    rules: {
      maxEventCostUsd: e.CPA_RULE_MAX_EVENT_COST_USD,
      maxEventValue: e.CPA_RULE_MAX_EVENT_VALUE,
      maxEventCarbonKg: e.CPA_RULE_MAX_EVENT_CARBON_KG,
      maxEventGenaiTokens: e.CPA_RULE_MAX_EVENT_GENAI_TOKENS,
      maxInvoiceUsd: e.CPA_RULE_MAX_INVOICE_USD,
      maxFxRate: e.CPA_RULE_MAX_FX_RATE,
      minDate: e.CPA_RULE_MIN_DATE,
      maxFutureDays: e.CPA_RULE_MAX_FUTURE_DAYS,
    },
    duckdb: {
      threads: e.CPA_DUCKDB_THREADS,
      memoryLimit: e.CPA_DUCKDB_MEMORY_LIMIT,
      tempDir: e.CPA_DUCKDB_TEMP_DIR,
      extensionDir: e.CPA_DUCKDB_EXTENSION_DIR ?? defaultExtensionDir(e.CPA_CACHE_DIR),
      heavyRows: e.CPA_DUCKDB_HEAVY_ROWS,
    },
    modelChunkRows: e.CPA_MODEL_CHUNK_ROWS,
    temporal: {
      address: e.TEMPORAL_ADDRESS || undefined,
      namespace: e.TEMPORAL_NAMESPACE,
      taskQueue: e.TEMPORAL_TASK_QUEUE,
      workerIdentity: e.CPA_WORKER_IDENTITY || undefined,
      cliPath: e.TEMPORAL_CLI_PATH,
      tls: e.TEMPORAL_TLS,
      tlsCertPath: e.TEMPORAL_TLS_CERT_PATH,
      tlsKeyPath: e.TEMPORAL_TLS_KEY_PATH,
      apiKey: e.TEMPORAL_API_KEY,
      devPort: e.CPA_DEV_PORT,
      devUiPort: e.CPA_DEV_UI_PORT,
      cliOutageSeconds: e.CPA_CLI_OUTAGE_SECONDS,
    },
    s3: {
      endpoint: e.CPA_S3_ENDPOINT,
      region: e.CPA_S3_REGION,
      accessKeyId: e.CPA_S3_ACCESS_KEY_ID,
      secretAccessKey: e.CPA_S3_SECRET_ACCESS_KEY,
      urlStyle: e.CPA_S3_URL_STYLE,
    },
    cassandra,
    logLevel: e.CPA_LOG_LEVEL,
    schedule: { timeZone: e.CPA_SCHEDULE_TIMEZONE },
    lakeLease: { ttlSeconds: e.CPA_LAKE_LEASE_SECONDS },
    streaming: {
      watchEnabled: e.CPA_WATCH_ENABLED,
      watchIntervalMs: Math.round(e.CPA_WATCH_INTERVAL_SECONDS * 1000),
      watchConcurrency: e.CPA_WATCH_CONCURRENCY,
      watermarkLagMinutes: e.CPA_SPEED_WATERMARK_LAG_MINUTES,
      alertCost5minUsd: e.CPA_ALERT_COST_5MIN_USD,
      alertWebhookUrl: e.CPA_ALERT_WEBHOOK_URL,
    },
    openLineageUrl: e.OPENLINEAGE_URL,
  };
}

/** Joins URI/path segments with '/', for both local paths and s3:// URIs. */
export function joinUri(root: string, ...parts: string[]): string {
  const cleaned = parts.filter((p) => p !== '').map((p) => p.replace(/^\/+|\/+$/g, ''));
  return [root.replace(/\/+$/, ''), ...cleaned].join('/');
}

/**
 * Where `scripts/tools.sh duckdb` puts the DuckDB extensions (ducklake, sqlite_scanner, postgres_scanner, httpfs):
 * used when CPA_DUCKDB_EXTENSION_DIR is unset and the directory exists, so the embedded default needs no setting.
 */
function defaultExtensionDir(cacheDir: string | undefined): string | undefined {
  const home = process.env.HOME;
  const cache = cacheDir ?? (home ? path.join(home, '.cache', 'cpa') : undefined);
  const dir = cache && path.join(cache, 'duckdb_extensions');
  return dir && fs.existsSync(dir) ? dir : undefined;
}

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

function stripEmpty(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v !== '') out[k] = v;
  return out;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
