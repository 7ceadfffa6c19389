import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  CopyObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
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
  readBytes(uri: string): Promise<Buffer>;
  /** Atomically creates or replaces an object. */
  writeBytes(uri: string, data: Buffer | string): Promise<void>;
  /** Atomically replaces `dstUri` with `srcUri` and removes the source. */
  move(srcUri: string, dstUri: string): Promise<void>;
  deletePrefix(prefixUri: string): Promise<void>;
  /** Makes sure a directory-like prefix can be written into (mkdir -p locally; nothing to do on S3). */
  prepareDir(prefixUri: string): Promise<void>;
  /** A local file path with the object's content (the file itself when local, a downloaded copy on S3). */
  localCopy(uri: string, tmpDir: string): Promise<string>;
}

export function isS3(uri: string): boolean {
  return uri.startsWith('s3://');
}

/** Storage for a URI: local for paths, S3 for s3:// (client configured from config). */
export function storageFor(uri: string, config: Config): Storage {
  return isS3(uri) ? new S3Storage(config) : new LocalStorage();
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
          out.push({ key: path.relative(prefixUri, full).split(path.sep).join('/'), uri: full, size: st.size });
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

  async move(srcUri: string, dstUri: string): Promise<void> {
    await fsp.mkdir(path.dirname(dstUri), { recursive: true });
    // rename(2) replaces the destination atomically on the same filesystem.
    await fsp.rename(srcUri, dstUri);
  }

  async deletePrefix(prefixUri: string): Promise<void> {
    await fsp.rm(prefixUri, { recursive: true, force: true });
  }

  async prepareDir(prefixUri: string): Promise<void> {
    await fsp.mkdir(prefixUri, { recursive: true });
  }

  async localCopy(uri: string): Promise<string> {
    return uri;
  }
}

export function parseS3Uri(uri: string): { bucket: string; key: string } {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(uri);
  if (!m) throw new Error(`not an s3 URI: ${uri}`);
  return { bucket: m[1], key: m[2] };
}

export function makeS3Client(config: Config): S3Client {
  const { endpoint, region, accessKeyId, secretAccessKey, urlStyle } = config.s3;
  return new S3Client({
    endpoint,
    region,
    forcePathStyle: urlStyle === 'path',
    credentials: accessKeyId && secretAccessKey ? { accessKeyId, secretAccessKey } : undefined,
    // MinIO and older S3-compatible servers reject the SDK's default CRC32 trailers.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 5,
  });
}

export class S3Storage implements Storage {
  readonly kind = 's3' as const;
  private readonly client: S3Client;

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
        out.push({ key: o.Key.slice(prefix.length), uri: `s3://${bucket}/${o.Key}`, size: o.Size ?? 0 });
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
      const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 404) return false;
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

  async move(srcUri: string, dstUri: string): Promise<void> {
    const src = parseS3Uri(srcUri);
    const dst = parseS3Uri(dstUri);
    await this.client.send(
      new CopyObjectCommand({ Bucket: dst.bucket, Key: dst.key, CopySource: `${src.bucket}/${encodeURI(src.key)}` }),
    );
    await this.client.send(new DeleteObjectsCommand({ Bucket: src.bucket, Delete: { Objects: [{ Key: src.key }] } }));
  }

  async deletePrefix(prefixUri: string): Promise<void> {
    const objects = await this.list(prefixUri);
    const { bucket } = parseS3Uri(prefixUri);
    for (let i = 0; i < objects.length; i += 1000) {
      const batch = objects.slice(i, i + 1000).map((o) => ({ Key: parseS3Uri(o.uri).key }));
      await this.client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: batch } }));
    }
  }

  async prepareDir(): Promise<void> {
    /* S3 has no directories */
  }

  async localCopy(uri: string, tmpDir: string): Promise<string> {
    const target = path.join(tmpDir, crypto.createHash('sha256').update(uri).digest('hex').slice(0, 24));
    await fsp.mkdir(tmpDir, { recursive: true });
    await fsp.writeFile(target, await this.readBytes(uri));
    return target;
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
