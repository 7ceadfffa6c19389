#!/usr/bin/env node
// Create the S3 bucket for the local stack if it does not exist (idempotent).
// Settings come from the environment: CPA_S3_ENDPOINT, CPA_S3_ACCESS_KEY_ID,
// CPA_S3_SECRET_ACCESS_KEY, CPA_S3_REGION (default us-east-1), CPA_S3_BUCKET (default cpa-lake).
// Options: --timeout <seconds> (retry while the server is starting, default 30);
//          --smoke (also put/list/get/delete a small object to prove the bucket works).
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const timeoutMs = Number(opt('--timeout', '30')) * 1000;
const smoke = args.includes('--smoke');

const endpoint = process.env.CPA_S3_ENDPOINT ?? 'http://127.0.0.1:9000';
const bucket = process.env.CPA_S3_BUCKET ?? 'cpa-lake';
const accessKeyId = process.env.CPA_S3_ACCESS_KEY_ID;
const secretAccessKey = process.env.CPA_S3_SECRET_ACCESS_KEY;
if (!accessKeyId || !secretAccessKey) {
  console.error('s3-make-bucket: CPA_S3_ACCESS_KEY_ID and CPA_S3_SECRET_ACCESS_KEY must be set');
  process.exit(2);
}

const s3 = new S3Client({
  endpoint,
  region: process.env.CPA_S3_REGION ?? 'us-east-1',
  credentials: { accessKeyId, secretAccessKey },
  forcePathStyle: true,
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
  maxAttempts: 1,
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const status = (e) => e?.$metadata?.httpStatusCode;

async function ensureBucket() {
  try {
    await s3.send(new HeadBucketCommand({ Bucket: bucket }));
    return 'exists';
  } catch (e) {
    if (status(e) !== 404 && e?.name !== 'NotFound' && e?.name !== 'NoSuchBucket') throw e;
  }
  try {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    return 'created';
  } catch (e) {
    if (e?.name === 'BucketAlreadyOwnedByYou') return 'exists';
    throw e;
  }
}

async function smokeTest() {
  const Key = `_cpa-smoke/${process.pid}-${Date.now()}.txt`;
  const Body = `cpa smoke ${new Date().toISOString()}`;
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key, Body, ContentType: 'text/plain' }));
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: '_cpa-smoke/' }));
  if (!(listed.Contents ?? []).some((o) => o.Key === Key)) throw new Error(`smoke: ${Key} not listed`);
  const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key }));
  const text = await got.Body.transformToString();
  if (text !== Body) throw new Error('smoke: object content mismatch');
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key }));
  return `put/list/get/delete ok (${Key})`;
}

const deadline = Date.now() + timeoutMs;
for (;;) {
  try {
    const what = await ensureBucket();
    console.log(`bucket ${bucket} ${what} at ${endpoint}`);
    if (smoke) console.log(await smokeTest());
    break;
  } catch (e) {
    const code = status(e);
    // Credentials / request errors will not fix themselves; connection errors and 5xx might.
    const retryable = code === undefined || code >= 500;
    if (!retryable || Date.now() >= deadline) {
      console.error(`s3-make-bucket: ${e?.name ?? 'Error'}: ${e?.message ?? e}${code ? ` (HTTP ${code})` : ''}`);
      process.exit(1);
    }
    await sleep(500);
  }
}
s3.destroy();
