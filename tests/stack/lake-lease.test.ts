import { loadConfig } from '../../config/env';
import type { Config } from '../../config/env';
import { lakeLease } from '../../lake/lease';
import { storageFor } from '../../lake/storage';

/**
 * The lake lease on S3 (the stack's MinIO): exclusive create with If-None-Match, takeover of an expired lease and
 * renewal with If-Match. Works under its own prefix of the stack's bucket and deletes it afterwards.
 */
const config: Config = loadConfig({ ...process.env, CPA_LAKE_ROOT: 's3://placeholder' });
const bucket = process.env.CPA_S3_BUCKET ?? 'cpa-lake';
const lake = `s3://${bucket}/test-lake-lease-${Date.now().toString(36)}-${process.pid}`;
const a = { workflowId: 'daily-pipeline/2025-08-01', runId: 'run-a' };
const b = { workflowId: 'daily-pipeline/2025-08-02', runId: 'run-b' };

describe('lake lease on S3 (MinIO)', () => {
  afterAll(async () => {
    await storageFor(lake, config).deletePrefix(lake);
  });

  it('is exclusive, re-entrant, renewable and released only by its holder', async () => {
    const lease = lakeLease(lake, config);
    expect((await lease.acquire(a, 60)).acquired).toBe(true);
    expect(await lease.acquire(b, 60)).toMatchObject({ acquired: false, heldBy: { holder: a } });
    expect((await lease.acquire(a, 60)).acquired).toBe(true);
    expect((await lease.renew(a, 60)).renewed).toBe(true);
    expect((await lease.renew(b, 60)).renewed).toBe(false);
    expect(await lease.release(b)).toBe(false);
    expect(await lease.release(a)).toBe(true);
    expect(await lease.read()).toBeUndefined();
  });

  it('lets exactly one of several concurrent contenders acquire', async () => {
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) => lakeLease(lake, config).acquire({ workflowId: `w${i}`, runId: `r${i}` }, 60)),
    );
    expect(results.filter((r) => r.acquired)).toHaveLength(1);
    const holder = results.find((r) => r.acquired)!;
    if (holder.acquired) expect(await lakeLease(lake, config).release(holder.lease.holder)).toBe(true);
  });

  it('takes over an expired lease exactly once, and the old holder can no longer renew', async () => {
    let now = Date.now();
    const clock = (): number => now;
    expect((await lakeLease(lake, config, clock).acquire(a, 30)).acquired).toBe(true);
    now += 31_000;
    const contenders = await Promise.all(
      Array.from({ length: 4 }, (_, i) =>
        lakeLease(lake, config, clock).acquire({ workflowId: `t${i}`, runId: `t${i}` }, 30),
      ),
    );
    expect(contenders.filter((r) => r.acquired)).toHaveLength(1);
    expect((await lakeLease(lake, config, clock).renew(a, 30)).renewed).toBe(false);
  });
});
