import { forEachLimit } from '../../lake/pool';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('forEachLimit', () => {
  it('runs every item once, in order of start, with at most `limit` in flight', async () => {
    let inFlight = 0;
    let most = 0;
    const started: number[] = [];
    await forEachLimit([5, 1, 4, 2, 3, 1, 2], 3, async (ms, i) => {
      started.push(i);
      most = Math.max(most, ++inFlight);
      await tick(ms);
      inFlight--;
    });
    expect(started).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(most).toBe(3);
  });

  it('rejects with the first failure and starts nothing after it', async () => {
    const started: number[] = [];
    await expect(
      forEachLimit([0, 1, 2, 3, 4, 5], 2, async (n) => {
        started.push(n);
        await tick(1);
        if (n === 1) throw new Error('item 1 failed');
      }),
    ).rejects.toThrow('item 1 failed');
    // 0 and 1 ran together; 2 started when 0 finished, before 1 failed; nothing after that.
    expect(started).toEqual([0, 1, 2]);
  });

  it('does nothing for no items', async () => {
    const fn = jest.fn(async () => undefined);
    await forEachLimit([], 4, fn);
    expect(fn).not.toHaveBeenCalled();
  });
});
