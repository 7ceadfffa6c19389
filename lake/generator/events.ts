/**
 * The usage events stream: JSONL micro-batches, one file at a time, never the whole stream in memory.
 *
 * File k covers the k-th slice of the time range (so files arrive roughly in time order, as a live feed would)
 * and its lines are in random time order within the slice. Lines are rendered by hand rather than with
 * JSON.stringify because the reference was written by Python (`", "` / `": "` separators, `124.0`, `8.9e-05`).
 */
import * as format from './format';
import { IdMinter, ORPHAN_ID_OFFSET } from './ids';
import type { ResourceRef } from './batch';
import type { GeneratorPlan } from './plan';
import { Rng } from './prng';
import * as P from './profile';
import type { Metric, Region, Service } from './profile';
import {
  BAD_TIMESTAMPS,
  EVENT_QUIRK_DRAW,
  MALFORMED_KINDS,
  MISSING_REQUIRED_KINDS,
  SERVICE_VARIANTS,
  UNCASTABLE_VALUES,
  UNKNOWN_REGIONS,
  UNKNOWN_SERVICES,
  regionVariants,
  type EventQuirk,
  type QuirkCounts,
} from './quirks';

// Module-level copies of imported names: the hot loop then reads plain bindings instead of the getters that
// CommonJS transpilers (tsx, swc) put on every imported name — measured at ~7 % of generation time.
const { MinuteClock, pyFixed, round } = format;
const {
  CARBON_PER_UNIT,
  COST_NOISE,
  GENAI_TOKENS,
  METRICS,
  METRIC_UNITS,
  METRIC_VALUES,
  REFERENCE,
  SPIKE_FACTOR,
  UNIT_NULL_RATE,
  UNIT_PRICE,
  VALUE_NULL_RATE,
} = P;

const MINUTES_PER_DAY = 1440;
/** Watermark lag of the speed layer (SPEC §7). */
const WATERMARK_LAG_MINUTES = 120;
/**
 * Late events sit at least this far below the watermark, so they stay late even if the pipeline computes the
 * previous files' maximum over kept events only (a quarantined event may hold the maximum by a few minutes).
 */
const LATE_MARGIN_MINUTES = 30;
/** Duplicates copy clean lines from recent files; the pool is bounded so memory does not grow with scale. */
const DUPLICATE_POOL_SIZE = 256;
const DUPLICATE_POOL_PER_FILE = 16;
const ORPHAN_ORG_COUNT = 5;

/**
 * One event before rendering. `undefined` = key absent from the JSON object, `null` = JSON null. Every string is
 * from a fixed ASCII vocabulary or an id, so it needs no JSON escaping.
 */
interface EventDraft {
  eventId: string | undefined;
  timestamp: string | undefined;
  orgId: string | null | undefined;
  resourceId: string | null;
  service: string | undefined;
  region: string | null;
  metric: Metric;
  value: number | string | null;
  unit: string | null;
  cost: number | null | undefined;
  schemaVersion: 1 | 2;
  /** Pre-rendered: Python wrote an integer `0` when there was no usage. */
  carbonKg: string | undefined;
  genaiTokens: number | undefined;
}

/** Numbers in events (value, cost) have at most 4 decimals. */
function jsonValue(v: string | number | null): string {
  if (v === null) return 'null';
  return typeof v === 'string' ? `"${v}"` : pyFixed(v, 4);
}

function toCarbon(value: number): string {
  return pyFixed(round(value * CARBON_PER_UNIT, 6), 6);
}

/** Renders an event with the reference's key order and separators. */
export function renderEvent(e: EventDraft): string {
  // Plain concatenation: this runs millions of times and an array + join costs a third more.
  let s = '{';
  if (e.eventId !== undefined) s += `"event_id": "${e.eventId}", `;
  if (e.timestamp !== undefined) s += `"timestamp": "${e.timestamp}", `;
  if (e.orgId !== undefined) s += `"org_id": ${jsonValue(e.orgId)}, `;
  s += `"resource_id": ${jsonValue(e.resourceId)}, `;
  if (e.service !== undefined) s += `"service": "${e.service}", `;
  s += `"region": ${jsonValue(e.region)}, "metric": "${e.metric}", "value": ${jsonValue(e.value)}, `;
  s += `"unit": ${jsonValue(e.unit)}, `;
  if (e.cost !== undefined) s += `"cost_usd_increment": ${jsonValue(e.cost)}, `;
  s += `"schema_version": ${e.schemaVersion}`;
  if (e.carbonKg !== undefined) s += `, "carbon_kg": ${e.carbonKg}`;
  if (e.genaiTokens !== undefined) s += `, "genai_tokens": ${e.genaiTokens}`;
  return `${s}}`;
}

function latentValue(rng: Rng, metric: Metric): number {
  const spec = METRIC_VALUES[metric];
  return round(Math.max(spec.min, spec.mean + spec.sd * rng.normal()), spec.dp);
}

function eventCost(rng: Rng, value: number, service: Service): number {
  const noise = Math.min(COST_NOISE.max, Math.max(COST_NOISE.min, 1 + COST_NOISE.sd * rng.normal()));
  return round(value * UNIT_PRICE[service] * noise, 4);
}

/** Garbage that can never be a JSON object and contains no byte any line splitter treats as a line break. */
function garbageLine(rng: Rng, binary: boolean): string {
  const length = rng.intBetween(16, 120);
  const chars: string[] = [binary ? String.fromCharCode(rng.intBetween(0xa0, 0xff)) : rng.pick(['#', '<', '%', '@'])];
  for (let i = 1; i < length; i++) {
    if (binary) {
      // 0x01–0x08, 0x0e–0x1b and 0x80–0xff without 0x85 (NEL): no \n, \r, \v, \f, file/group separators or NUL.
      const r = rng.int(8 + 14 + 127);
      const code = r < 8 ? 1 + r : r < 22 ? 0x0e + (r - 8) : 0x80 + (r - 22);
      chars.push(String.fromCharCode(code >= 0x85 ? code + 1 : code));
    } else {
      chars.push(String.fromCharCode(rng.intBetween(0x20, 0x7e)));
    }
  }
  return chars.join('');
}

function malformedLine(rng: Rng, cleanLine: string): string {
  switch (rng.pick(MALFORMED_KINDS)) {
    case 'truncated':
      return cleanLine.slice(0, rng.intBetween(8, cleanLine.length - 2));
    case 'json_array':
      return `[${cleanLine}]`;
    case 'garbage_text':
      return garbageLine(rng, false);
    case 'garbage_binary':
      return garbageLine(rng, true);
  }
}

function dropRequiredField(rng: Rng, e: EventDraft): void {
  switch (rng.pick(MISSING_REQUIRED_KINDS)) {
    case 'org_id_absent':
      e.orgId = undefined;
      return;
    case 'org_id_null':
      e.orgId = null;
      return;
    case 'org_id_empty':
      e.orgId = '';
      return;
    case 'cost_null':
      e.cost = null;
      return;
    case 'cost_absent':
      e.cost = undefined;
      return;
    case 'service_absent':
      e.service = undefined;
      e.genaiTokens = undefined;
      return;
    case 'service_blank':
      e.service = '  ';
      e.genaiTokens = undefined;
      return;
    case 'event_id_absent':
      e.eventId = undefined;
      return;
    case 'timestamp_absent':
      e.timestamp = undefined;
      return;
  }
}

export interface EventFile {
  /** File content; characters above 0x7f only occur in garbage lines, so it is written as latin1 bytes. */
  readonly text: string;
}

export interface EventStreamTotals {
  linesWritten: number;
  distinctEventIds: number;
}

/**
 * Generates the events files in order. Stateful across files on purpose: late events and duplicates are defined
 * relative to the files already emitted (previous maximum timestamp, earlier clean lines).
 */
export class EventStream {
  private readonly clock: format.MinuteClock;
  private readonly eventIds: IdMinter;
  private readonly orphanResources: IdMinter;
  private readonly orphanOrgIds: readonly string[];
  private readonly totalMinutes: number;
  private readonly v2FromMinute: number;
  private readonly duplicatePool: string[] = [];
  private duplicatePoolNext = 0;
  private nextEventIndex = 0;
  private nextOrphanResource = 0;
  /** Maximum parseable timestamp (minutes from start) over all files emitted so far. */
  private previousMax = Number.NEGATIVE_INFINITY;
  readonly totals: EventStreamTotals = { linesWritten: 0, distinctEventIds: 0 };

  constructor(
    private readonly plan: GeneratorPlan,
    private readonly resources: readonly ResourceRef[],
    private readonly counts: QuirkCounts,
  ) {
    this.clock = new MinuteClock(plan.startDay);
    this.eventIds = new IdMinter('evt_', 6, new Rng(plan.seed, 'ids/event'));
    this.orphanResources = new IdMinter('res_', 4, new Rng(plan.seed, 'ids/resource'));
    const orphanOrgs = new IdMinter('org_', 4, new Rng(plan.seed, 'ids/org'));
    this.orphanOrgIds = Array.from({ length: ORPHAN_ORG_COUNT }, (_, i) => orphanOrgs.mint(ORPHAN_ID_OFFSET + i));
    this.totalMinutes = plan.days * MINUTES_PER_DAY;
    this.v2FromMinute = REFERENCE.schemaV2FromDayIndex * MINUTES_PER_DAY;
  }

  /** Lines in file k: the events spread as evenly as integers allow. */
  linesInFile(k: number): number {
    const { events, files } = this.plan;
    return Math.floor(((k + 1) * events) / files) - Math.floor((k * events) / files);
  }

  generateFile(k: number): EventFile {
    const rng = new Rng(this.plan.seed, `events/${k}`);
    const sliceStart = Math.floor((k * this.totalMinutes) / this.plan.files);
    const sliceLength = Math.max(1, Math.floor(((k + 1) * this.totalMinutes) / this.plan.files) - sliceStart);
    const n = this.linesInFile(k);
    const lines: string[] = [];
    const cleanLines: string[] = [];
    let fileMax = this.previousMax;
    for (let i = 0; i < n; i++) {
      let quirk = rng.draw(EVENT_QUIRK_DRAW);
      if (quirk === 'duplicate_event_id') {
        if (this.duplicatePool.length > 0) {
          lines.push(rng.pick(this.duplicatePool));
          this.counts.duplicate_event_id++;
          continue;
        }
        quirk = 'none'; // nothing earlier to duplicate in the first file
      }
      let minute = sliceStart + rng.int(sliceLength);
      if (quirk === 'late_events') {
        const late = this.lateMinute(rng);
        if (late === undefined) quirk = 'none';
        else minute = late;
      }
      const draft = this.cleanEvent(rng, minute, quirk === 'none');
      const line = this.applyQuirk(rng, draft, quirk);
      lines.push(line);
      if (quirk === 'none') cleanLines.push(line);
      else this.counts[quirk]++;
      if (quirk !== 'malformed_json' && draft.eventId !== undefined) this.totals.distinctEventIds++;
      const parseableTime = quirk !== 'malformed_json' && quirk !== 'bad_timestamp' && draft.timestamp !== undefined;
      if (parseableTime && minute > fileMax) fileMax = minute;
    }
    this.previousMax = fileMax;
    this.addToDuplicatePool(rng, cleanLines);
    this.totals.linesWritten += n;
    return { text: lines.length > 0 ? `${lines.join('\n')}\n` : '' };
  }

  /**
   * A timestamp 1–3 days before the previous files' maximum (at least 2 h 30 min before it when the stream is
   * younger than a day), or undefined when the stream has no history yet.
   */
  private lateMinute(rng: Rng): number | undefined {
    if (!Number.isFinite(this.previousMax)) return undefined;
    const latest = this.previousMax - WATERMARK_LAG_MINUTES - LATE_MARGIN_MINUTES;
    const earliest = Math.max(0, this.previousMax - 3 * MINUTES_PER_DAY);
    if (latest < earliest) return undefined;
    const oneDayBefore = this.previousMax - MINUTES_PER_DAY;
    return rng.intBetween(earliest, oneDayBefore >= earliest ? oneDayBefore : latest);
  }

  /** A well-formed event; only events without a quirk may have a null value (the feed's ordinary gaps). */
  private cleanEvent(rng: Rng, minute: number, allowNullValue: boolean): EventDraft {
    const resource = rng.pick(this.resources);
    const metric = rng.draw(METRICS);
    const value = latentValue(rng, metric);
    const cost = eventCost(rng, value, resource.service);
    const schemaVersion = minute >= this.v2FromMinute ? 2 : 1;
    const valueIsNull = allowNullValue && rng.chance(VALUE_NULL_RATE);
    const unitIsNull = valueIsNull && rng.chance(UNIT_NULL_RATE);
    let carbonKg: string | undefined;
    if (schemaVersion === 2) carbonKg = valueIsNull || value === 0 ? '0' : toCarbon(value);
    const genaiTokens =
      schemaVersion === 2 && resource.service === 'genai'
        ? Math.max(0, Math.round(GENAI_TOKENS.mean + GENAI_TOKENS.sd * rng.normal()))
        : undefined;
    return {
      eventId: this.eventIds.mint(this.nextEventIndex++),
      timestamp: this.clock.format(minute),
      orgId: resource.orgId,
      resourceId: resource.id,
      service: resource.service,
      region: resource.region,
      metric,
      value: valueIsNull ? null : value,
      unit: unitIsNull ? null : METRIC_UNITS[metric],
      cost,
      schemaVersion,
      carbonKg,
      genaiTokens,
    };
  }

  /** Requests events for cost quirks: their cost (value ≈ 120) is large enough for a spike or refund to show. */
  private asRequests(rng: Rng, e: EventDraft): void {
    const value = latentValue(rng, 'requests');
    const service = e.service as Service;
    e.metric = 'requests';
    e.value = value;
    e.unit = METRIC_UNITS.requests;
    e.cost = eventCost(rng, value, service);
    if (e.carbonKg !== undefined) e.carbonKg = toCarbon(value);
  }

  private applyQuirk(rng: Rng, e: EventDraft, quirk: EventQuirk | 'none'): string {
    switch (quirk) {
      case 'none':
      case 'late_events':
      case 'duplicate_event_id':
        break;
      case 'malformed_json':
        return malformedLine(rng, renderEvent(e));
      case 'missing_required':
        dropRequiredField(rng, e);
        break;
      case 'bad_timestamp':
        e.timestamp = rng.pick(BAD_TIMESTAMPS);
        break;
      case 'unknown_service':
        e.service = rng.pick(UNKNOWN_SERVICES);
        e.genaiTokens = undefined;
        break;
      case 'negative_cost':
        this.asRequests(rng, e);
        e.cost = -(e.cost as number);
        break;
      case 'small_negative_cost':
        e.cost = -rng.intBetween(1, 100) / 10_000; // [-0.01, -0.0001]: kept by silver
        break;
      case 'value_numeric_string':
        e.value = pyFixed(e.value as number, 4);
        break;
      case 'value_cast_failed':
        e.value = rng.pick(UNCASTABLE_VALUES);
        break;
      case 'unit_imputed':
        e.unit = null;
        break;
      case 'service_variant_spelling':
        e.service = rng.pick(SERVICE_VARIANTS[e.service as Service]);
        break;
      case 'region_variant_spelling':
        e.region = rng.pick(regionVariants(e.region as Region));
        break;
      case 'region_unknown':
        e.region = rng.pick(UNKNOWN_REGIONS);
        break;
      case 'orphan_org_events':
        // No resource: decisions.md defines a NULL resource as not orphan, so the event carries one flag only.
        e.orgId = rng.pick(this.orphanOrgIds);
        e.resourceId = null;
        break;
      case 'orphan_resource_events':
        e.resourceId = this.orphanResources.mint(ORPHAN_ID_OFFSET + this.nextOrphanResource++);
        break;
      case 'cost_spikes':
        this.asRequests(rng, e);
        e.cost = round((e.cost as number) * rng.between(SPIKE_FACTOR.min, SPIKE_FACTOR.max), 4);
        break;
    }
    return renderEvent(e);
  }

  /** Keeps a bounded ring of clean lines from emitted files; duplicates are exact copies of these. */
  private addToDuplicatePool(rng: Rng, cleanLines: readonly string[]): void {
    for (let i = 0; i < DUPLICATE_POOL_PER_FILE && cleanLines.length > 0; i++) {
      const line = rng.pick(cleanLines);
      if (this.duplicatePool.length < DUPLICATE_POOL_SIZE) this.duplicatePool.push(line);
      else this.duplicatePool[this.duplicatePoolNext] = line;
      this.duplicatePoolNext = (this.duplicatePoolNext + 1) % DUPLICATE_POOL_SIZE;
    }
  }
}
