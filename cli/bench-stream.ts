import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadConfig } from '../config/env';
import { EVENTS_PREFIX } from '../lake/landing';
import { generate } from '../lake/generator';
import { currentSnapshot, qualified } from '../lake/lakehouse';
import { closeReader, withLakeReader } from '../lake/reader';
import { readSpeedState, SPEED_LAYER, SPEED_TABLES } from '../lake/speed';
import { openSession } from './run';
import { Watcher } from '../worker/watcher';
import type { WatchOutcome } from '../worker/watcher';

/** Nearest-rank percentile of a sorted list. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/**
 * `cpa bench-stream`: the SPEC §12 "file landed → speed-layer row queryable" latency, embedded mode. Generates a
 * stream (cached by scale and seed), starts the embedded dev server + worker + watcher (start-up excluded), then
 * drops the files one at a time into an empty landing dir (write to a hidden temp name, rename: an atomic landing)
 * and measures from the rename until a reader sees the file's rows in the speed windows (state done + a query of
 * `speed.windows` through the lake's catalog, on a DuckDB instance of its own, returning them). The first file is
 * reported apart (cold caches).
 */
export async function runStreamBench(opts: {
  scale: number;
  seed: number;
  files: number;
  interval?: number;
  dir?: string;
  json?: boolean;
}): Promise<void> {
  const dir = opts.dir ?? path.join(os.tmpdir(), 'cpa-bench-stream');
  const source = path.join(dir, `landing-s${opts.scale}-seed${opts.seed}`);
  if (!fs.existsSync(path.join(source, '_generator_report.json'))) {
    process.stderr.write(`generating S=${opts.scale} into ${source}\n`);
    await generate({ scale: opts.scale, seed: opts.seed, out: source });
  }
  const lake = path.join(dir, 'lake-stream');
  const landing = path.join(dir, 'landing-stream');
  fs.rmSync(lake, { recursive: true, force: true });
  fs.rmSync(landing, { recursive: true, force: true });
  fs.mkdirSync(path.join(landing, EVENTS_PREFIX), { recursive: true });
  const names = fs
    .readdirSync(path.join(source, EVENTS_PREFIX))
    .filter((f) => f.endsWith('.jsonl'))
    .sort()
    .slice(0, opts.files);

  // Embedded mode as §12 measures it: no TEMPORAL_ADDRESS / Cassandra from .cpa-stack.env, only the real environment.
  const env: Record<string, string | undefined> = { ...process.env, CPA_LAKE_ROOT: lake, CPA_LANDING_ROOT: landing };
  if (opts.interval) env.CPA_WATCH_INTERVAL_SECONDS = String(opts.interval);
  const cfg = loadConfig(env);
  const session = await openSession(cfg);
  const outcomes = new Map<string, WatchOutcome>();
  const watcher = new Watcher({
    client: session.client,
    config: cfg,
    lake,
    landing,
    log: () => undefined,
    onOutcome: (o) => outcomes.set(o.fileKey, o),
  });
  watcher.start();
  const latencies: number[] = [];
  const workflowMs: number[] = [];
  let first: number | undefined;
  try {
    await withLakeReader(cfg, lake, async (conn, attached) => {
      const windows = qualified(attached, SPEED_LAYER, SPEED_TABLES.windows);
      for (const [i, name] of names.entries()) {
        const key = `${EVENTS_PREFIX}/${name}`;
        const target = path.join(landing, key);
        const tmp = path.join(landing, EVENTS_PREFIX, `.${name}.tmp`);
        fs.copyFileSync(path.join(source, key), tmp);
        const t0 = performance.now();
        fs.renameSync(tmp, target);
        let seen = -1;
        for (;;) {
          const o = outcomes.get(key);
          if (o && o.status !== 'completed') throw new Error(`${key}: ${o.status} ${o.error ?? ''}`);
          // Rows become visible only with a new snapshot: poll its id (a catalog lookup) and read the state (a scan
          // that grows with the files processed) once per commit, not per poll, so the reader does not load the
          // worker it is measuring.
          const snapshot = await currentSnapshot(conn, attached);
          const entry = snapshot === seen ? undefined : (await readSpeedState(conn, attached)).files[key];
          seen = snapshot;
          if (entry?.status === 'done') {
            // Done commits with the windows, so the table exists once a file with on-time events is done.
            if (entry.onTime === 0) break;
            const r = (
              await conn.runAndReadAll(`select count(*)::integer as n from ${windows} where source_file = $key`, {
                key,
              })
            ).getRowObjectsJson();
            if (Number(r[0].n) > 0) break;
          }
          await new Promise((r) => setTimeout(r, 5));
        }
        const ms = performance.now() - t0;
        // The watcher's outcome (start → result) arrives with the workflow result; wait for it briefly.
        for (let k = 0; k < 200 && !outcomes.has(key); k++) await new Promise((r) => setTimeout(r, 5));
        if (i === 0) first = ms;
        else {
          latencies.push(ms);
          const o = outcomes.get(key);
          if (o) workflowMs.push(o.ms);
        }
        if (!opts.json && (i + 1) % 10 === 0) process.stderr.write(`${i + 1}/${names.length} files\n`);
      }
    });
  } finally {
    await watcher.stop();
    await closeReader();
    await session.close();
  }
  const sorted = [...latencies].sort((a, b) => a - b);
  const wf = [...workflowMs].sort((a, b) => a - b);
  const result = {
    scale: opts.scale,
    files: names.length,
    watchIntervalSeconds: cfg.streaming.watchIntervalMs / 1000,
    firstFileMs: first === undefined ? null : Math.round(first),
    p50Ms: Math.round(percentile(sorted, 50)),
    p95Ms: Math.round(percentile(sorted, 95)),
    maxMs: Math.round(sorted[sorted.length - 1] ?? NaN),
    workflowP50Ms: Math.round(percentile(wf, 50)),
    workflowP95Ms: Math.round(percentile(wf, 95)),
    machine: `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.cpus()[0]?.model ?? ''}`,
    date: new Date().toISOString().slice(0, 10),
  };
  if (opts.json) console.log(JSON.stringify(result, null, 2));
  else {
    console.log(
      `file landed → speed row queryable over ${result.files - 1} files (S=${result.scale}, watcher interval ` +
        `${result.watchIntervalSeconds}s + fs.watch): p50 ${result.p50Ms} ms, p95 ${result.p95Ms} ms, max ${result.maxMs} ms ` +
        `(first file ${result.firstFileMs} ms); workflow start → result p50 ${result.workflowP50Ms} ms, p95 ${result.workflowP95Ms} ms`,
    );
    console.log(`machine: ${result.machine}; ${result.date}`);
  }
}
