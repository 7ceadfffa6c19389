import crypto from 'node:crypto';
import type { Config } from '../config/env';
import { joinUri } from '../config/env';
import { isNotFound, storageFor } from './storage';

/**
 * The commit fence's record of retried activity attempts (lake/fence.ts, activities/common.ts `fencedActivity`): one
 * small object per (workflow run, activity) beside the lake lease, `_meta/attempts/<hash>.json`, holding the latest
 * attempt that started. Every attempt > 1 writes it before doing anything; every commit reads it. A read is a file
 * read (local) or one GET (S3): the fence runs inside the lake's write turn before each COMMIT, where a query of a
 * DuckLake table cost 50–150 ms per commit (measured at S=1: 67 fence checks, 8.9 s of serialized time in a 17 s
 * run). The history stays queryable in `meta.attempts`, which a retried attempt also appends to.
 */
export interface AttemptRecord {
  workflowId: string;
  runId: string;
  activityId: string;
  attempt: number;
  worker: string;
  startedAt: string;
}

export function attemptUri(lakeRoot: string, runId: string, activityId: string): string {
  const h = crypto.createHash('sha256').update(`${runId}\u0000${activityId}`).digest('hex').slice(0, 32);
  return joinUri(lakeRoot, '_meta', 'attempts', `${h}.json`);
}

/** The latest attempt registered for the activity of a run; 0 when none (only retries register). */
export async function latestAttempt(
  config: Config,
  lakeRoot: string,
  runId: string,
  activityId: string,
): Promise<number> {
  try {
    const bytes = await storageFor(lakeRoot, config).readBytes(attemptUri(lakeRoot, runId, activityId));
    const rec = JSON.parse(bytes.toString('utf8')) as Partial<AttemptRecord>;
    return typeof rec.attempt === 'number' ? rec.attempt : 0;
  } catch (e) {
    if (isNotFound(e)) return 0;
    // A torn or foreign object cannot be half-written (writes are atomic); anything unreadable is an error to retry.
    throw e;
  }
}

/** Registers an attempt; a record of a later attempt already there is kept (attempts only move forward). */
export async function registerAttempt(config: Config, lakeRoot: string, rec: AttemptRecord): Promise<void> {
  if ((await latestAttempt(config, lakeRoot, rec.runId, rec.activityId)) >= rec.attempt) return;
  await storageFor(lakeRoot, config).writeBytes(attemptUri(lakeRoot, rec.runId, rec.activityId), JSON.stringify(rec));
}

/** Attempt records are needed while their run is open; lake maintenance removes those older than this. */
export const ATTEMPT_RECORD_DAYS = 7;

/**
 * Deletes attempt records whose attempt started before `before`, and temp files of killed writers (lake
 * maintenance); returns how many.
 */
export async function pruneAttempts(config: Config, lakeRoot: string, before: number): Promise<number> {
  const storage = storageFor(lakeRoot, config);
  const stale: string[] = [];
  for (const o of await storage.list(joinUri(lakeRoot, '_meta', 'attempts'))) {
    // A writer killed between writing its temp file and renaming it leaves `<hash>.json.tmp-…`: debris.
    if (o.key.includes('.json.tmp-')) stale.push(o.uri);
    if (!o.key.endsWith('.json')) continue;
    const rec = await storage
      .readBytes(o.uri)
      .then((b) => JSON.parse(b.toString('utf8')) as Partial<AttemptRecord>)
      .catch(() => undefined);
    const started = Date.parse(rec?.startedAt ?? '');
    if (!(started >= before)) stale.push(o.uri);
  }
  await storage.delete(stale);
  return stale.length;
}
