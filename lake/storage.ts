import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  AbortMultipartUploadCommand,
  CopyObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import type { Config } from '../config/env';

/** One object/file under a storage root. `key` is relative to the prefix that was listed. */
export interface StoredObject {
  key: string;
  uri: string;
  size: number;
  /** S3 only: the ETag without quotes (the MD5 of the content for single-part uploads). */
  etag?: string;
  /**
   * Changes whenever the content may have changed: size + mtime locally, size + ETag on S3. Lets ingestion skip
   * re-reading and re-hashing files it already ingested (the sha256 stays the identity of a file's content).
   */
  version: string;
}

/**
 * The lake's view of storage: a local directory (embedded default) or an S3 bucket prefix. Every location is a
 * URI string (absolute path or s3://bucket/key) that DuckDB can read as is. Writes of single objects are atomic:
 * a reader sees the old object or the new one, never half of one.
 */
export interface Storage {
  readonly kind: 'local' | 's3';
  /** Recursively lists objects under `prefixUri`, sorted by key. */
  list(prefixUri: string): Promise<StoredObject[]>;
  exists(uri: string): Promise<boolean>;
  /** The object's bytes; a missing object rejects with an error {@link isNotFound} recognises. */
  readBytes(uri: string): Promise<Buffer>;
  /** Atomically creates or replaces an object. */
  writeBytes(uri: string, data: Buffer | string): Promise<void>;
  /** Atomically creates or replaces `dstUri` with the content of `srcUri` (which stays). */
  copy(srcUri: string, dstUri: string): Promise<void>;
  /** Atomically replaces `dstUri` with `srcUri` and removes the source. */
  move(srcUri: string, dstUri: string): Promise<void>;
  /** Deletes objects; missing ones are ignored. */
  delete(uris: string[]): Promise<void>;
  /**
   * Deletes everything under a directory-like prefix (on S3 also aborts unfinished multipart uploads there) and
   * returns how many objects and uploads it removed.
   */
  deletePrefix(prefixUri: string): Promise<number>;
  /** Makes sure a directory-like prefix can be written into (mkdir -p locally; nothing to do on S3). */
  prepareDir(prefixUri: string): Promise<void>;
}

export function isS3(uri: string): boolean {
  return uri.startsWith('s3://');
}

/** True for "no such file/object" from either backend (a missing bucket is an error, not an empty table). */
export function isNotFound(e: unknown): boolean {
  const err = e as { code?: string; name?: string; $metadata?: { httpStatusCode?: number } };
  if (err?.name === 'NoSuchBucket') return false;
  return (
    err?.code === 'ENOENT' ||
    err?.name === 'NoSuchKey' ||
    err?.name === 'NotFound' ||
    err?.$metadata?.httpStatusCode === 404
  );
}

const s3Storages = new WeakMap<Config, S3Storage>();

/** Storage for a URI: local for paths, S3 for s3:// (one client per config, so connections are reused). */
export function storageFor(uri: string, config: Config): Storage {
  if (!isS3(uri)) return new LocalStorage();
  let s3 = s3Storages.get(config);
  if (!s3) {
    s3 = new S3Storage(config);
    s3Storages.set(config, s3);
  }
  return s3;
}

export class LocalStorage implements Storage {
  readonly kind = 'local' as const;

  async list(prefixUri: string): Promise<StoredObject[]> {
    const out: StoredObject[] = [];
    const walk = async (dir: string): Promise<void> => {
      let entries: fs.Dirent[];
      try {
        entries = await fsp.readdir(dir, { withFileTypes: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw e;
      }
      for (const ent of entries) {
        const full = path.join(dir, ent.name);
        if (ent.isDirectory()) await walk(full);
        else if (ent.isFile()) {
          const st = await fsp.stat(full);
          out.push({
            key: path.relative(prefixUri, full).split(path.sep).join('/'),
            uri: full,
            size: st.size,
            version: `${st.size}-${Math.trunc(st.mtimeMs)}`,
          });
        }
      }
    };
    await walk(prefixUri);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async exists(uri: string): Promise<boolean> {
    return fs.existsSync(uri);
  }

  async readBytes(uri: string): Promise<Buffer> {
    return fsp.readFile(uri);
  }

  async writeBytes(uri: string, data: Buffer | string): Promise<void> {
    await fsp.mkdir(path.dirname(uri), { recursive: true });
    const tmp = `${uri}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
    await fsp.writeFile(tmp, data);
    await fsp.rename(tmp, uri);
  }

  async copy(srcUri: string, dstUri: string): Promise<void> {
    await fsp.mkdir(path.dirname(dstUri), { recursive: true });
    const tmp = `${dstUri}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
    // A hard link costs nothing and lake files are never modified in place; another filesystem falls back to a copy.
    await fsp.link(srcUri, tmp).catch(() => fsp.copyFile(srcUri, tmp));
    await fsp.rename(tmp, dstUri);
  }

  async move(srcUri: string, dstUri: string): Promise<void> {
    await fsp.mkdir(path.dirname(dstUri), { recursive: true });
    // rename(2) replaces the destination atomically on the same filesystem.
    await fsp.rename(srcUri, dstUri);
  }

  async delete(uris: string[]): Promise<void> {
    for (const uri of uris) await fsp.rm(uri, { force: true });
  }

  async deletePrefix(prefixUri: string): Promise<number> {
    const n = (await this.list(prefixUri)).length;
    await fsp.rm(prefixUri, { recursive: true, force: true });
    return n;
  }

  async prepareDir(prefixUri: string): Promise<void> {
    await fsp.mkdir(prefixUri, { recursive: true });
  }
}

export function parseS3Uri(uri: string): { bucket: string; key: string } {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(uri);
  if (!m) throw new Error(`not an s3 URI: ${uri}`);
  return { bucket: m[1], key: m[2] };
}

/** Client options for short, single-attempt probes (the preflight check) on top of the normal ones. */
export interface S3ClientOptions {
  maxAttempts?: number;
  connectionTimeoutMs?: number;
  requestTimeoutMs?: number;
}

export function makeS3Client(config: Config, opts: S3ClientOptions = {}): S3Client {
  const { endpoint, region, accessKeyId, secretAccessKey, urlStyle } = config.s3;
  // The SDK warns on every start that a future release will need Node 22; the project supports Node 20, and the
  // warning would land in every CLI's stderr.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  return new S3Client({
    endpoint,
    region,
    forcePathStyle: urlStyle === 'path',
    credentials: accessKeyId && secretAccessKey ? { accessKeyId, secretAccessKey } : undefined,
    // MinIO and older S3-compatible servers reject the SDK's default CRC32 trailers.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: opts.maxAttempts ?? 5,
    requestHandler: {
      connectionTimeout: opts.connectionTimeoutMs ?? 10_000,
      requestTimeout: opts.requestTimeoutMs ?? 120_000,
      // Fail (and retry) a request that got no answer instead of only logging a warning.
      throwOnRequestTimeout: true,
    },
  });
}

/** `bucket/key` as CopyObject wants it: every path segment URL-encoded. */
function copySource(bucket: string, key: string): string {
  return `${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
}

export class S3Storage implements Storage {
  readonly kind = 's3' as const;
  readonly client: S3Client;

  constructor(config: Config) {
    this.client = makeS3Client(config);
  }

  async list(prefixUri: string): Promise<StoredObject[]> {
    const { bucket, key } = parseS3Uri(prefixUri);
    const prefix = key === '' || key.endsWith('/') ? key : `${key}/`;
    const out: StoredObject[] = [];
    let token: string | undefined;
    do {
      const res = await this.client.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const o of res.Contents ?? []) {
        if (!o.Key) continue;
        out.push({
          key: o.Key.slice(prefix.length),
          uri: `s3://${bucket}/${o.Key}`,
          size: o.Size ?? 0,
          etag: o.ETag?.replace(/"/g, ''),
          version: `${o.Size ?? 0}-${o.ETag?.replace(/"/g, '') ?? ''}`,
        });
      }
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async exists(uri: string): Promise<boolean> {
    const { bucket, key } = parseS3Uri(uri);
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return true;
    } catch (e) {
      if (isNotFound(e)) return false;
      throw e;
    }
  }

  async readBytes(uri: string): Promise<Buffer> {
    const { bucket, key } = parseS3Uri(uri);
    const res = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return Buffer.from(await res.Body!.transformToByteArray());
  }

  async writeBytes(uri: string, data: Buffer | string): Promise<void> {
    const { bucket, key } = parseS3Uri(uri);
    // A PUT becomes visible only when complete: readers see the old object or the new one.
    await this.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: data }));
  }

  async copy(srcUri: string, dstUri: string): Promise<void> {
    const src = parseS3Uri(srcUri);
    const dst = parseS3Uri(dstUri);
    // A server-side CopyObject is atomic like a PUT (one request, up to 5 GB per object).
    await this.client.send(
      new CopyObjectCommand({ Bucket: dst.bucket, Key: dst.key, CopySource: copySource(src.bucket, src.key) }),
    );
  }

  async move(srcUri: string, dstUri: string): Promise<void> {
    await this.copy(srcUri, dstUri);
    await this.delete([srcUri]);
  }

  async delete(uris: string[]): Promise<void> {
    const byBucket = new Map<string, string[]>();
    for (const uri of uris) {
      const { bucket, key } = parseS3Uri(uri);
      byBucket.set(bucket, [...(byBucket.get(bucket) ?? []), key]);
    }
    for (const [bucket, keys] of byBucket) {
      for (let i = 0; i < keys.length; i += 1000) {
        const res = await this.client.send(
          new DeleteObjectsCommand({
            Bucket: bucket,
            Delete: { Objects: keys.slice(i, i + 1000).map((Key) => ({ Key })), Quiet: true },
          }),
        );
        const failed = (res.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
        if (failed.length > 0) {
          throw new Error(`S3 delete failed for ${failed.length} object(s), e.g. ${failed[0].Key}: ${failed[0].Code}`);
        }
      }
    }
  }

  async deletePrefix(prefixUri: string): Promise<number> {
    // A writer killed during a multipart upload leaves it open: invisible to readers, but it holds storage. Aborting
    // is housekeeping (MinIO and lifecycle rules expire them too), so a key without the right to list them skips it.
    const uploads = await this.listUploads(prefixUri).catch((e: unknown) => {
      const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
      if (err?.name === 'AccessDenied' || err?.$metadata?.httpStatusCode === 403) return [];
      throw e;
    });
    await this.abortUploads(uploads);
    const objects = await this.list(prefixUri);
    await this.delete(objects.map((o) => o.uri));
    return uploads.length + objects.length;
  }

  /** Aborts multipart uploads (an upload already completed or aborted is not an error). */
  async abortUploads(uploads: Array<{ bucket: string; key: string; uploadId: string }>): Promise<void> {
    for (const u of uploads) {
      await this.client
        .send(new AbortMultipartUploadCommand({ Bucket: u.bucket, Key: u.key, UploadId: u.uploadId }))
        .catch((e: unknown) => {
          if (!isNotFound(e) && (e as { name?: string }).name !== 'NoSuchUpload') throw e;
        });
    }
  }

  /** Unfinished multipart uploads under a directory-like prefix. */
  async listUploads(
    prefixUri: string,
  ): Promise<Array<{ bucket: string; key: string; uploadId: string; initiated?: Date }>> {
    const { bucket, key } = parseS3Uri(prefixUri);
    const prefix = key === '' || key.endsWith('/') ? key : `${key}/`;
    const out: Array<{ bucket: string; key: string; uploadId: string; initiated?: Date }> = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    do {
      // MinIO answers a Prefix only with uploads of exactly that key, so list the bucket's uploads and filter here
      // (normally a handful: uploads finish in seconds and MinIO expires stale ones after 24 h).
      const res = await this.client.send(
        new ListMultipartUploadsCommand({ Bucket: bucket, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
      );
      for (const u of res.Uploads ?? []) {
        if (u.Key?.startsWith(prefix) && u.UploadId) {
          out.push({ bucket, key: u.Key, uploadId: u.UploadId, initiated: u.Initiated });
        }
      }
      keyMarker = res.IsTruncated ? res.NextKeyMarker : undefined;
      uploadIdMarker = res.IsTruncated ? res.NextUploadIdMarker : undefined;
    } while (keyMarker);
    return out;
  }

  async prepareDir(): Promise<void> {
    /* S3 has no directories */
  }
}

/** A fresh scratch directory for one activity; callers remove it when done. */
export async function scratchDir(label: string): Promise<string> {
  return fsp.mkdtemp(path.join(os.tmpdir(), `cpa-${label}-`));
}

/**
 * Resolves a landing file key against the landing root, refusing anything that would escape it
 * (absolute keys, `..` segments, NUL bytes): file keys come from outside and are untrusted.
 */
export function resolveLandingKey(landingRoot: string, key: string): string {
  if (key.includes('\0') || key.startsWith('/') || key.split(/[\\/]/).some((seg) => seg === '..')) {
    throw new UnsafeKeyError(`file key '${key}' is outside the landing root`);
  }
  if (isS3(landingRoot)) return `${landingRoot.replace(/\/+$/, '')}/${key}`;
  const full = path.resolve(landingRoot, key);
  if (!full.startsWith(path.resolve(landingRoot) + path.sep)) {
    throw new UnsafeKeyError(`file key '${key}' is outside the landing root`);
  }
  return full;
}

export class UnsafeKeyError extends Error {
  override name = 'UnsafeKeyError';
}

/**
 * A landing entry that is not a regular file inside the landing root (a symlink, FIFO, device, socket, directory, or
 * a path whose directories resolve outside the root): never read, reported by key and reason.
 */
export class RefusedFileError extends Error {
  override name = 'RefusedFileError';
  constructor(
    readonly key: string,
    readonly reason: string,
  ) {
    super(`landing file ${key} refused: ${reason} (only regular files inside the landing root are ingested)`);
  }
}

/** A landing entry that listing or reading refused, and why. */
export interface RefusedEntry {
  key: string;
  reason: string;
}

function kindOf(st: fs.Stats | fs.Dirent): string {
  if (st.isSymbolicLink()) return 'it is a symbolic link';
  if (st.isDirectory()) return 'it is a directory';
  if (st.isFIFO()) return 'it is a FIFO';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'it is a device';
  if (st.isSocket()) return 'it is a socket';
  return 'it is not a regular file';
}

/**
 * An S3 key that a filesystem would read differently (`..` or `.` segments, empty segments, a leading `/`,
 * backslashes, NUL): refused like a path that escapes the root, so a key means the same everywhere.
 */
export function unsafeS3KeyReason(key: string): string | undefined {
  if (key.includes('\0') || key.includes('\\')) return 'its key has a NUL byte or a backslash';
  if (key.startsWith('/') || key.split('/').some((seg) => seg === '..' || seg === '.' || seg === '')) {
    return "its key has '..', '.' or empty segments";
  }
  return undefined;
}

/**
 * Reads one landing file: regular files only. Locally the file is opened without following a final symlink and
 * without blocking (a FIFO would hang a plain read), its type is checked on the open descriptor, and its real path
 * must lie inside the landing root's. Throws {@link RefusedFileError} otherwise; a missing file rejects with an error
 * {@link isNotFound} recognises.
 */
export async function readLandingFile(
  storage: Storage,
  landingRoot: string,
  uri: string,
  key: string,
): Promise<Buffer> {
  if (storage.kind === 's3') {
    const why = unsafeS3KeyReason(key);
    if (why) throw new RefusedFileError(key, why);
    return storage.readBytes(uri);
  }
  const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(uri, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ELOOP') throw new RefusedFileError(key, 'it is a symbolic link');
    throw e;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new RefusedFileError(key, kindOf(st));
    // Directories on the way may be links: the file must really be inside the root (and be the file opened).
    const [real, root] = await Promise.all([fsp.realpath(uri), fsp.realpath(landingRoot)]);
    if (!real.startsWith(root + path.sep))
      throw new RefusedFileError(key, `it resolves outside the landing root (${real})`);
    const again = await fsp.stat(real);
    if (again.ino !== st.ino || again.dev !== st.dev) throw new RefusedFileError(key, 'it changed while being opened');
    return await fh.readFile();
  } finally {
    await fh.close();
  }
}

/**
 * Lists the landing files under `prefixUri` whose key `wanted` accepts, and the entries of such a name that are
 * refused: locally symlinks, FIFOs, devices, sockets and directories (a directory named like a file is not walked
 * into); on S3 keys {@link unsafeS3KeyReason} rejects. Other directories are walked as {@link Storage.list} does.
 */
export async function listLanding(
  storage: Storage,
  prefixUri: string,
  wanted: (key: string) => boolean,
): Promise<{ files: StoredObject[]; refused: RefusedEntry[] }> {
  const refused: RefusedEntry[] = [];
  if (storage.kind === 's3') {
    const files: StoredObject[] = [];
    for (const o of await storage.list(prefixUri)) {
      if (!wanted(o.key)) continue;
      const why = unsafeS3KeyReason(o.key);
      if (why) refused.push({ key: o.key, reason: why });
      else files.push(o);
    }
    return { files, refused };
  }
  const files: StoredObject[] = [];
  const walk = async (dir: string): Promise<void> => {
    let entries: fs.Dirent[];
    try {
      entries = await fsp.readdir(dir, { withFileTypes: true });
    } catch (e) {
      // No such directory (or a file where it should be): nothing landed there; callers judge an empty landing.
      if (['ENOENT', 'ENOTDIR'].includes((e as NodeJS.ErrnoException).code ?? '')) return;
      throw e;
    }
    const named = entries.map((ent) => {
      const full = path.join(dir, ent.name);
      const key = path.relative(prefixUri, full).split(path.sep).join('/');
      return { ent, full, key, want: wanted(key) };
    });
    // The files' lstat calls all at once: one at a time, each waits its turn on an event loop the other activities
    // keep busy (1,200 files took 340 ms of a one-day run's critical path, 11-24 ms at once).
    const stats = await Promise.all(
      named.map(({ ent, full, want }) => (ent.isFile() && want ? fsp.lstat(full).catch(() => undefined) : undefined)),
    );
    for (const [i, { ent, full, key, want }] of named.entries()) {
      if (ent.isFile()) {
        if (!want) continue;
        const st = stats[i];
        if (!st) continue; // removed meanwhile
        if (!st.isFile()) refused.push({ key, reason: kindOf(st) });
        else files.push({ key, uri: full, size: st.size, version: `${st.size}-${Math.trunc(st.mtimeMs)}` });
      } else if (ent.isDirectory() && !want) {
        await walk(full);
      } else if (want) {
        refused.push({ key, reason: kindOf(ent) });
      }
    }
  };
  await walk(prefixUri);
  const byKey = (a: { key: string }, b: { key: string }): number => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
  return { files: files.sort(byKey), refused: refused.sort(byKey) };
}

/** What DuckDB's file readers expand (measured on 1.5.5): `*`, `?`, `[…]`, and a leading `~` (home directory). */
const GLOB_CHARS = /[*?[\]]|^~/;

/**
 * Throws unless DuckDB would read `p` as exactly this one file: DuckDB has no literal-path switch for read_text /
 * read_csv, and a `[1]` in a name silently reads another file (or none). Callers hand DuckDB scratch names they made.
 */
export function assertLiteralPath(p: string): string {
  if (GLOB_CHARS.test(p)) throw new Error(`internal: path ${p} would be expanded as a glob by DuckDB`);
  return p;
}
