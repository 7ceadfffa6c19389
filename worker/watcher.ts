import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { WorkflowExecutionAlreadyStartedError, WorkflowFailedError } from '@temporalio/client';
import type { Client, WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import type { Config } from '../config/env';
import { rootMessage } from '../workflows/failures';
import { joinUri } from '../config/env';
import { EVENTS_PREFIX, isEventFileKey } from '../lake/landing';
import { withLakeReader } from '../lake/reader';
import { readSpeedState } from '../lake/speed';
import {
  isNotFound,
  isS3,
  listLanding,
  readLandingFile,
  RefusedFileError,
  resolveLandingKey,
  storageFor,
  UnsafeKeyError,
} from '../lake/storage';
import type { IngestEventFileInput, IngestEventFileResult, ingestEventFile } from '../workflows';
import { clientFor } from './temporal';
import { firstLine } from '../lake/errors';

/**
 * `ingest-file/<key>@<16 hex of sha256(lake + '\n' + key + '\n' + content sha256)>`, e.g.
 * `ingest-file/usage_events_stream/events_part_0007.jsonl@3f2a…`: the id names the file (the Web UI's list shows
 * which file a run ingests), and the hash makes it one id per version of one file per lake. The same bytes under the
 * same key give the same id (a re-drop is a no-op); changed bytes are a new file; the lake is part of the hash so that
 * two lakes sharing a namespace (a test lake, an S3 and a local one) each ingest the file once.
 */
export function ingestFileWorkflowId(lake: string, fileKey: string, contentSha256: string): string {
  const version = crypto.createHash('sha256').update(`${lake}\n${fileKey}\n${contentSha256}`).digest('hex');
  return `ingest-file/${fileKey}@${version.slice(0, 16)}`;
}

/**
 * Reads one landed events file by key, confined to the landing root, and hashes it. Throws UnsafeKeyError for a key
 * outside the landing root or that is not `usage_events_stream/….jsonl`, RefusedFileError for anything but a regular
 * file inside the root (a symlink, FIFO, device, directory).
 */
export async function hashLandingFile(
  config: Config,
  landing: string,
  fileKey: string,
): Promise<{ sha256: string; size: number }> {
  const uri = resolveLandingKey(landing, fileKey);
  if (!fileKey.startsWith(`${EVENTS_PREFIX}/`) || !isEventFileKey(fileKey.slice(EVENTS_PREFIX.length + 1))) {
    throw new UnsafeKeyError(`file key '${fileKey}' is not an events file (${EVENTS_PREFIX}/*.jsonl)`);
  }
  const bytes = await readLandingFile(storageFor(landing, config), landing, uri, fileKey);
  return { sha256: crypto.createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
}

export interface StartedIngest {
  workflowId: string;
  /** A completed run of this id exists: the file version was ingested before, nothing was started. */
  duplicate: boolean;
  handle?: WorkflowHandleWithFirstExecutionRunId<typeof ingestEventFile>;
}

/**
 * Starts ingestEventFile for one file version. Reuse policy ALLOW_DUPLICATE_FAILED_ONLY: a completed run of the id
 * rejects the start (→ duplicate), a failed one may be retried by re-dropping; a running one is attached to.
 * `rerun` allows a completed id to run again.
 */
export async function startIngestFile(
  client: Client,
  config: Config,
  input: IngestEventFileInput & { contentSha256: string },
  opts: { rerun?: boolean } = {},
): Promise<StartedIngest> {
  const workflowId = ingestFileWorkflowId(input.lake, input.fileKey, input.contentSha256);
  try {
    const handle = await client.workflow.start<typeof ingestEventFile>('ingestEventFile', {
      taskQueue: config.temporal.taskQueue,
      workflowId,
      args: [input],
      // `rerun`: an operator's deliberate re-run (safe: both writers are idempotent), e.g. after resetting the speed layer.
      workflowIdReusePolicy: opts.rerun ? 'ALLOW_DUPLICATE' : 'ALLOW_DUPLICATE_FAILED_ONLY',
      workflowIdConflictPolicy: 'USE_EXISTING',
      memo: { fileKey: input.fileKey, contentSha256: input.contentSha256 },
    });
    return { workflowId, duplicate: false, handle };
  } catch (e) {
    if (e instanceof WorkflowExecutionAlreadyStartedError) return { workflowId, duplicate: true };
    throw e;
  }
}

/** What became of one file the watcher submitted. */
export interface WatchOutcome {
  fileKey: string;
  workflowId: string;
  status: 'completed' | 'duplicate' | 'failed';
  result?: IngestEventFileResult;
  error?: string;
  ms: number;
}

export interface WatcherOptions {
  client: Client;
  config: Config;
  lake: string;
  landing: string;
  intervalMs?: number;
  concurrency?: number;
  log?: (line: string) => void;
  onOutcome?: (o: WatchOutcome) => void;
}

/**
 * Watches `<landing>/usage_events_stream/` (local dir or S3 prefix via Storage.list) and starts one ingestEventFile
 * per new or changed file, at most `concurrency` in flight, in key order. A file is (re-)hashed only when its
 * listing signature changes (S3 ETag, or size + mtime locally); a version the speed layer has already processed is
 * not submitted again, so restarting the watcher costs one hash per file and no workflow. A local landing dir is
 * also watched with fs.watch, which triggers a poll at once (polling stays the source of truth).
 * Landing writers should publish files atomically (rename, S3 PUT); a file caught half-written is ingested as it
 * was and again, as a changed file, when complete (bronze keeps first-seen rows, so nothing is counted twice).
 */
export class Watcher {
  private readonly seen = new Map<string, { signature: string; sha256: string }>();
  /** Keys already reported as refused (logged once, not at every poll). */
  private readonly refused = new Set<string>();
  private readonly queue: Array<{ fileKey: string; sha256: string }> = [];
  private readonly inFlight = new Map<string, Promise<void>>();
  private stopped = false;
  private loop?: Promise<void>;
  private wake?: () => void;
  private fsWatcher?: fs.FSWatcher;
  private readonly intervalMs: number;
  private readonly concurrency: number;
  private readonly log: (line: string) => void;

  constructor(private readonly opts: WatcherOptions) {
    this.intervalMs = opts.intervalMs ?? opts.config.streaming.watchIntervalMs;
    this.concurrency = opts.concurrency ?? opts.config.streaming.watchConcurrency;
    this.log = opts.log ?? ((line) => console.log(line));
  }

  get prefix(): string {
    return joinUri(this.opts.landing, EVENTS_PREFIX);
  }

  start(): void {
    if (this.loop) return;
    if (!isS3(this.opts.landing)) this.watchLocalDir();
    this.loop = (async () => {
      while (!this.stopped) {
        await this.pollOnce().catch((e: unknown) => this.log(`[watch] poll failed (will retry): ${firstLine(e)}`));
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, this.intervalMs);
          this.wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        this.wake = undefined;
      }
    })();
  }

  /**
   * Stops polling. With `drain`, waits for the workflows in flight to finish; without, leaves them to the server
   * (they are durable) — what a worker shutting down must do, since it will not run them itself.
   */
  async stop(opts: { drain?: boolean } = {}): Promise<void> {
    this.stopped = true;
    this.fsWatcher?.close();
    this.wake?.();
    await this.loop;
    this.queue.length = 0;
    if (opts.drain) await Promise.allSettled([...this.inFlight.values()]);
  }

  /** Files submitted and not finished yet. */
  get pending(): number {
    return this.inFlight.size + this.queue.length;
  }

  /** One listing pass; returns how many files it queued. */
  async pollOnce(): Promise<number> {
    const { config, landing, lake } = this.opts;
    const landingStorage = storageFor(landing, config);
    const { files: objects, refused } = await listLanding(landingStorage, this.prefix, isEventFileKey);
    for (const r of refused) {
      const key = `${EVENTS_PREFIX}/${r.key}`;
      if (this.refused.has(key)) continue;
      this.refused.add(key);
      this.log(`[watch] ${key}: refused: ${r.reason} (only regular files inside the landing root are ingested)`);
    }
    let state: Awaited<ReturnType<typeof readSpeedState>> | undefined;
    let queued = 0;
    for (const o of objects) {
      const fileKey = `${EVENTS_PREFIX}/${o.key}`;
      let signature = o.etag ?? String(o.size);
      if (landingStorage.kind === 'local') {
        const st = await fsp.stat(o.uri).catch(() => undefined);
        if (!st) continue;
        signature = `${st.size}:${st.mtimeMs}`;
      }
      const prev = this.seen.get(fileKey);
      if (prev?.signature === signature) continue;
      let bytes: Buffer;
      try {
        bytes = await readLandingFile(landingStorage, landing, o.uri, fileKey);
      } catch (e) {
        if (isNotFound(e)) continue;
        if (e instanceof RefusedFileError) {
          if (!this.refused.has(fileKey)) this.log(`[watch] ${fileKey}: refused: ${e.reason}`);
          this.refused.add(fileKey);
          continue;
        }
        throw e;
      }
      const sha256 = crypto.createHash('sha256').update(bytes).digest('hex');
      this.seen.set(fileKey, { signature, sha256 });
      if (prev?.sha256 === sha256) continue;
      state ??= await withLakeReader(config, lake, (conn, l) => readSpeedState(conn, l));
      const known = state.files[fileKey];
      if (known && known.sha256 === sha256 && known.status === 'done') continue;
      if (this.queue.some((q) => q.fileKey === fileKey && q.sha256 === sha256)) continue;
      this.queue.push({ fileKey, sha256 });
      queued++;
    }
    this.pump();
    return queued;
  }

  private pump(): void {
    while (!this.stopped && this.inFlight.size < this.concurrency && this.queue.length > 0) {
      const item = this.queue.shift()!;
      const id = ingestFileWorkflowId(this.opts.lake, item.fileKey, item.sha256);
      if (this.inFlight.has(id)) continue;
      const p = this.submit(item).finally(() => {
        this.inFlight.delete(id);
        this.pump();
      });
      this.inFlight.set(id, p);
    }
  }

  private async submit(item: { fileKey: string; sha256: string }): Promise<void> {
    const { client, config, lake, landing, onOutcome } = this.opts;
    const started = Date.now();
    const workflowId = ingestFileWorkflowId(lake, item.fileKey, item.sha256);
    let outcome: WatchOutcome;
    try {
      const s = await startIngestFile(client, config, {
        fileKey: item.fileKey,
        lake,
        landing,
        contentSha256: item.sha256,
      });
      if (s.duplicate) {
        outcome = { fileKey: item.fileKey, workflowId, status: 'duplicate', ms: Date.now() - started };
      } else {
        const result = await s.handle!.result();
        outcome = { fileKey: item.fileKey, workflowId, status: 'completed', result, ms: Date.now() - started };
      }
    } catch (e) {
      // Stopped without draining: the connection closes under the wait; the workflow itself carries on.
      if (this.stopped) return;
      // A failed workflow is final for this version (re-drop changed bytes to retry); anything else (server
      // unreachable, …) is retried at the next poll.
      if (!(e instanceof WorkflowFailedError)) this.seen.delete(item.fileKey);
      outcome = {
        fileKey: item.fileKey,
        workflowId,
        status: 'failed',
        error: rootMessage(e).split('\n')[0],
        ms: Date.now() - started,
      };
    }
    this.log(describeOutcome(outcome));
    onOutcome?.(outcome);
  }

  private watchLocalDir(): void {
    try {
      fs.mkdirSync(this.prefix, { recursive: true });
      this.fsWatcher = fs.watch(this.prefix, { persistent: false, recursive: true }, () => this.wake?.());
      this.fsWatcher.on('error', () => this.fsWatcher?.close());
    } catch {
      /* no inotify here (or no permission): polling alone */
    }
  }
}

export function describeOutcome(o: WatchOutcome): string {
  const secs = (o.ms / 1000).toFixed(2);
  if (o.status === 'duplicate') return `[watch] ${o.fileKey}: already ingested (${o.workflowId})`;
  if (o.status === 'failed') return `[watch] ${o.fileKey}: FAILED (${o.workflowId}): ${o.error}`;
  const r = o.result!;
  if (r.bronze.extra.files_skipped && r.speed.extra.files_skipped) {
    return `[watch] ${o.fileKey}: this version is already in bronze and the speed layer, nothing changed (${o.workflowId})`;
  }
  return (
    `[watch] ${o.fileKey}: ${r.bronze.rowsIn} lines, ${r.speed.extra.events_on_time ?? 0} events into windows, ` +
    `${r.speed.extra.events_late ?? 0} late, ${r.alerts} alerts in ${secs}s (${o.workflowId})` +
    (r.speed.extra.files_rejudged ? `; ${r.speed.extra.files_rejudged} later files judged again` : '') +
    (r.alertDeliveryError ? `; alert delivery FAILED: ${r.alertDeliveryError}` : '')
  );
}

/** Starts a watcher with its own client connection (for `cpa worker`); `stop()` also closes the connection. */
export async function startWatcher(config: Config, address: string): Promise<{ stop(): Promise<void> }> {
  const { client, close } = await clientFor(config, address);
  const watcher = new Watcher({ client, config, lake: config.lakeRoot, landing: config.landingRoot });
  watcher.start();
  console.log(
    `watching ${watcher.prefix} every ${config.streaming.watchIntervalMs / 1000}s (ingestEventFile per new file)`,
  );
  return {
    async stop() {
      await watcher.stop();
      await close();
    },
  };
}
