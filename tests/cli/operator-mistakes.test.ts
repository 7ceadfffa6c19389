import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { ApplicationFailure } from '@temporalio/common';
import { cpa, REFERENCE_LANDING, tmpDir } from '../support/env';
import { directActivities } from '../support/activities';

/**
 * Operator mistakes fail fast (issue 9, SPEC §10/§12): each ends in seconds with a non-zero exit and one line naming
 * the path, before a Temporal server or a lease is involved; and the activities refuse the same mistakes as
 * non-retryable, so a workflow started another way does not retry for a day.
 */
describe('operator mistakes', () => {
  const base = tmpDir('mistakes');
  const landing = path.join(base, 'landing');
  fs.mkdirSync(path.join(landing, 'usage_events_stream'), { recursive: true });
  fs.copyFileSync(path.join(REFERENCE_LANDING, 'customers_orgs.csv'), path.join(landing, 'customers_orgs.csv'));
  const file = path.join(base, 'a-file');
  fs.writeFileSync(file, 'x');
  const empty = path.join(base, 'empty-landing');
  fs.mkdirSync(empty);
  const unrelated = path.join(base, 'unrelated-landing');
  fs.mkdirSync(path.join(unrelated, 'usage_events_stream'), { recursive: true });
  fs.writeFileSync(path.join(unrelated, 'notes.txt'), 'not a source');
  fs.symlinkSync(landing, path.join(base, 'landing-link'));
  const lake = (name: string): string => path.join(base, `lake-${name}`);

  /** Runs the CLI with a hard timeout: a hang or a 24 h retry fails the test instead of stalling it. */
  function fails(args: string[], mentions: string, pattern: RegExp, wrap: string[] = []): void {
    const started = Date.now();
    const r = cpa(args, {}, 30_000, wrap);
    const secs = (Date.now() - started) / 1000;
    // The reason is one line (commander adds the usage after an argument error).
    const reason = r.stderr.split('\n').find((l) => pattern.test(l));
    expect({ args, code: r.code === 0 ? 0 : 'non-zero', reason }).toEqual({
      args,
      code: 'non-zero',
      reason: expect.stringContaining(mentions),
    });
    expect(secs).toBeLessThan(20);
  }

  const LAKE_CASES: Array<[string, string, RegExp]> = [
    [file, file, /is not a directory/],
    [path.join(file, 'sub'), file, /cannot be created: .* is not a directory/],
    [path.join(file, 'a', 'b'), file, /cannot be created: .* is not a directory/],
    ['/proc/cpa-test-lake', '/proc/cpa-test-lake', /cannot be created \(ENOENT/],
    ['/proc/self/cpa-test-lake/x', '/proc/self/cpa-test-lake', /cannot be created/],
    ['/sys/cpa-test-lake', '/sys/cpa-test-lake', /cannot be created \(EPERM/],
    ['/dev/null', '/dev/null', /is not a directory/],
    [landing, landing, /inside the landing/],
    [path.join(landing, 'lake'), path.join(landing, 'lake'), /inside the landing/],
    [path.join(base, 'landing-link', 'x'), 'landing-link', /inside the landing/],
  ];

  it.each(LAKE_CASES)('cpa run --lake %s fails at once, naming the path', (lakeArg, mentions, pattern) => {
    fails(['run', '--landing', landing, '--lake', lakeArg], mentions, pattern);
    // The immutable landing is never written.
    expect(fs.readdirSync(landing).sort()).toEqual(['customers_orgs.csv', 'usage_events_stream']);
  });

  /**
   * Root ignores permission bits, so "not writable" is made real: a read-only bind mount in a mount namespace of the
   * CLI's own (EROFS, which binds root too), and the CLI run as `nobody` on a directory only root may write (EACCES).
   */
  describe('a lake that cannot be written', () => {
    const ro = path.join(base, 'read-only');
    const built = path.join(base, 'read-only-built');
    const owned = path.join(base, 'root-only');
    for (const d of [ro, path.join(built, '_meta', 'attempts'), owned]) fs.mkdirSync(d, { recursive: true });
    const readOnly = (dir: string): string[] => [
      'unshare',
      '-m',
      'sh',
      '-c',
      'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" && exec "$@"',
      dir,
    ];
    const asNobody = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];

    it.each([
      [ro, ro, /cannot be created \(EROFS/],
      [built, built, /is not writable \(EROFS|cannot be created \(EROFS/],
      [path.join(ro, 'lake'), path.join(ro, 'lake'), /cannot be created \(EROFS/],
    ])('cpa run --lake %s on a read-only mount fails at once, naming the path', (lakeArg, mentions, pattern) => {
      fails(
        ['run', '--landing', landing, '--lake', lakeArg],
        mentions,
        pattern,
        readOnly(lakeArg.startsWith(built) ? built : ro),
      );
      expect(fs.readdirSync(ro)).toEqual([]);
    });

    it('cpa run --lake on a directory the user may not write fails at once, naming the path', () => {
      // nobody needs to read the repository, the landing and node; only the lake is root's alone.
      for (const d of [base, landing]) fs.chmodSync(d, 0o755);
      fs.chmodSync(path.join(landing, 'customers_orgs.csv'), 0o644);
      fs.chmodSync(owned, 0o755);
      fails(
        ['run', '--landing', landing, '--lake', owned],
        owned,
        /cannot be created \(EACCES|is not writable \(EACCES/,
        asNobody,
      );
      fails(
        ['run', '--landing', landing, '--lake', path.join(owned, 'x')],
        path.join(owned, 'x'),
        /cannot be created \(EACCES/,
        asNobody,
      );
      expect(fs.readdirSync(owned)).toEqual([]);
    });
  });

  const LANDING_CASES: Array<[string, RegExp]> = [
    ['/nonexistent/cpa-landing', /landing \/nonexistent\/cpa-landing does not exist/],
    [path.join(base, 'typo'), /does not exist/],
    [file, /is not a directory/],
    [empty, /holds none of the expected sources/],
    [unrelated, /holds none of the expected sources/],
  ];

  it.each(LANDING_CASES)('cpa run --landing %s fails at once, naming the path', (landingArg, pattern) => {
    fails(['run', '--landing', landingArg, '--lake', lake('landing')], landingArg, pattern);
    fails(
      ['backfill', '--from', '2025-08-01', '--to', '2025-08-02', '--landing', landingArg, '--lake', lake('bf')],
      landingArg,
      pattern,
    );
  });

  it.each(['2025-02-30', '2025-02-29', '2024-02-30', '2025-04-31', '2025-13-01', '2025-00-10', '2025-06-00'])(
    'an impossible date %s is refused by run and backfill',
    (date) => {
      fails(['run', '--date', date, '--landing', landing, '--lake', lake('date')], date, /expected a date YYYY-MM-DD/);
      fails(['backfill', '--from', date, '--to', '2025-12-31', '--lake', lake('date')], date, /expected a date/);
    },
  );

  it('cpa ingest-file refuses a symlink, a FIFO, a device link and a directory with a one-line reason', () => {
    const dir = path.join(landing, 'usage_events_stream');
    fs.symlinkSync('/etc/passwd', path.join(dir, 'passwd.jsonl'));
    fs.symlinkSync('/dev/zero', path.join(dir, 'zero.jsonl'));
    execFileSync('mkfifo', [path.join(dir, 'fifo.jsonl')]);
    fs.mkdirSync(path.join(dir, 'dir.jsonl'));
    try {
      for (const [name, why] of [
        ['passwd.jsonl', 'it is a symbolic link'],
        ['zero.jsonl', 'it is a symbolic link'],
        ['fifo.jsonl', 'it is a FIFO'],
        ['dir.jsonl', 'it is a directory'],
      ]) {
        const key = `usage_events_stream/${name}`;
        fails(['ingest-file', key, '--landing', landing, '--lake', lake('ingest')], key, new RegExp(why));
      }
    } finally {
      for (const n of ['passwd.jsonl', 'zero.jsonl', 'fifo.jsonl']) fs.rmSync(path.join(dir, n));
      fs.rmdirSync(path.join(dir, 'dir.jsonl'));
    }
  });

  describe('activities (a workflow started another way)', () => {
    const suite = directActivities();

    async function failure(p: Promise<unknown>): Promise<ApplicationFailure> {
      return p.then(
        () => {
          throw new Error('expected a rejection');
        },
        (e: unknown) => e as ApplicationFailure,
      );
    }
    const holder = { workflowId: 'daily-pipeline/test', runId: 'run-1' };

    it.each(LAKE_CASES)('acquireLakeLease on lake %s is a non-retryable LakeUnusable', async (lakeArg, mentions) => {
      const started = Date.now();
      const err = await failure(suite.acts.acquireLakeLease({ lake: lakeArg, landing, holder }));
      expect({ type: err.type, nonRetryable: err.nonRetryable }).toEqual({ type: 'LakeUnusable', nonRetryable: true });
      expect(err.message).toContain(mentions);
      expect(Date.now() - started).toBeLessThan(5000);
      // Every other lake-opening activity says the same (openLake), also without a lease.
      const bronze = await failure(suite.acts.ingestEventFiles({ lake: lakeArg, landing, runId: 'r' }));
      expect({ type: bronze.type, nonRetryable: bronze.nonRetryable }).toEqual({
        type: 'LakeUnusable',
        nonRetryable: true,
      });
    });

    it.each(LANDING_CASES)('ingestEventFiles on landing %s is a non-retryable LandingUnusable', async (landingArg) => {
      const err = await failure(
        suite.acts.ingestEventFiles({ lake: lake('act-landing'), landing: landingArg, runId: 'r' }),
      );
      expect({ type: err.type, nonRetryable: err.nonRetryable }).toEqual({
        type: 'LandingUnusable',
        nonRetryable: true,
      });
      expect(err.message).toContain(landingArg);
    });
  });
});
