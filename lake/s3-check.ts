import crypto from 'node:crypto';
import { DeleteObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import type { Config } from '../config/env';
import { isS3, makeS3Client, parseS3Uri } from './storage';

/**
 * Preflight for commands that open an s3:// lake or landing: one short, single-attempt request (and for writers a
 * probe object) so a wrong endpoint, wrong credentials or a missing bucket fail at once with one line saying which,
 * instead of a stack trace from deep inside a run after minutes of retries.
 */

/** The storage the configuration points at cannot be used; the message is one line for the operator. */
export class StorageAccessError extends Error {
  override name = 'StorageAccessError';
}

export interface S3CheckOptions {
  /** Also prove write access: PUT and DELETE a small probe object under `<uri>/_staging/`. */
  write?: boolean;
  /** Bound for connecting and for each request (default 5 s). */
  timeoutMs?: number;
}

/** Checks that `uri` (s3://bucket[/prefix]) can be listed (and written) with the configured endpoint and keys. */
export async function checkS3Access(uri: string, config: Config, opts: S3CheckOptions = {}): Promise<void> {
  if (!isS3(uri)) return;
  if (Boolean(config.s3.accessKeyId) !== Boolean(config.s3.secretAccessKey)) {
    throw new StorageAccessError('CPA_S3_ACCESS_KEY_ID and CPA_S3_SECRET_ACCESS_KEY must be set together');
  }
  const timeoutMs = opts.timeoutMs ?? 5000;
  const { bucket, key } = parseS3Uri(uri);
  const prefix = key === '' ? '' : `${key.replace(/\/+$/, '')}/`;
  const client = makeS3Client(config, { maxAttempts: 1, connectionTimeoutMs: timeoutMs, requestTimeoutMs: timeoutMs });
  // The abort signal also bounds the SDK's credential chain (which may try instance metadata) when no keys are set.
  const bounded = () => ({ abortSignal: AbortSignal.timeout(timeoutMs + 1000) });
  try {
    await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, MaxKeys: 1 }), bounded());
    if (opts.write) {
      const probe = `${prefix}_staging/_preflight/${crypto.randomBytes(8).toString('hex')}`;
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: probe, Body: 'cpa preflight' }), bounded());
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: probe }), bounded());
    }
  } catch (e) {
    throw new StorageAccessError(describeS3Error(e, config, uri, timeoutMs));
  } finally {
    client.destroy();
  }
}

const NETWORK_CODES =
  /^(E[A-Z]+|UND_ERR_\w+|ERR_TLS_\w+|CERT_\w+|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN)$/;

/** One line naming what is wrong: endpoint unreachable, credentials rejected, bucket missing, access denied. */
export function describeS3Error(e: unknown, config: Config, uri: string, timeoutMs: number): string {
  const endpoint = config.s3.endpoint ?? `AWS S3 (${config.s3.region})`;
  const { bucket } = parseS3Uri(uri);
  const err = e as { name?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  if (err?.name === 'TimeoutError' || err?.name === 'AbortError' || err?.name === 'RequestTimeout') {
    return `S3 endpoint ${endpoint} unreachable (no answer within ${Math.round(timeoutMs / 1000)}s)`;
  }
  const code = networkCode(e);
  if (code) return `S3 endpoint ${endpoint} unreachable (${code})`;
  switch (err?.name) {
    case 'NoSuchBucket':
      return `S3 bucket '${bucket}' does not exist at ${endpoint} (create it, or fix ${uri})`;
    case 'InvalidAccessKeyId':
      return `S3 credentials rejected by ${endpoint}: unknown access key (check CPA_S3_ACCESS_KEY_ID)`;
    case 'SignatureDoesNotMatch':
      return `S3 credentials rejected by ${endpoint}: wrong secret key (check CPA_S3_SECRET_ACCESS_KEY)`;
    case 'CredentialsProviderError':
      return `no S3 credentials: set CPA_S3_ACCESS_KEY_ID and CPA_S3_SECRET_ACCESS_KEY`;
    case 'AccessDenied':
      return `S3 access to ${uri} denied by ${endpoint} for this access key${opNote(e)}`;
  }
  const status = err?.$metadata?.httpStatusCode;
  if (status === 403) return `S3 access to ${uri} denied by ${endpoint} (HTTP 403 ${err.name ?? ''})`.trimEnd();
  if (status === 404) return `S3 bucket '${bucket}' not found at ${endpoint} (HTTP 404)`;
  const msg = (err?.message ?? String(e)).split('\n')[0];
  if (/XML|Deserialization/i.test(msg))
    return `${endpoint} does not answer like an S3 endpoint (check CPA_S3_ENDPOINT)`;
  return `S3 check of ${uri} at ${endpoint} failed: ${err?.name ?? 'Error'}: ${msg}`;
}

function opNote(e: unknown): string {
  const msg = (e as { message?: string }).message ?? '';
  return msg ? ` (${msg.split('\n')[0]})` : '';
}

/** The socket-level error code (ECONNREFUSED, ENOTFOUND, ...) wherever the SDK or Node put it. */
function networkCode(e: unknown): string | undefined {
  const seen = new Set<unknown>();
  const queue: unknown[] = [e];
  while (queue.length > 0) {
    const cur = queue.shift() as { code?: unknown; cause?: unknown; errors?: unknown[] } | undefined;
    if (!cur || typeof cur !== 'object' || seen.has(cur)) continue;
    seen.add(cur);
    if (typeof cur.code === 'string' && NETWORK_CODES.test(cur.code)) return cur.code;
    queue.push(cur.cause, ...(Array.isArray(cur.errors) ? cur.errors : []));
  }
  return undefined;
}
