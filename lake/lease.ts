import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Config } from '../config/env';
import { joinUri } from '../config/env';
import { isS3, makeS3Client, parseS3Uri } from './storage';

/**
 * The lake-level write lease: one object, `_meta/locks/lake.json`, created exclusively (local: hard link of a fully
 * written temp file, which fails when the name exists; S3: `PutObject` with `If-None-Match: *`). It carries an expiry:
 * the holder renews it, and an expired lease is taken over (local: rename-and-verify; S3: `PutObject` with
 * `If-Match: <etag>`), so a holder that vanished without releasing blocks the lake for at most one TTL.
 *
 * The holder identity is the Temporal run (workflow id + run id): an activity retried after it already acquired the
 * lease finds itself as holder and succeeds again (re-entrant). Expiry uses the wall clock of the host that acquires,
 * so hosts sharing a lake need clocks that agree to well within the TTL.
 */

/** Who holds the lease: a Temporal workflow run. */
export interface LeaseHolder {
  workflowId: string;
  runId: string;
}

/** The lease object as stored. */
export interface LeaseRecord {
  holder: LeaseHolder;
  acquiredAt: string;
  renewedAt: string;
  expiresAt: string;
  ttlSeconds: number;
  host: string;
}

export type AcquireResult =
  { acquired: true; lease: LeaseRecord; tookOverFrom?: LeaseHolder } | { acquired: false; heldBy: LeaseRecord };

/**
 * Whether a holder's workflow run is closed (or unknown to the server): its lease can be taken over at once instead
 * of after its TTL. Answers false when it cannot tell.
 */
export type HolderGone = (holder: LeaseHolder) => Promise<boolean>;

export type RenewResult = { renewed: true; lease: LeaseRecord } | { renewed: false; heldBy?: LeaseRecord };

export function leaseUri(lakeRoot: string): string {
  return joinUri(lakeRoot, '_meta', 'locks', 'lake.json');
}

function newRecord(holder: LeaseHolder, ttlSeconds: number, now: number, acquiredAt?: string): LeaseRecord {
  const iso = new Date(now).toISOString();
  return {
    holder,
    acquiredAt: acquiredAt ?? iso,
    renewedAt: iso,
    expiresAt: new Date(now + ttlSeconds * 1000).toISOString(),
    ttlSeconds,
    host: os.hostname(),
  };
}

const sameHolder = (a: LeaseHolder, b: LeaseHolder): boolean => a.workflowId === b.workflowId && a.runId === b.runId;

function parseRecord(text: string): LeaseRecord | undefined {
  try {
    const r = JSON.parse(text) as LeaseRecord;
    return r && r.holder && typeof r.expiresAt === 'string' ? r : undefined;
  } catch {
    return undefined;
  }
}

/** An unreadable lease object (never written by this code, but possible after manual edits) counts as expired. */
const expired = (r: LeaseRecord | undefined, now: number): boolean => !r || !(Date.parse(r.expiresAt) > now);

/** Lease operations for one lake root; `now` is injectable for tests. */
export interface LakeLease {
  /** `gone`: takes over a live lease whose holder's workflow has closed (see {@link HolderGone}). */
  acquire(holder: LeaseHolder, ttlSeconds: number, gone?: HolderGone): Promise<AcquireResult>;
  renew(holder: LeaseHolder, ttlSeconds: number): Promise<RenewResult>;
  /** Deletes the lease when `holder` holds it; false when someone else does (or nobody). */
  release(holder: LeaseHolder): Promise<boolean>;
  read(): Promise<LeaseRecord | undefined>;
}

export function lakeLease(lakeRoot: string, config: Config, now: () => number = Date.now): LakeLease {
  return isS3(lakeRoot)
    ? new S3Lease(leaseUri(lakeRoot), makeS3Client(config), now)
    : new LocalLease(leaseUri(lakeRoot), now);
}

class LocalLease implements LakeLease {
  constructor(
    private readonly file: string,
    private readonly now: () => number,
  ) {}

  async read(): Promise<LeaseRecord | undefined> {
    return (await this.readRaw())?.record;
  }

  private async readRaw(): Promise<{ text: string; record?: LeaseRecord } | undefined> {
    try {
      const text = await fsp.readFile(this.file, 'utf8');
      return { text, record: parseRecord(text) };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  private tmpName(tag: string): string {
    return `${this.file}.${tag}-${process.pid}-${crypto.randomBytes(6).toString('hex')}`;
  }

  /**
   * Temp files of a process killed between writing and renaming/removing them (`lake.json.<tag>-<pid>-<hex>`): any
   * older than a minute is removed, so a crash never leaves debris in `_meta/locks`.
   */
  private async removeStaleTemps(): Promise<void> {
    const dir = path.dirname(this.file);
    const prefix = `${path.basename(this.file)}.`;
    const names = await fsp.readdir(dir).catch(() => [] as string[]);
    const cutoff = this.now() - 60_000;
    for (const name of names) {
      if (!name.startsWith(prefix)) continue;
      const p = path.join(dir, name);
      const st = await fsp.stat(p).catch(() => undefined);
      if (st && st.mtimeMs < cutoff) await fsp.rm(p, { force: true });
    }
  }

  /** Creates the lease file only if absent, never exposing a half-written file: write a temp file, hard-link it. */
  private async createExclusive(record: LeaseRecord): Promise<boolean> {
    await fsp.mkdir(path.dirname(this.file), { recursive: true });
    const tmp = this.tmpName('new');
    await fsp.writeFile(tmp, JSON.stringify(record));
    try {
      await fsp.link(tmp, this.file);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e;
    } finally {
      await fsp.rm(tmp, { force: true });
    }
  }

  async acquire(holder: LeaseHolder, ttlSeconds: number, gone?: HolderGone): Promise<AcquireResult> {
    let tookOverFrom: LeaseHolder | undefined;
    await this.removeStaleTemps();
    for (let attempt = 0; attempt < 5; attempt++) {
      const now = this.now();
      if (await this.createExclusive(newRecord(holder, ttlSeconds, now))) {
        return { acquired: true, lease: (await this.read())!, tookOverFrom };
      }
      const cur = await this.readRaw();
      if (!cur) continue; // released between our attempt and the read: try again
      if (cur.record && sameHolder(cur.record.holder, holder)) {
        const renewed = await this.renew(holder, ttlSeconds);
        if (renewed.renewed) return { acquired: true, lease: renewed.lease };
        continue;
      }
      if (!expired(cur.record, now) && !(gone && (await gone(cur.record!.holder)))) {
        return { acquired: false, heldBy: cur.record! };
      }
      // Take over an expired lease (or one whose holder's workflow is closed): move it aside under a unique name, then check we moved the stale object we read
      // and not a fresh lease another contender created meanwhile (which we then put back).
      const aside = this.tmpName('expired');
      try {
        await fsp.rename(this.file, aside);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw e;
      }
      const moved = await fsp.readFile(aside, 'utf8');
      if (moved !== cur.text) {
        await fsp.link(aside, this.file).catch(() => undefined);
        await fsp.rm(aside, { force: true });
        continue;
      }
      await fsp.rm(aside, { force: true });
      tookOverFrom = cur.record?.holder;
    }
    const cur = await this.read();
    if (cur) return { acquired: false, heldBy: cur };
    throw new Error(`lake lease ${this.file}: could not acquire after 5 attempts`);
  }

  async renew(holder: LeaseHolder, ttlSeconds: number): Promise<RenewResult> {
    const cur = await this.read();
    if (!cur || !sameHolder(cur.holder, holder)) return { renewed: false, heldBy: cur };
    const next = newRecord(holder, ttlSeconds, this.now(), cur.acquiredAt);
    const tmp = this.tmpName('renew');
    await fsp.writeFile(tmp, JSON.stringify(next));
    await fsp.rename(tmp, this.file);
    return { renewed: true, lease: next };
  }

  async release(holder: LeaseHolder): Promise<boolean> {
    const cur = await this.read();
    if (!cur || !sameHolder(cur.holder, holder)) return false;
    await fsp.rm(this.file, { force: true });
    return true;
  }
}

function httpStatus(e: unknown): number | undefined {
  return (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

/** 412 = the precondition did not hold; 409 = a concurrent conditional write won the race. */
const lostRace = (e: unknown): boolean => httpStatus(e) === 412 || httpStatus(e) === 409;

class S3Lease implements LakeLease {
  private readonly bucket: string;
  private readonly key: string;

  constructor(
    uri: string,
    private readonly client: S3Client,
    private readonly now: () => number,
  ) {
    ({ bucket: this.bucket, key: this.key } = parseS3Uri(uri));
  }

  private async get(): Promise<{ etag: string; record?: LeaseRecord } | undefined> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key }));
      const text = await res.Body!.transformToString('utf8');
      return { etag: res.ETag ?? '', record: parseRecord(text) };
    } catch (e) {
      if (httpStatus(e) === 404) return undefined;
      throw e;
    }
  }

  async read(): Promise<LeaseRecord | undefined> {
    return (await this.get())?.record;
  }

  /** A conditional PUT: `ifNoneMatch` creates only when absent, `ifMatch` replaces only that version. */
  private async put(record: LeaseRecord, cond: { IfNoneMatch?: string; IfMatch?: string }): Promise<boolean> {
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.key,
          Body: JSON.stringify(record),
          ContentType: 'application/json',
          ...cond,
        }),
      );
      return true;
    } catch (e) {
      if (lostRace(e)) return false;
      throw e;
    }
  }

  async acquire(holder: LeaseHolder, ttlSeconds: number, gone?: HolderGone): Promise<AcquireResult> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const now = this.now();
      const fresh = newRecord(holder, ttlSeconds, now);
      if (await this.put(fresh, { IfNoneMatch: '*' })) return { acquired: true, lease: fresh };
      const cur = await this.get();
      if (!cur) continue;
      if (cur.record && sameHolder(cur.record.holder, holder)) {
        const again = newRecord(holder, ttlSeconds, now, cur.record.acquiredAt);
        if (await this.put(again, { IfMatch: cur.etag })) return { acquired: true, lease: again };
        continue;
      }
      if (!expired(cur.record, now) && !(gone && (await gone(cur.record!.holder)))) {
        return { acquired: false, heldBy: cur.record! };
      }
      // Compare-and-swap on the stale version: of several contenders exactly one wins.
      if (await this.put(fresh, { IfMatch: cur.etag }))
        return { acquired: true, lease: fresh, tookOverFrom: cur.record?.holder };
    }
    const cur = await this.read();
    if (cur) return { acquired: false, heldBy: cur };
    throw new Error(`lake lease s3://${this.bucket}/${this.key}: could not acquire after 5 attempts`);
  }

  async renew(holder: LeaseHolder, ttlSeconds: number): Promise<RenewResult> {
    const cur = await this.get();
    if (!cur?.record || !sameHolder(cur.record.holder, holder)) return { renewed: false, heldBy: cur?.record };
    const next = newRecord(holder, ttlSeconds, this.now(), cur.record.acquiredAt);
    if (await this.put(next, { IfMatch: cur.etag })) return { renewed: true, lease: next };
    return { renewed: false, heldBy: await this.read() };
  }

  async release(holder: LeaseHolder): Promise<boolean> {
    const cur = await this.get();
    if (!cur?.record || !sameHolder(cur.record.holder, holder)) return false;
    // A live lease is never taken over, so between this read and the delete nobody else can hold it.
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key }));
    return true;
  }
}
