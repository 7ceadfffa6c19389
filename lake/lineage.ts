import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/env';
import { joinUri } from '../config/env';
import { CSV_CONTRACTS } from '../config/contracts';
import { SERVING_TABLES } from '../config/serving';
import type { ColumnDef } from '../config/contracts';
import { checkLakeOutsideLanding } from './preflight';
import { isS3, storageFor } from './storage';
import { CSV_BRONZE_TABLES, GOLD_MARTS, SILVER_MODELS } from './tables';
import type { Dependency } from './tables';

/**
 * OpenLineage (SPEC §13): the run events every pipeline step emits, and the table-level graph `cpa lineage` prints.
 * Events follow OpenLineage spec 2-0-2 and the facet versions below — the versions of the JSON Schemas the tests
 * validate against (scripts/tools.sh openlineage). Building an event is pure; {@link emitLineage} writes it under
 * `<lake>/_meta/lineage/` and POSTs it to OPENLINEAGE_URL, in the background, and never throws.
 */

/** Who produced the events (OpenLineage `producer`/`_producer`): an identifier of this project, not a fetchable page. */
export const PRODUCER = 'https://cloud-provider-analytics.invalid/cpa';
/** Job namespace of every step and of the parent (Temporal workflow) jobs. */
export const JOB_NAMESPACE = 'cpa';

const SPEC = 'https://openlineage.io/spec';
/** The `schemaURL` / `_schemaURL` of everything we emit: spec 2-0-2 and its facets' own versions. */
export const SCHEMA_URLS = {
  runEvent: `${SPEC}/2-0-2/OpenLineage.json#/$defs/RunEvent`,
  parent: `${SPEC}/facets/1-1-0/ParentRunFacet.json#/$defs/ParentRunFacet`,
  errorMessage: `${SPEC}/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet`,
  jobType: `${SPEC}/facets/2-0-3/JobTypeJobFacet.json#/$defs/JobTypeJobFacet`,
  schema: `${SPEC}/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet`,
  outputStatistics: `${SPEC}/facets/1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet`,
  dataQualityMetrics: `${SPEC}/facets/1-0-1/DataQualityMetricsDatasetFacet.json#/$defs/DataQualityMetricsDatasetFacet`,
} as const;

export type EventType = 'START' | 'COMPLETE' | 'FAIL';

export interface DatasetRef {
  namespace: string;
  name: string;
}

/** What one step reads and writes; `table` is the lake table whose schema and figures the COMPLETE event carries. */
export interface StepLineage {
  /** Job name = the step name of the Temporal UI and the metrics (`silver.billing`). */
  job: string;
  inputs: DatasetRef[];
  outputs: DatasetRef[];
  table?: { layer: string; table: string };
  processingType: 'BATCH' | 'STREAMING';
}

/** The figures of a finished step that become output facets (StepMetrics fits). */
export interface StepFigures {
  rowsOut: number;
  nullRates: Record<string, number>;
}

// --- ids and names ---------------------------------------------------------------------------------------------

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Fixed namespace of our name-based UUIDs (a v4 drawn once). */
const CPA_UUID_NAMESPACE = Buffer.from('6f1c2a4e8b0d4c5a9e3f7a1b2c3d4e5f', 'hex');

/** A name-based UUID (RFC 4122 version 5, SHA-1): the same parts always give the same id. */
export function uuidV5(...parts: string[]): string {
  const h = crypto.createHash('sha1').update(CPA_UUID_NAMESPACE).update(parts.join('\u0000')).digest();
  h[6] = (h[6] & 0x0f) | 0x50;
  h[8] = (h[8] & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** A Temporal run id as it is when it is a UUID (it always is on a server), else a UUID derived from it. */
export function asUuid(id: string): string {
  return UUID_RE.test(id) ? id.toLowerCase() : uuidV5('id', id);
}

/**
 * The OpenLineage run id of one step: derived from the workflow run and the activity id, so every attempt of one
 * activity (a retry) reports on one OpenLineage run. Outside Temporal the step name stands in for the activity id.
 */
export function stepRunId(workflowRunId: string, activityId: string): string {
  return uuidV5('step', workflowRunId, activityId);
}

/** Dataset namespace of a lake or landing root: the s3:// URI, or `file://` + the absolute local path. */
export function storageNamespace(root: string): string {
  return isS3(root) ? root.replace(/\/+$/, '') : `file://${path.resolve(root)}`;
}

const LANDING_EVENTS = 'usage_events_stream';

/** What each kind of step reads and writes, from the table registry (lake/tables.ts) — no second graph. */
export function stepLineage(
  step:
    | { kind: 'csv'; table: string }
    | { kind: 'events' }
    | { kind: 'speed' }
    | { kind: 'model'; layer: 'silver' | 'gold'; table: string }
    | { kind: 'gate'; tables: string[] }
    | { kind: 'serving' },
  roots: { lake: string; landing: string },
  config: Pick<Config, 'cassandra'>,
): StepLineage {
  const lake = (layer: string, table: string): DatasetRef => ({
    namespace: storageNamespace(roots.lake),
    name: `${layer}.${table}`,
  });
  const landing = (name: string): DatasetRef => ({ namespace: storageNamespace(roots.landing), name });
  const batch = 'BATCH' as const;
  switch (step.kind) {
    case 'csv': {
      const contract = CSV_CONTRACTS.find((c) => c.bronze === step.table);
      const t = { layer: 'bronze', table: step.table };
      return {
        job: `bronze.${step.table}`,
        inputs: [landing(contract?.file ?? step.table)],
        outputs: [lake('bronze', step.table)],
        table: t,
        processingType: batch,
      };
    }
    case 'events':
      return {
        job: 'bronze.usage_events',
        inputs: [landing(LANDING_EVENTS)],
        outputs: [lake('bronze', 'usage_events'), lake('quarantine', 'usage_events')],
        table: { layer: 'bronze', table: 'usage_events' },
        processingType: batch,
      };
    case 'speed':
      return {
        job: 'speed.windows',
        inputs: [landing(LANDING_EVENTS)],
        outputs: ['windows', 'late_events', 'alerts'].map((t) => lake('speed', t)),
        table: { layer: 'speed', table: 'windows' },
        processingType: 'STREAMING',
      };
    case 'model': {
      const model = (step.layer === 'silver' ? SILVER_MODELS : GOLD_MARTS).find((m) => m.table === step.table);
      const outputs = [lake(step.layer, step.table)];
      if (step.layer === 'silver') outputs.push(lake('quarantine', step.table));
      return {
        job: `${step.layer}.${step.table}`,
        inputs: (model?.inputs ?? []).map((i) => lake(i.layer, i.table)),
        outputs,
        table: { layer: step.layer, table: step.table },
        processingType: batch,
      };
    }
    case 'gate':
      return {
        job: 'quality.gate',
        inputs: [...new Set(step.tables)].map((t) => lake('silver', t)),
        outputs: [],
        processingType: batch,
      };
    case 'serving': {
      const c = config.cassandra;
      return {
        job: 'serving.load',
        inputs: [...new Set(SERVING_TABLES.map((t) => t.source))].map((m) => lake('gold', m)),
        outputs: c
          ? SERVING_TABLES.map((t) => ({
              namespace: `cassandra://${c.contactPoints[0]}`,
              name: `${c.keyspace}.${t.name}`,
            }))
          : [],
        processingType: batch,
      };
    }
  }
}

// --- events ------------------------------------------------------------------------------------------------------

type Facet = Record<string, unknown> & { _producer: string; _schemaURL: string };
const facet = (schemaURL: string, body: Record<string, unknown>): Facet => ({
  _producer: PRODUCER,
  _schemaURL: schemaURL,
  ...body,
});

export interface RunEventInput {
  eventType: EventType;
  eventTime: string;
  runId: string;
  step: StepLineage;
  parent: { runId: string; job: string };
  /** FAIL: the error's one-line message (and its stack, when there is one). */
  error?: { message: string; stack?: string };
  /** COMPLETE: the step's figures and the output table's columns (absent = not read). */
  figures?: StepFigures;
  columns?: ColumnDef[];
}

/** An OpenLineage RunEvent (pure). Output facets only on COMPLETE, the error facet only on FAIL. */
export function runEvent(e: RunEventInput): Record<string, unknown> {
  const runFacets: Record<string, Facet> = {
    parent: facet(SCHEMA_URLS.parent, {
      run: { runId: e.parent.runId },
      job: { namespace: JOB_NAMESPACE, name: e.parent.job },
    }),
  };
  if (e.eventType === 'FAIL' && e.error) {
    runFacets.errorMessage = facet(SCHEMA_URLS.errorMessage, {
      message: e.error.message,
      programmingLanguage: 'TypeScript',
      ...(e.error.stack ? { stackTrace: e.error.stack } : {}),
    });
  }
  const primary = e.step.table ? `${e.step.table.layer}.${e.step.table.table}` : undefined;
  const outputs = e.step.outputs.map((d) => {
    if (e.eventType !== 'COMPLETE' || d.name !== primary) return { ...d };
    const facets: Record<string, Facet> = {};
    if (e.columns && e.columns.length > 0) {
      facets.schema = facet(SCHEMA_URLS.schema, {
        fields: e.columns.map((c, i) => ({ name: c.name, type: c.type, ordinal_position: i + 1 })),
      });
    }
    if (!e.figures) return Object.keys(facets).length ? { ...d, facets } : { ...d };
    facets.dataQualityMetrics = facet(SCHEMA_URLS.dataQualityMetrics, dataQuality(e.figures));
    return {
      ...d,
      facets,
      outputFacets: { outputStatistics: facet(SCHEMA_URLS.outputStatistics, { rowCount: e.figures.rowsOut }) },
    };
  });
  return {
    eventType: e.eventType,
    eventTime: e.eventTime,
    producer: PRODUCER,
    schemaURL: SCHEMA_URLS.runEvent,
    run: { runId: e.runId, facets: runFacets },
    job: {
      namespace: JOB_NAMESPACE,
      name: e.step.job,
      facets: {
        jobType: facet(SCHEMA_URLS.jobType, {
          processingType: e.step.processingType,
          integration: 'CPA',
          jobType: 'TASK',
        }),
      },
    },
    inputs: e.step.inputs.map((d) => ({ ...d })),
    outputs,
  };
}

/**
 * Data-quality facet of the rows a step wrote: rowCount = rows out, and per tracked column (the registry's key
 * columns, whose null rate every step measures) nullCount = round(null rate × rows out). The rate is rounded to
 * 6 decimals, so on more than 10⁶ rows the count may be off by a few.
 */
export function dataQuality(f: StepFigures): Record<string, unknown> {
  return {
    rowCount: f.rowsOut,
    columnMetrics: Object.fromEntries(
      Object.entries(f.nullRates).map(([c, r]) => [c, { nullCount: Math.round(r * f.rowsOut) }]),
    ),
  };
}

// --- writing and posting --------------------------------------------------------------------------------------

/** Where an event is written: `<lake>/_meta/lineage/<pipeline run id>/<eventTime>-<job>-<EVENT>.json`. */
export function lineageUri(lakeRoot: string, pipelineRunId: string, event: Record<string, unknown>): string {
  const safe = (s: string) => s.replace(/[^A-Za-z0-9._-]/g, '_');
  const time = String(event.eventTime).replace(/:/g, '-');
  const job = (event.job as { name: string }).name;
  return joinUri(
    lakeRoot,
    '_meta',
    'lineage',
    safe(pipelineRunId),
    `${time}-${safe(job)}-${String(event.eventType)}.json`,
  );
}

/** How long a POST to OPENLINEAGE_URL may take before it is abandoned. */
export const POST_TIMEOUT_MS = 2000;
const WARN_EVERY_MS = 60_000;

const pending = new Set<Promise<void>>();
/** Per OpenLineage run, the previous event's delivery: a run's COMPLETE is POSTed after its START. */
const chains = new Map<string, Promise<void>>();
let lastWarn = 0;
let suppressed = 0;

export interface EmitOptions {
  config: Config;
  lakeRoot: string;
  pipelineRunId: string;
  warn: (message: string) => void;
  /**
   * Resolves (once the step has settled) to whether the event may be written into the lake: never into a lake the
   * step refused (inside the landing, not created yet), so lineage creates nothing a step would not have.
   */
  fileGate: Promise<boolean>;
}

/**
 * POSTs the event (built by `build`, which may read the lake) to OPENLINEAGE_URL and, once `fileGate` allows it,
 * writes it to `_meta/lineage/` — in the background: returns at once, never rejects. A failure logs one warning
 * line (for POSTs at most one a minute, counting the ones left out). {@link flushLineage} waits for what is in flight.
 */
export function emitLineage(opts: EmitOptions, runId: string, build: () => Promise<Record<string, unknown>>): void {
  const prev = chains.get(runId) ?? Promise.resolve();
  const job = prev.then(async () => {
    let event: Record<string, unknown>;
    try {
      event = await build();
    } catch (e) {
      opts.warn(`lineage event not built: ${oneLine(e)}`);
      return;
    }
    const body = JSON.stringify(event);
    const uri = lineageUri(opts.lakeRoot, opts.pipelineRunId, event);
    const write = async (): Promise<void> => {
      if (!(await opts.fileGate.catch(() => false))) return;
      await storageFor(opts.lakeRoot, opts.config)
        .writeBytes(uri, body)
        .catch((e: unknown) => opts.warn(`lineage event not written to ${uri}: ${oneLine(e)}`));
    };
    await Promise.all([
      write(),
      opts.config.openLineageUrl ? post(opts.config.openLineageUrl, body, opts.warn) : undefined,
    ]);
  });
  chains.set(runId, job);
  pending.add(job);
  void job.finally(() => {
    pending.delete(job);
    if (chains.get(runId) === job) chains.delete(runId);
  });
}

/**
 * Whether lineage files may go into this lake: it is outside the landing and (local) already has its `_meta/`
 * directory, which attaching the lake creates — a lake is never created just to hold lineage.
 */
export function lakeTakesLineage(lakeRoot: string, landingRoot: string): boolean {
  try {
    checkLakeOutsideLanding(lakeRoot, landingRoot);
  } catch {
    return false;
  }
  return isS3(lakeRoot) || fs.existsSync(path.join(lakeRoot, '_meta'));
}

async function post(base: string, body: string, warn: (m: string) => void): Promise<void> {
  const url = `${base.replace(/\/+$/, '')}/api/v1/lineage`;
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
      signal: AbortSignal.timeout(POST_TIMEOUT_MS),
    });
    await res.arrayBuffer().catch(() => undefined);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
  } catch (e) {
    const now = Date.now();
    if (now - lastWarn < WARN_EVERY_MS) {
      suppressed += 1;
      return;
    }
    const more = suppressed > 0 ? ` (${suppressed} more failed since the last warning)` : '';
    lastWarn = now;
    suppressed = 0;
    warn(`lineage event not sent to ${printable(url)}: ${oneLine(e)}${more}`);
  }
}

/**
 * Waits until every lineage event emitted so far is written and posted (or given up on), at most `maxMs`.
 * Resolves true when nothing is left in flight.
 */
export async function flushLineage(maxMs = Infinity): Promise<boolean> {
  const deadline = Date.now() + maxMs;
  while (pending.size > 0) {
    const left = deadline - Date.now();
    if (left <= 0) return false;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((r) => {
      if (Number.isFinite(left)) timer = setTimeout(r, left);
    });
    await Promise.race([Promise.all([...pending]), timeout]);
    clearTimeout(timer);
  }
  return true;
}

/** How long a stopping worker waits for lineage events still in flight (two POST timeouts: a START, a COMPLETE). */
export const LINEAGE_FLUSH_MS = 2 * POST_TIMEOUT_MS + 1000;

/** The URL without user info or query: either may carry a token, and secrets are never printed. */
function printable(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(OPENLINEAGE_URL)';
  }
}

function oneLine(e: unknown): string {
  const err = e as { message?: unknown; cause?: { message?: unknown } } | null;
  const msg = typeof err?.message === 'string' ? err.message : String(e);
  const cause = typeof err?.cause?.message === 'string' ? ` (${err.cause.message})` : '';
  return `${msg.split('\n')[0]}${cause}`;
}

// --- the table graph (`cpa lineage`) -------------------------------------------------------------------------

export interface GraphEdge {
  from: string;
  to: string;
  /** Which partitions of `from` a partition of `to` reads: `same`, `window:N` / `window:baseline`, `all`. */
  dep: string;
}

const depLabel = (d: Dependency): string => (d.kind === 'window' ? `window:${d.days}` : d.kind);

/**
 * Every table-level edge: landing file → bronze, the registry's model inputs (bronze/silver → silver/gold) and
 * gold → serving (Cassandra). Nodes are named `layer.table`, landing files `landing.<file>`.
 */
export function tableGraph(): GraphEdge[] {
  const edges: GraphEdge[] = [];
  for (const t of CSV_BRONZE_TABLES) {
    const file = CSV_CONTRACTS.find((c) => c.bronze === t)?.file ?? t;
    edges.push({ from: `landing.${file}`, to: `bronze.${t}`, dep: 'all' });
  }
  edges.push({ from: `landing.${LANDING_EVENTS}`, to: 'bronze.usage_events', dep: 'all' });
  for (const m of [...SILVER_MODELS, ...GOLD_MARTS]) {
    for (const i of m.inputs)
      edges.push({ from: `${i.layer}.${i.table}`, to: `${m.layer}.${m.table}`, dep: depLabel(i.dep) });
  }
  for (const s of SERVING_TABLES) edges.push({ from: `gold.${s.source}`, to: `serving.${s.name}`, dep: 'all' });
  return edges;
}

/** Every node of the graph, sorted. */
export function graphTables(edges = tableGraph()): string[] {
  return [...new Set(edges.flatMap((e) => [e.from, e.to]))].sort();
}

/** The node a user named: `layer.table`, or a bare table name when one layer has it (gold marts, serving tables). */
export function resolveTable(name: string, edges = tableGraph()): string {
  const all = graphTables(edges);
  if (all.includes(name)) return name;
  const matches = all.filter((t) => t.slice(t.indexOf('.') + 1) === name);
  if (matches.length === 1) return matches[0];
  if (matches.length > 1) throw new Error(`table '${name}' is ambiguous: say ${matches.join(' or ')}`);
  throw new Error(`unknown table '${name}': known tables are ${all.join(', ')}`);
}

export interface GraphNode {
  table: string;
  /** How this node relates to its parent in the tree (the edge's dependency). */
  dep?: string;
  children: GraphNode[];
}

/** The tree of what `table` is computed from (`up`) or what is computed from it (`down`). */
export function lineageTree(table: string, direction: 'up' | 'down', edges = tableGraph()): GraphNode {
  const walk = (t: string, dep: string | undefined, seen: Set<string>): GraphNode => {
    const next = edges
      .filter((e) => (direction === 'up' ? e.to === t : e.from === t))
      .map((e) => ({ table: direction === 'up' ? e.from : e.to, dep: e.dep }))
      .filter((n) => !seen.has(n.table))
      .sort((a, b) => a.table.localeCompare(b.table));
    const children = next.map((n) => walk(n.table, n.dep, new Set([...seen, t])));
    return dep === undefined ? { table: t, children } : { table: t, dep, children };
  };
  return walk(table, undefined, new Set());
}

/** A tree as text, one node a line (`├── silver.orgs  [all]`). */
export function renderTree(root: GraphNode): string {
  const lines = [root.table];
  const walk = (n: GraphNode, prefix: string): void => {
    n.children.forEach((c, i) => {
      const last = i === n.children.length - 1;
      lines.push(`${prefix}${last ? '└── ' : '├── '}${c.table}${c.dep ? `  [${c.dep}]` : ''}`);
      walk(c, `${prefix}${last ? '    ' : '│   '}`);
    });
  };
  walk(root, '');
  return lines.join('\n');
}
