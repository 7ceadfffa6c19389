import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const REPO = path.resolve(__dirname, '..', '..');
export const REFERENCE_LANDING = path.resolve(REPO, '..', 'shared', 'datasets', 'reference', 'landing');
const CACHE = process.env.CPA_CACHE_DIR ?? path.join(os.homedir(), '.cache', 'cpa');

/** The `temporal` CLI installed by `scripts/tools.sh temporal` (or TEMPORAL_CLI_PATH). Tests never download it. */
export function temporalCli(): string {
  const candidates = [process.env.TEMPORAL_CLI_PATH, path.join(CACHE, 'pybin', 'bin', 'temporal')];
  const found = candidates.find((p) => p && fs.existsSync(p));
  if (!found)
    throw new Error('temporal CLI not found: run `bash scripts/tools.sh temporal` (or set TEMPORAL_CLI_PATH)');
  return found;
}

/**
 * The temporal CLI behind a wrapper that sends the dev server's start-up banner (its stdout) to /dev/null, for
 * TestWorkflowEnvironment.createLocal: the SDK's core spawns the server with inherited stdio, so the banner would
 * land in the output of every passing suite. Errors (stderr) still show.
 */
export function quietTemporalCli(): string {
  const real = temporalCli();
  const wrapper = path.join(os.tmpdir(), `cpa-temporal-quiet-${process.getuid?.() ?? 0}.sh`);
  const body = `#!/bin/sh\nexec '${real.replace(/'/g, "'\\''")}' "$@" >/dev/null\n`;
  if (!fs.existsSync(wrapper) || fs.readFileSync(wrapper, 'utf8') !== body) {
    const tmp = `${wrapper}.${process.pid}`;
    fs.writeFileSync(tmp, body, { mode: 0o755 });
    fs.renameSync(tmp, wrapper);
  }
  return wrapper;
}

/** The time-skipping test server from `scripts/tools.sh temporal` (or TEMPORAL_TEST_SERVER_PATH). Never downloaded. */
export function temporalTestServer(): string {
  const candidates = [process.env.TEMPORAL_TEST_SERVER_PATH, path.join(CACHE, 'pybin', 'bin', 'temporal-test-server')];
  const found = candidates.find((p) => p && fs.existsSync(p));
  if (!found) {
    throw new Error(
      'temporal-test-server not found: run `bash scripts/tools.sh temporal` (or set TEMPORAL_TEST_SERVER_PATH)',
    );
  }
  return found;
}

export function tmpDir(label: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `cpa-test-${label}-`));
}

/**
 * Runs the real CLI (`node bin/cpa.js …`) and returns its exit code, stdout and stderr. `wrap` is a command line the
 * CLI runs under (for example `unshare -m …` or `setpriv …`), given the node command as its trailing arguments.
 */
export function cpa(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 240_000,
  wrap: string[] = [],
): { code: number; stdout: string; stderr: string } {
  const command = [...wrap, process.execPath, path.join(REPO, 'bin', 'cpa.js'), ...args];
  try {
    const stdout = execFileSync(command[0], command.slice(1), {
      cwd: REPO,
      env: {
        ...process.env,
        TEMPORAL_ADDRESS: '',
        TEMPORAL_CLI_PATH: temporalCli(),
        // Never attach to a developer's `cpa dev` server or a running local stack from tests.
        CPA_DEV_PORT: '1',
        CPA_STACK_ENV_FILE: '/nonexistent/cpa-stack.env',
        // Serving stays off unless a test opts in (the stack env file would otherwise switch it on for every run).
        CPA_CASSANDRA_CONTACT_POINTS: '',
        ...env,
      },
      encoding: 'utf8',
      timeout: timeoutMs,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return { code: 0, stdout, stderr: '' };
  } catch (e) {
    const err = e as { status?: number; stdout?: string; stderr?: string };
    return { code: err.status ?? 1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

/** `cpa quality --json [--run id]` on `lake`: the silver.usage_events step of that run (default: the latest). */
export function silverEventsQuality(
  lake: string,
  runId?: string,
): { step: string; quarantined: Record<string, number>; partitionsRecomputed: number } {
  const q = cpa(['quality', '--lake', lake, '--json', ...(runId ? ['--run', runId] : [])]);
  expect(q.code).toBe(0);
  const report = JSON.parse(q.stdout) as {
    steps: Array<{ step: string; quarantined: Record<string, number>; partitionsRecomputed: number }>;
  };
  return report.steps.find((s) => s.step === 'silver.usage_events')!;
}

/** The run that started first among `cpa status --json` records. */
export function firstRun<T extends { startedAt: string }>(runs: T[]): T {
  return [...runs].sort((a, b) => (a.startedAt < b.startedAt ? -1 : 1))[0];
}
