import type { StepMetrics } from '../../activities';
import { mergeChunkMetrics, ratesOf, sumCounts } from '../../lake/step-metrics';

/** A silver step's figures for one chunk: `nulls` of `rows` kept rows in one key column. */
function chunk(p: Partial<StepMetrics> & { rows: number; nulls: number }): StepMetrics {
  const { rows, nulls, ...rest } = p;
  return {
    step: 'silver.usage_events',
    layer: 'silver',
    table: 'usage_events',
    rowsIn: 0,
    rowsOut: 0,
    quarantined: {},
    nullRates: ratesOf([{ rows, nulls: { org_id: nulls } }]),
    partitionsWritten: 0,
    partitionsUnchanged: 0,
    partitionsConsidered: 10,
    partitionsRecomputed: 0,
    partitionsChanged: 0,
    durationMs: 0,
    extra: {},
    nullCounts: { rows, nulls: { org_id: nulls } },
    ...rest,
  };
}

describe('one table built in chunk activities reports as one step', () => {
  it('adds counts up, takes the table after the last chunk, and computes null rates from the exact counts', () => {
    const a = chunk({
      rows: 3,
      nulls: 1,
      rowsIn: 100,
      rowsOut: 300,
      quarantined: { negative_cost: 2 },
      partitionsWritten: 2,
      partitionsUnchanged: 0,
      partitionsRecomputed: 2,
      partitionsChanged: 2,
      durationMs: 40,
      extra: { rows_kept: 3, anomaly_any: 1 },
    });
    const b = chunk({
      rows: 7,
      nulls: 0,
      rowsIn: 200,
      rowsOut: 1000,
      quarantined: { negative_cost: 1, bad_timestamp: 4 },
      partitionsWritten: 3,
      // the table now has 5 partitions, 3 of them written by this chunk
      partitionsUnchanged: 2,
      partitionsConsidered: 12,
      partitionsRecomputed: 3,
      partitionsChanged: 3,
      durationMs: 60,
      extra: { rows_kept: 7, chunks: 2 },
    });
    const m = mergeChunkMetrics([a, b]);
    expect(m).toEqual({
      step: 'silver.usage_events',
      layer: 'silver',
      table: 'usage_events',
      rowsIn: 300,
      rowsOut: 1000,
      quarantined: { negative_cost: 3, bad_timestamp: 4 },
      // 1 null in 10 rows, not the mean of 1/3 and 0
      nullRates: { org_id: 0.1 },
      partitionsWritten: 5,
      partitionsUnchanged: 0,
      partitionsConsidered: 10,
      partitionsRecomputed: 5,
      partitionsChanged: 5,
      durationMs: 100,
      // a chunk that split again inside its activity counts its own chunks
      extra: { rows_kept: 10, anomaly_any: 1, chunks: 3 },
    });
  });

  it('keeps the changed partitions of every chunk (serving reloads them), once each and sorted', () => {
    const m = mergeChunkMetrics([
      chunk({ rows: 1, nulls: 0, changedPartitions: ['2025-08-02', '2025-08-01'] }),
      chunk({ rows: 1, nulls: 0, changedPartitions: ['2025-08-03'] }),
    ]);
    expect(m.changedPartitions).toEqual(['2025-08-01', '2025-08-02', '2025-08-03']);
    expect(m.nullCounts).toBeUndefined();
  });

  it('a chunk whose days were already built (a retried activity) adds nothing to the null rates', () => {
    const done = { ...chunk({ rows: 0, nulls: 0 }), nullCounts: { rows: 0, nulls: {} } };
    const m = mergeChunkMetrics([chunk({ rows: 4, nulls: 1 }), done]);
    expect(m.nullRates).toEqual({ org_id: 0.25 });
  });

  it('falls back to the last chunk’s rates when a chunk has no counts, and refuses no chunk at all', () => {
    const b = chunk({ rows: 4, nulls: 2 });
    const a = { ...chunk({ rows: 4, nulls: 0 }), nullCounts: undefined };
    expect(mergeChunkMetrics([a, b]).nullRates).toEqual({ org_id: 0.5 });
    expect(mergeChunkMetrics([b])).toEqual({ ...b, nullCounts: undefined });
    expect(() => mergeChunkMetrics([])).toThrow(/no chunk/);
    expect(
      sumCounts([
        { rows: 2, nulls: { a: 1 } },
        { rows: 3, nulls: { a: 2, b: 1 } },
      ]),
    ).toEqual({
      rows: 5,
      nulls: { a: 3, b: 1 },
    });
  });
});
