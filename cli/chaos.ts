import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type { Config } from '../config/env';
import { REPO_ROOT } from '../config/paths';
import { generate } from '../lake/generator';
import { createDuckDb, queryRows, sqlString } from '../lake/duckdb';
import { attachLake, qualified } from '../lake/lakehouse';
import { maintainLake } from '../lake/maintenance';
import { GOLD_MARTS } from '../lake/tables';
import { clientFor, findTemporalCli, freePort, SEARCH_ATTRIBUTES } from '../worker/temporal';

/**
 * Crash-recovery trials (`cpa chaos`, docs/performance.md "Crash recovery"). Each trial runs dailyPipeline on
 * generated data with a real dev server (persistent state file) and a separate `cpa worker` process, kills the worker
 * with SIGKILL at a random moment (in some trials the dev server too, then restarts it on the same state file),
 * starts a new worker and measures, from the moment the new worker polls: how long until an activity starts on it
 * (the idle time a crash costs) and until the run completes. Then it compares every table with a clean run
 * (row count and an order-independent hash of all rows) and looks for leftovers: temp files in the lake, a lease
 * file, spill directories of dead processes, and files DuckLake does not reference (a writer killed before its
 * commit) that lake maintenance must remove.
 */
export interface ChaosOptions {
  trials: number;
  scale: number;
  seed: number;
  /** Working directory: generated landing, lakes, server state, spill directories. */
  dir: string;
  /** Every n-th trial also kills the dev server (0 = never). */
  serverEvery: number;
  /** Kill at this fraction of the clean run's duration instead of a random one (tests). */
  killAt?: number;
  /** Only kill while one of these activities is running (tests: "during a transform"). */
  killDuring?: string[];
  /** Instead of a kill at a moment, the first worker kills itself at this crash point (lake/crash-points.ts). */
  crashAt?: string;
  log?: (line: string) => void;
}

export interface ChaosTrial {
  trial: number;
  /** What was running when the kill came: the pending activities, or "between steps". */
  killPoint: string;
  killed: 'worker' | 'worker+server';
  /** Seconds into the run at the kill. */
  killedAfterS: number;
  /** Seconds from the new worker polling to the first activity task started on it. */
  resumeS: number;
  /** Seconds from the new worker polling to the run's completion. */
  recoveryS: number;
  /** What the crash cost beyond the outage: run wall time − clean run time − (kill → new worker polling). */
  lostS: number;
  status: string;
  identical: boolean;
  /** Files DuckLake does not reference, found after the run (a writer killed before its commit). */
  orphansBeforeMaintenance: number;
  /** Anything left after lake maintenance: temp files, a lease file, orphans, spill directories of dead pids. */
  leftovers: string[];
}

export interface ChaosReport {
  scale: number;
  seed: number;
  cleanRunS: number;
  /** The clean run's lake digest every trial is compared with. */
  reference: LakeDigest;
  trials: ChaosTrial[];
  summary: {
    identical: number;
    withLeftovers: number;
    recoveryP50: number;
    recoveryP95: number;
    recoveryMax: number;
    resumeP50: number;
    resumeP95: number;
    lostP50: number;
    lostP95: number;
  };
}

export type LakeDigest = Record<string, { rows: number; hash?: string; nullIds?: number }>;

/**
 * What a crash must not change: every gold table's row count and order-independent hash of all rows, and the row
 * count of every bronze, silver and quarantine table (their rows carry run ids and ingest times, so no hash), with
 * bronze usage_events' rows without an event_id counted apart (those are deduplicated by file and line, not by id).
 */
export async function lakeDigest(config: Config, lakeRoot: string): Promise<LakeDigest> {
  const db = await createDuckDb(config, { needS3: false });
  try {
    const lake = await attachLake(db, config, lakeRoot);
    const conn = await db.connect();
    const out: LakeDigest = {};
    for (const m of GOLD_MARTS) {
      const [r] = await queryRows(
        conn,
        `select count(*)::bigint as n, coalesce(sum(hash(t::varchar)::hugeint), 0)::varchar as h
         from ${qualified(lake, 'gold', m.table)} as t`,
      );
      out[`gold.${m.table}`] = { rows: Number(r.n), hash: String(r.h) };
    }
    const tables = await queryRows(
      conn,
      `select schema_name as s, table_name as t from duckdb_tables()
       where database_name = $db and schema_name in ('bronze', 'silver', 'quarantine') order by 1, 2`,
      { db: lake.alias },
    );
    for (const { s, t } of tables) {
      const ref = qualified(lake, String(s), String(t));
      const [r] = await queryRows(conn, `select count(*)::bigint as n from ${ref}`);
      out[`${s}.${t}`] = { rows: Number(r.n) };
    }
    if (out['bronze.usage_events']) {
      const [r] = await queryRows(
        conn,
        `select count(*)::bigint as n from ${qualified(lake, 'bronze', 'usage_events')} where event_id is null`,
      );
      out['bronze.usage_events'].nullIds = Number(r.n);
    }
    conn.closeSync();
    return out;
  } finally {
    db.closeSync();
  }
}

/** Debris after a run: temp files, lease files, orphaned data files (before and after maintenance), dead spill dirs. */
async function inspectLake(
  config: Config,
  lakeRoot: string,
  spillBase: string,
): Promise<{ orphansBefore: number; leftovers: string[] }> {
  const db = await createDuckDb(
    { ...config, duckdb: { ...config.duckdb, tempDir: path.join(spillBase, 'inspect') } },
    {
      needS3: false,
    },
  );
  const leftovers: string[] = [];
  let orphansBefore = 0;
  try {
    const lake = await attachLake(db, config, lakeRoot);
    const conn = await db.connect();
    const orphans = async (): Promise<string[]> =>
      (
        await queryRows(
          conn,
          `call ducklake_delete_orphaned_files(${sqlString(lake.alias)}, dry_run => true, older_than => now())`,
        )
      ).map((r) => String(Object.values(r)[0]));
    orphansBefore = (await orphans()).length;
    await maintainLake(conn, lake, { retention: '30 days', graceMinutes: 0 });
    for (const f of await orphans()) leftovers.push(`orphan ${path.relative(lakeRoot, f)}`);
    conn.closeSync();
  } finally {
    db.closeSync();
  }
  for (const f of walk(lakeRoot)) {
    const rel = path.relative(lakeRoot, f);
    if (/\.tmp|\.new-|\.renew-|\.expired-/.test(rel) || rel.startsWith(path.join('_meta', 'locks') + path.sep)) {
      leftovers.push(rel);
    }
  }
  const workerSpill = path.join(spillBase, 'worker');
  for (const name of fs.existsSync(workerSpill) ? fs.readdirSync(workerSpill) : []) {
    if (!processAlive(Number(name))) leftovers.push(`spill dir of dead pid ${name}`);
  }
  return { orphansBefore, leftovers };
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.existsSync(dir) ? fs.readdirSync(dir, { withFileTypes: true }) : []) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else out.push(p);
  }
  return out;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A `temporal server start-dev` with its state in a file, killable with SIGKILL and restartable on the same port. */
class DevServer {
  private child?: ChildProcess;
  readonly address: string;

  constructor(
    private readonly binary: string,
    private readonly port: number,
    private readonly dbFile: string,
  ) {
    this.address = `127.0.0.1:${port}`;
  }

  async start(): Promise<void> {
    const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(this.port), '--headless'];
    args.push('--log-level', 'error', '--db-filename', this.dbFile);
    args.push('--http-port', String(await freePort()), '--metrics-port', String(await freePort()));
    for (const [k, v] of Object.entries(SEARCH_ATTRIBUTES)) args.push('--search-attribute', `${k}=${v}`);
    this.child = spawn(this.binary, args, { stdio: 'ignore' });
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (this.child.exitCode !== null) throw new Error(`dev server exited with ${this.child.exitCode}`);
      if (await portOpen(this.port)) return;
      if (Date.now() > deadline) throw new Error(`dev server did not listen on ${this.address} within 60 s`);
      await sleep(200);
    }
  }

  async kill(): Promise<void> {
    await killChild(this.child, 'SIGKILL');
  }

  async stop(): Promise<void> {
    await killChild(this.child, 'SIGTERM');
  }
}

async function portOpen(port: number): Promise<boolean> {
  const net = await import('node:net');
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.end();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function killChild(child: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** A `cpa worker` process; `ready` resolves when it polls its task queue. */
function spawnWorker(env: Record<string, string>): { child: ChildProcess; ready: Promise<number> } {
  const repo = REPO_ROOT;
  const child = spawn(process.execPath, [path.join(repo, 'bin', 'cpa.js'), 'worker'], {
    cwd: repo,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
  const ready = new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('worker polling')) resolve(Date.now());
    });
    child.once('exit', (code, sig) =>
      reject(new Error(`worker exited (${code ?? sig}) before polling: ${err.trim()}`)),
    );
  });
  ready.catch(() => undefined);
  return { child, ready };
}

interface Pending {
  names: string[];
  startedOn: string[];
}

async function pendingActivities(client: Client, workflowId: string): Promise<Pending | undefined> {
  try {
    const d = await client.workflow.getHandle(workflowId).describe();
    const started = (d.raw.pendingActivities ?? []).filter((a) => Number(a.state) === 2);
    return {
      names: started.map((a) => a.activityType?.name ?? '?'),
      startedOn: started.map((a) => a.lastWorkerIdentity ?? ''),
    };
  } catch {
    return undefined;
  }
}

function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1));
  return s[i];
}

const round1 = (x: number) => Math.round(x * 10) / 10;

/** Runs the trials; see {@link ChaosOptions}. */
export async function runChaos(config: Config, opts: ChaosOptions): Promise<ChaosReport> {
  const log = opts.log ?? (() => undefined);
  const binary = findTemporalCli(config);
  if (!binary) throw new Error('temporal CLI not found: run `bash scripts/tools.sh temporal`');
  fs.mkdirSync(opts.dir, { recursive: true });
  const landing = path.join(opts.dir, `landing-s${opts.scale}-seed${opts.seed}`);
  if (!fs.existsSync(path.join(landing, 'customers_orgs.csv'))) {
    log(`generating S=${opts.scale} seed ${opts.seed} into ${landing}`);
    await generate({ scale: opts.scale, seed: opts.seed, out: landing });
  }
  const runDir = fs.mkdtempSync(path.join(opts.dir, 'run-'));
  const spillBase = path.join(runDir, 'spill');
  const server = new DevServer(binary, await freePort(), path.join(runDir, 'temporal.db'));
  await server.start();
  let session = await clientFor(config, server.address);
  const reconnect = async () => {
    await session.close().catch(() => undefined);
    session = await clientFor(config, server.address);
  };
  const workers: ChildProcess[] = [];
  const workerEnv = (lake: string, queue: string, identity: string) => ({
    TEMPORAL_ADDRESS: server.address,
    TEMPORAL_TASK_QUEUE: queue,
    CPA_LAKE_ROOT: lake,
    CPA_LANDING_ROOT: landing,
    CPA_WATCH_ENABLED: 'false',
    CPA_CASSANDRA_CONTACT_POINTS: '',
    CPA_LOG_LEVEL: 'error',
    CPA_DUCKDB_TEMP_DIR: path.join(spillBase, 'worker'),
    CPA_WORKER_IDENTITY: identity,
  });
  const startRun = (queue: string, workflowId: string, lake: string) =>
    session.client.workflow.start('dailyPipeline', {
      taskQueue: queue,
      workflowId,
      args: [{ runDate: null, lake, landing, kind: 'manual' }],
    });
  try {
    // The clean run: the reference gold and the duration the kill moments are drawn from.
    const cleanLake = path.join(runDir, 'lake-clean');
    const w = spawnWorker(workerEnv(cleanLake, 'chaos-clean', 'clean'));
    workers.push(w.child);
    await w.ready;
    const t0 = Date.now();
    await (await startRun('chaos-clean', 'chaos/clean', cleanLake)).result();
    const cleanRunS = (Date.now() - t0) / 1000;
    await killChild(w.child, 'SIGTERM');
    const reference = await lakeDigest(config, cleanLake);
    log(`clean run: ${cleanRunS.toFixed(1)} s`);

    const trials: ChaosTrial[] = [];
    for (let i = 1; i <= opts.trials; i++) {
      const lake = path.join(runDir, `lake-${i}`);
      const queue = `chaos-${i}`;
      const workflowId = `chaos/${i}`;
      const killServer = opts.serverEvery > 0 && i % opts.serverEvery === 0;
      const first = spawnWorker({
        ...workerEnv(lake, queue, `t${i}-a`),
        ...(opts.crashAt ? { CPA_CRASH_AT: opts.crashAt } : {}),
      });
      workers.push(first.child);
      await first.ready;
      const started = Date.now();
      const exited = new Promise((r) => first.child.once('exit', r));
      const handle = await startRun(queue, workflowId, lake);
      const frac = opts.killAt ?? 0.05 + Math.random() * 0.85;
      if (opts.crashAt) {
        await Promise.race([exited, sleep(10 * cleanRunS * 1000)]);
        if (first.child.exitCode === null && first.child.signalCode === null) {
          throw new Error(`the worker never reached crash point ${opts.crashAt}`);
        }
      } else await sleep(frac * cleanRunS * 1000);
      let pending = opts.crashAt
        ? { names: [opts.crashAt], startedOn: [] }
        : await pendingActivities(session.client, workflowId);
      if (opts.killDuring) {
        const deadline = Date.now() + 120_000;
        while (!pending?.names.some((n) => opts.killDuring!.includes(n)) && Date.now() < deadline) {
          await sleep(100);
          pending = await pendingActivities(session.client, workflowId);
        }
      }
      const killPoint = pending && pending.names.length > 0 ? [...new Set(pending.names)].join('+') : 'between steps';
      await killChild(first.child, 'SIGKILL');
      const killedAt = Date.now();
      const killedAfterS = (killedAt - started) / 1000;
      if (killServer) {
        await server.kill();
        await sleep(1000);
        await server.start();
        await reconnect();
      }
      const second = spawnWorker(workerEnv(lake, queue, `t${i}-b`));
      workers.push(second.child);
      const up = await second.ready;
      // Resumed = an activity task started on the new worker (or the run already done).
      let resumed: number | undefined;
      const watch = (async () => {
        while (resumed === undefined) {
          const p = await pendingActivities(session.client, workflowId);
          if (p?.startedOn.some((id) => id.startsWith(`t${i}-b`))) resumed = Date.now();
          await sleep(200);
        }
      })();
      let status = 'succeeded';
      try {
        await session.client.workflow.getHandle(handle.workflowId).result();
      } catch (e) {
        status = `failed: ${(e as Error).message}`;
      }
      const done = Date.now();
      resumed ??= done;
      await watch;
      await killChild(second.child, 'SIGTERM');
      const digest = status === 'succeeded' ? await lakeDigest(config, lake) : {};
      const identical = JSON.stringify(digest) === JSON.stringify(reference);
      const { orphansBefore, leftovers } = await inspectLake(config, lake, spillBase);
      const t: ChaosTrial = {
        trial: i,
        killPoint,
        killed: killServer ? 'worker+server' : 'worker',
        killedAfterS: round1(killedAfterS),
        resumeS: round1((Math.max(resumed, up) - up) / 1000),
        recoveryS: round1((done - up) / 1000),
        lostS: round1((done - started - (up - killedAt)) / 1000 - cleanRunS),
        status,
        identical,
        orphansBeforeMaintenance: orphansBefore,
        leftovers,
      };
      trials.push(t);
      log(
        `trial ${i}: killed ${t.killed} at ${t.killedAfterS} s (${killPoint}); resumed ${t.resumeS} s, ` +
          `done ${t.recoveryS} s after the new worker polled (lost ${t.lostS} s); ${identical ? 'identical' : 'DIFFERENT'}` +
          (leftovers.length ? `; leftovers: ${leftovers.join(', ')}` : ''),
      );
    }
    const rec = trials.map((t) => t.recoveryS);
    const res = trials.map((t) => t.resumeS);
    return {
      scale: opts.scale,
      seed: opts.seed,
      cleanRunS: round1(cleanRunS),
      reference,
      trials,
      summary: {
        identical: trials.filter((t) => t.identical).length,
        withLeftovers: trials.filter((t) => t.leftovers.length > 0).length,
        recoveryP50: percentile(rec, 0.5),
        recoveryP95: percentile(rec, 0.95),
        recoveryMax: Math.max(0, ...rec),
        resumeP50: percentile(res, 0.5),
        resumeP95: percentile(res, 0.95),
        lostP50: percentile(
          trials.map((t) => t.lostS),
          0.5,
        ),
        lostP95: percentile(
          trials.map((t) => t.lostS),
          0.95,
        ),
      },
    };
  } finally {
    for (const c of workers) await killChild(c, 'SIGKILL');
    await session.close().catch(() => undefined);
    await server.stop();
  }
}
