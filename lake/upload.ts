import crypto from 'node:crypto';
import { forEachLimit } from './pool';
import fsp from 'node:fs/promises';
import { joinUri } from '../config/env';
import { LocalStorage } from './storage';
import type { Storage, StoredObject } from './storage';

export interface UploadResult {
  files: number;
  uploaded: number;
  skipped: number;
  bytesUploaded: number;
}

/**
 * Copies every regular file under `localDir` (hidden files and directories excepted) to the same relative key under
 * `destUri`. Idempotent: an object that already holds the same bytes (same size and MD5 ETag, or same content when
 * the backend has no plain-MD5 ETag) is skipped, so re-running after an interruption only sends what is missing.
 * Each object is one atomic PUT: a watcher on the landing prefix never sees half a file.
 */
export async function uploadDirectory(
  localDir: string,
  destUri: string,
  dest: Storage,
  opts: { concurrency?: number; dryRun?: boolean; onFile?: (key: string, action: 'upload' | 'skip') => void } = {},
): Promise<UploadResult> {
  const st = await fsp.stat(localDir).catch(() => undefined);
  if (!st?.isDirectory()) throw new Error(`${localDir} is not a directory`);
  const files = (await new LocalStorage().list(localDir)).filter(
    (f) => !f.key.split('/').some((s) => s.startsWith('.')),
  );
  const existing = new Map((await dest.list(destUri)).map((o) => [o.key, o]));
  const result: UploadResult = { files: files.length, uploaded: 0, skipped: 0, bytesUploaded: 0 };
  await forEachLimit(files, opts.concurrency ?? 8, async (f) => {
    const bytes = await fsp.readFile(f.uri);
    const target = joinUri(destUri, f.key);
    if (await sameContent(dest, existing.get(f.key), bytes)) {
      result.skipped++;
      opts.onFile?.(f.key, 'skip');
      return;
    }
    if (!opts.dryRun) await dest.writeBytes(target, bytes);
    result.uploaded++;
    result.bytesUploaded += bytes.length;
    opts.onFile?.(f.key, 'upload');
  });
  return result;
}

async function sameContent(dest: Storage, obj: StoredObject | undefined, bytes: Buffer): Promise<boolean> {
  if (!obj || obj.size !== bytes.length) return false;
  // A single-part upload's ETag is the hex MD5 of the bytes; multipart ETags ("…-N") and local files are compared in full.
  if (obj.etag && /^[0-9a-f]{32}$/.test(obj.etag))
    return obj.etag === crypto.createHash('md5').update(bytes).digest('hex');
  return (await dest.readBytes(obj.uri)).equals(bytes);
}
