import { closedThroughDay, mergeSpeedIntoDaily } from '../../lake/speed';

/** Query 1 merge rules (lake/speed.ts): batch for closed days, speed after, batch kept where speed has no coverage. */
describe('mergeSpeedIntoDaily', () => {
  const batch = ['2025-08-29', '2025-08-30', '2025-08-31'].map((d) => ({
    usage_date: d,
    service: 'compute',
    total_cost_usd: 'b',
  }));
  const speed = ['2025-08-30', '2025-08-31', '2025-09-01'].map((d) => ({
    usage_date: d,
    service: 'compute',
    total_cost_usd: 's',
  }));

  it('takes batch rows through the closed day and speed rows after it', () => {
    const rows = mergeSpeedIntoDaily(batch, speed, '2025-08-30');
    expect(rows.map((r) => [r.usage_date, r.source])).toEqual([
      ['2025-08-29', 'batch'],
      ['2025-08-30', 'batch'],
      ['2025-08-31', 'speed'],
      ['2025-09-01', 'speed'],
    ]);
  });

  it('keeps batch rows of a later day the speed layer does not cover', () => {
    const rows = mergeSpeedIntoDaily(batch, [], '2025-08-30', new Set(['2025-09-01']));
    expect(rows.map((r) => [r.usage_date, r.source])).toEqual([
      ['2025-08-29', 'batch'],
      ['2025-08-30', 'batch'],
      ['2025-08-31', 'batch'],
    ]);
  });

  it('uses the speed layer for everything when the batch layer has closed nothing', () => {
    expect(mergeSpeedIntoDaily(batch, speed, null).every((r) => r.source === 'speed')).toBe(true);
  });

  it('closes a day once the watermark has passed its end', () => {
    expect(closedThroughDay('2025-08-31T21:51:00.000Z')).toBe('2025-08-30');
    expect(closedThroughDay('2025-08-31T00:00:00.000Z')).toBe('2025-08-30');
    expect(closedThroughDay(null)).toBeNull();
  });
});
