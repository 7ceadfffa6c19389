import fs from 'node:fs';
import { loadConfig } from '../../config/env';
import { lakeLease, leaseUri } from '../../lake/lease';
import type { LeaseRecord } from '../../lake/lease';
import { tmpDir } from '../support/env';

/** The lake write lease on a local lake: exclusive creation, re-entrancy, expiry takeover, release by holder only. */
describe('lake lease (local)', () => {
  const config = loadConfig({ CPA_LAKE_ROOT: '/tmp/unused' });
  const a = { workflowId: 'daily-pipeline/2025-08-01', runId: 'run-a' };
  const b = { workflowId: 'daily-pipeline/2025-08-02', runId: 'run-b' };

  it('is exclusive, re-entrant for its holder, and released only by its holder', async () => {
    const lake = tmpDir('lease');
    const lease = lakeLease(lake, config);
    const first = await lease.acquire(a, 60);
    expect(first.acquired).toBe(true);
    const second = await lease.acquire(b, 60);
    expect(second).toMatchObject({ acquired: false, heldBy: { holder: a } });
    // A retried acquire of the same run (completion lost) succeeds again.
    expect((await lease.acquire(a, 60)).acquired).toBe(true);
    expect(await lease.release(b)).toBe(false);
    expect((await lease.renew(b, 60)).renewed).toBe(false);
    expect((await lease.renew(a, 60)).renewed).toBe(true);
    expect(await lease.release(a)).toBe(true);
    expect(fs.existsSync(leaseUri(lake))).toBe(false);
    expect((await lease.acquire(b, 60)).acquired).toBe(true);
    // No temp files are left next to the lease object.
    expect(fs.readdirSync(`${lake}/_meta/locks`)).toEqual(['lake.json']);
  });

  it('lets exactly one of many concurrent contenders acquire', async () => {
    const lake = tmpDir('lease-race');
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        lakeLease(lake, config).acquire({ workflowId: `w${i}`, runId: `r${i}` }, 60),
      ),
    );
    expect(results.filter((r) => r.acquired)).toHaveLength(1);
  });

  it('recovers a lease whose holder vanished once it expires, and the old holder then cannot renew', async () => {
    const lake = tmpDir('lease-expired');
    let now = Date.parse('2025-08-02T02:00:00Z');
    const clock = (): number => now;
    expect((await lakeLease(lake, config, clock).acquire(a, 300)).acquired).toBe(true);
    now += 299_000;
    expect((await lakeLease(lake, config, clock).acquire(b, 300)).acquired).toBe(false);
    now += 2_000;
    const taken = await lakeLease(lake, config, clock).acquire(b, 300);
    expect(taken).toMatchObject({ acquired: true, tookOverFrom: a });
    expect(await lakeLease(lake, config, clock).renew(a, 300)).toMatchObject({ renewed: false, heldBy: { holder: b } });
    const stored = JSON.parse(fs.readFileSync(leaseUri(lake), 'utf8')) as LeaseRecord;
    expect(stored.holder).toEqual(b);
    expect(stored.expiresAt).toBe(new Date(now + 300_000).toISOString());
  });

  it('treats an unreadable lease object as expired', async () => {
    const lake = tmpDir('lease-garbage');
    fs.mkdirSync(`${lake}/_meta/locks`, { recursive: true });
    fs.writeFileSync(leaseUri(lake), '{not json');
    expect((await lakeLease(lake, config).acquire(a, 60)).acquired).toBe(true);
  });
});
