import { staleness, neededPartitions, WHOLE } from '../../lake/incremental';
import type { LineageRecord, StalenessInput, Versions } from '../../lake/incremental';
import { findModel } from '../../lake/tables';
import { foldPartitions } from '../../cli/report';

/** SPEC §9a staleness as a pure function of versions and lineage: windows, code versions, forced dates, ranges. */
const days = (from: string, n: number): string[] =>
  Array.from({ length: n }, (_, i) =>
    new Date(Date.parse(`${from}T00:00:00Z`) + i * 86_400_000).toISOString().slice(0, 10),
  );

function versions(parts: string[], salt = 'v1'): Versions {
  return new Map(parts.map((p) => [p, { rows: 10, hash: `${salt}-${p}` }]));
}

/** Lineage as a run that computed every stale partition would have recorded it. */
function settle(input: StalenessInput): Map<string, LineageRecord> {
  const s = staleness(input);
  const out = new Map(input.lineage);
  for (const p of s.stale) {
    const e = s.expected.get(p.partition)!;
    out.set(p.partition, { codeVersion: e.codeVersion, inputs: e.inputs, dataHash: 'h', rows: 1 });
  }
  return out;
}

describe('staleness (SPEC §9a)', () => {
  const silver = findModel('silver', 'usage_events');
  const bronzeDays = days('2025-08-01', 60);
  const whole = versions(['']);
  const inputsWith = (bronze: Versions): Map<string, Versions> =>
    new Map([
      ['bronze.usage_events', bronze],
      ['silver.orgs', whole],
      ['silver.resources', whole],
    ]);
  const base = (bronze: Versions, lineage: Map<string, LineageRecord>): StalenessInput => ({
    model: silver,
    code: 'c1',
    baselineDays: 28,
    inputs: inputsWith(bronze),
    lineage,
  });

  it('a fresh model: every day a bronze day reaches through its 28-day window is new', () => {
    const s = staleness(base(versions(bronzeDays), new Map()));
    expect(s.considered).toBe(60 + 28);
    expect(s.stale.every((p) => p.reasons.join() === 'new')).toBe(true);
  });

  it('nothing changed: nothing stale', () => {
    const b = versions(bronzeDays);
    const lineage = settle(base(b, new Map()));
    expect(staleness(base(b, lineage)).stale).toEqual([]);
  });

  it('one new day recomputes that day and the 28 after it (within its window), nothing before', () => {
    const b = versions(bronzeDays);
    const lineage = settle(base(b, new Map()));
    const next = versions([...bronzeDays, '2025-09-30']);
    const s = staleness(base(next, lineage));
    expect(foldPartitions(s.stale.map((p) => p.partition))).toBe('2025-09-30..2025-10-28');
    expect(s.stale.find((p) => p.partition === '2025-09-30')!.reasons).toEqual(['bronze.usage_events']);
  });

  it('a late file for a day 20 days back recomputes exactly the windows that contain it', () => {
    const b = versions(bronzeDays);
    const lineage = settle(base(b, new Map()));
    const late = new Map(b);
    late.set('2025-09-09', { rows: 11, hash: 'v2' });
    const s = staleness(base(late, lineage));
    expect(foldPartitions(s.stale.map((p) => p.partition))).toBe('2025-09-09..2025-10-07');
    // The partitions the recompute reads: the window of each stale day.
    const need = neededPartitions(
      silver,
      s.stale.map((p) => p.partition),
      28,
    ).get('bronze.usage_events')!;
    expect(foldPartitions([...need])).toBe('2025-08-12..2025-10-07');
    expect(neededPartitions(silver, ['2025-09-09'], 28).get('silver.orgs')).toBeUndefined();
  });

  it('a changed code version (SQL or threshold) makes every partition stale, with the reason', () => {
    const b = versions(bronzeDays);
    const lineage = settle(base(b, new Map()));
    const s = staleness({ ...base(b, lineage), code: 'c2' });
    expect(s.stale).toHaveLength(88);
    expect(new Set(s.stale.map((p) => p.reasons.join()))).toEqual(new Set(['code']));
  });

  it('a changed whole-table input (orgs) makes every partition stale', () => {
    const b = versions(bronzeDays);
    const lineage = settle(base(b, new Map()));
    const inputs = inputsWith(b);
    inputs.set('silver.orgs', versions([''], 'v2'));
    expect(staleness({ ...base(b, lineage), inputs }).stale).toHaveLength(88);
  });

  it('a forced range recomputes its dates though nothing is stale', () => {
    const b = versions(bronzeDays);
    const lineage = settle(base(b, new Map()));
    const s = staleness({ ...base(b, lineage), force: { from: '2025-08-03', to: '2025-08-05' } });
    expect(s.stale.map((p) => [p.partition, p.reasons])).toEqual([
      ['2025-08-03', ['forced']],
      ['2025-08-04', ['forced']],
      ['2025-08-05', ['forced']],
    ]);
  });

  it('a whole-input model is one unit', () => {
    const m = findModel('gold', 'tickets_by_org_date');
    const input: StalenessInput = {
      model: m,
      code: 'c',
      baselineDays: 28,
      inputs: new Map([['silver.tickets', whole]]),
      lineage: new Map(),
    };
    expect(staleness(input).stale).toEqual([{ partition: WHOLE, reasons: ['new'] }]);
    const lineage = settle(input);
    expect(staleness({ ...input, lineage }).stale).toEqual([]);
    expect(
      staleness({ ...input, lineage, inputs: new Map([['silver.tickets', versions([''], 'v2')]]) }).stale,
    ).toHaveLength(1);
  });

  it('a range-bound model (the 14-day summary): days after the last usage day become stale when it moves', () => {
    const m = findModel('gold', 'org_service_cost_summary');
    const input = (parts: string[], lineage: Map<string, LineageRecord>): StalenessInput => ({
      model: m,
      code: 'c',
      baselineDays: 28,
      inputs: new Map([['gold.org_daily_usage_by_service', versions(parts)]]),
      lineage,
    });
    const lineage = settle(input(['2025-08-01', '2025-08-02'], new Map()));
    // A day 20 days later: the days its own 14-day windows reach (2025-08-22..2025-09-04) plus those the earlier
    // days reach that moved into the range (2025-08-03..2025-08-15); 08-16..08-21 see no usage in their window.
    const s = staleness(input(['2025-08-01', '2025-08-02', '2025-08-22'], lineage));
    expect(foldPartitions(s.stale.map((p) => p.partition))).toBe('2025-08-03..2025-08-15, 2025-08-22..2025-09-04');
    expect(s.stale.find((p) => p.partition === '2025-08-03')!.reasons).toEqual(['range']);
  });
});
