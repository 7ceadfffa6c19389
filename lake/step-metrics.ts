/**
 * Step figures that are pure arithmetic, shared by activities and workflow code (no Node built-ins here): null rates
 * from exact counts, and one table's figures from the activities that built it chunk by chunk.
 */
import type { StepMetrics } from '../activities/common';

/** Rows and null counts per column of a table (or of a part of it): what null rates are computed from. */
export interface NullCounts {
  rows: number;
  nulls: Record<string, number>;
}

/** The null rate per column (6 decimals, 0 for no rows) of one table read in parts. */
export function ratesOf(parts: NullCounts[]): Record<string, number> {
  const rows = parts.reduce((a, p) => a + p.rows, 0);
  const out: Record<string, number> = {};
  for (const c of Object.keys(parts[0]?.nulls ?? {})) {
    const n = parts.reduce((a, p) => a + (p.nulls[c] ?? 0), 0);
    out[c] = rows === 0 ? 0 : Math.round((n / rows) * 1e6) / 1e6;
  }
  return out;
}

/** The counts of a table read in parts, added up. */
export function sumCounts(parts: NullCounts[]): NullCounts {
  const nulls: Record<string, number> = {};
  for (const p of parts) for (const [c, n] of Object.entries(p.nulls)) nulls[c] = (nulls[c] ?? 0) + n;
  return { rows: parts.reduce((a, p) => a + p.rows, 0), nulls };
}

/**
 * One table's figures from the chunk activities that built it one after the other (in ascending order of their
 * partitions), as if one step had built it: counts add up; rows out and partitions are the table after the last chunk;
 * partitions considered are the first plan's (every chunk plans the same candidates); null rates come from the
 * chunks' exact null counts, so they equal one pass's (the counts themselves are not kept: the merged figures have
 * the shape of one pass's). `extra.chunks` counts the chunks computed.
 */
export function mergeChunkMetrics(parts: StepMetrics[]): StepMetrics {
  if (parts.length === 0) throw new Error('mergeChunkMetrics: no chunk');
  const first: StepMetrics = { ...parts[0] };
  delete first.nullCounts;
  if (parts.length === 1) return first;
  const last = parts[parts.length - 1];
  const sum = (f: (m: StepMetrics) => number): number => parts.reduce((a, m) => a + f(m), 0);
  const add = (into: Record<string, number>, from: Record<string, number>): void => {
    for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
  };
  const quarantined: Record<string, number> = {};
  const extra: Record<string, number> = {};
  for (const m of parts) {
    add(quarantined, m.quarantined);
    add(extra, { ...m.extra, chunks: m.extra.chunks ?? 1 });
  }
  const written = sum((m) => m.partitionsWritten);
  const counts = parts.map((m) => m.nullCounts).filter((c): c is NullCounts => c !== undefined);
  const changed = parts.flatMap((m) => m.changedPartitions ?? []);
  const merged: StepMetrics = {
    ...first,
    rowsIn: sum((m) => m.rowsIn),
    rowsOut: last.rowsOut,
    quarantined,
    // Exact when every chunk counted its nulls (the builds do); else the last chunk's rates rather than a wrong mean.
    nullRates: counts.length === parts.length ? ratesOf([sumCounts(counts)]) : last.nullRates,
    partitionsWritten: written,
    // The table's partitions after the last chunk, less those this step wrote.
    partitionsUnchanged: last.partitionsUnchanged + last.partitionsWritten - written,
    partitionsConsidered: first.partitionsConsidered,
    partitionsRecomputed: sum((m) => m.partitionsRecomputed),
    partitionsChanged: sum((m) => m.partitionsChanged),
    durationMs: sum((m) => m.durationMs),
    extra,
  };
  if (parts.some((m) => m.changedPartitions !== undefined)) merged.changedPartitions = [...new Set(changed)].sort();
  return merged;
}
