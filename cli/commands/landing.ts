import path from 'node:path';
import type { Command } from 'commander';
import { lakeUri } from '../../config/env';
import { checkS3Access } from '../../lake/s3-check';
import { isS3, storageFor } from '../../lake/storage';
import { uploadDirectory } from '../../lake/upload';
import type { CommandKit } from '../kit';

/**
 * `cpa landing upload <localDir> <s3uri>`: lands a local directory (e.g. the output of `cpa generate`, or the
 * reference dataset) under a bucket prefix, so a pipeline can run with `--landing s3://…`. Idempotent: objects that
 * already hold the same bytes are skipped.
 */
export function register(program: Command, kit: CommandKit): void {
  const landing = program.command('landing').description('manage landing zones (files the pipeline ingests)');
  landing
    .command('upload')
    .description('copy a local landing directory into s3://bucket/prefix (skips objects that are already identical)')
    .argument('<localDir>', 'local directory, e.g. the output of `cpa generate`')
    .argument('<s3uri>', 'destination s3://bucket/prefix (use it as --landing)')
    .option('--concurrency <n>', 'parallel uploads', kit.integer, 4)
    .option('--dry-run', 'only report what would be uploaded')
    .option('--json', 'JSON output')
    .action(
      async (localDir: string, s3uri: string, opts: { concurrency: number; dryRun?: boolean; json?: boolean }) => {
        const parsed = lakeUri.safeParse(s3uri);
        if (!parsed.success || !isS3(parsed.data))
          throw new Error(`destination must be s3://bucket[/prefix], got '${s3uri}'`);
        if (opts.concurrency < 1) throw new Error('--concurrency must be at least 1');
        const dest = parsed.data;
        const cfg = kit.config();
        await checkS3Access(dest, cfg, { write: !opts.dryRun });
        const started = Date.now();
        const result = await uploadDirectory(path.resolve(localDir), dest, storageFor(dest, cfg), {
          concurrency: opts.concurrency,
          dryRun: opts.dryRun,
          onFile: opts.json
            ? undefined
            : (key, action) => {
                if (action === 'upload') process.stderr.write(`${opts.dryRun ? 'would upload' : 'uploaded'} ${key}\n`);
              },
        });
        const seconds = (Date.now() - started) / 1000;
        if (opts.json) {
          console.log(
            JSON.stringify({ source: path.resolve(localDir), destination: dest, ...result, seconds }, null, 2),
          );
          return;
        }
        const mib = (result.bytesUploaded / 2 ** 20).toFixed(1);
        console.log(
          `${opts.dryRun ? 'would upload' : 'uploaded'} ${result.uploaded} of ${result.files} files (${mib} MiB), ` +
            `${result.skipped} already identical, to ${dest} in ${seconds.toFixed(2)}s`,
        );
      },
    );
}
