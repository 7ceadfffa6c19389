import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import type { Config } from '../../config/env';
import { withLakeReader } from '../../lake/reader';
import { gatherReportData, reportUri } from '../../lake/report-data';
import { renderQualityReport } from '../../lake/report-html';
import { isS3, storageFor } from '../../lake/storage';
import type { CommandKit } from '../kit';
import { listRuns } from '../report';
import { PipelineFailed } from '../kit';

/**
 * `cpa report`: the HTML data-quality report of a run (default: the latest), the same page the run wrote under
 * `<lake>/_meta/reports/`. Without --out it (re)writes that object; with --out it writes a local file instead and
 * leaves the lake untouched. --open hands the file to the desktop's opener (xdg-open, open) when there is one.
 */
export function register(program: Command, kit: CommandKit): void {
  program
    .command('report')
    .description('write the HTML data-quality report of a run (default: the latest) and print where it is')
    .option('--lake <dir>', 'lake root (default CPA_LAKE_ROOT)')
    .option('--run <runId>', 'a specific run id (default: latest; `cpa status` lists them)')
    .option('--out <file>', 'write this local file instead of <lake>/_meta/reports/<runId>.html')
    .option('--open', 'open the report in a browser (xdg-open / open); prints the path when none is available')
    .action(async (opts: { lake?: string; run?: string; out?: string; open?: boolean }) => {
      const cfg = kit.config({ CPA_LAKE_ROOT: opts.lake as never });
      // Read-only preflight: a lake without runs is refused before anything is created there.
      await kit.checkStorage(cfg);
      const { uri, bytes } = await writeReport(cfg, opts);
      console.log(`quality report: ${uri} (${(bytes / 1024).toFixed(1)} KiB)`);
      if (opts.open) console.log(await openInBrowser(uri));
    });
}

/** Renders the report of `run` (default: latest) and writes it to `out` or under the lake's `_meta/reports/`. */
export async function writeReport(
  cfg: Config,
  opts: { run?: string; out?: string },
): Promise<{ uri: string; bytes: number }> {
  const runs = await listRuns(cfg);
  if (runs.length === 0)
    throw new PipelineFailed(`no runs recorded in the lake ${cfg.lakeRoot} — run \`cpa run\` first`);
  const run = opts.run ? runs.find((r) => r.runId === opts.run || r.workflowId === opts.run) : runs[0];
  if (!run) {
    throw new PipelineFailed(
      `no run ${opts.run} recorded in the lake ${cfg.lakeRoot} — \`cpa status\` lists the recorded ones`,
    );
  }
  const uri = opts.out ? path.resolve(opts.out) : reportUri(cfg.lakeRoot, run.runId);
  const html = await withLakeReader(cfg, cfg.lakeRoot, async (conn, lake) =>
    renderQualityReport(await gatherReportData(conn, lake, cfg, run, { location: uri })),
  );
  if (opts.out) {
    fs.mkdirSync(path.dirname(uri), { recursive: true });
    fs.writeFileSync(uri, html);
  } else {
    await storageFor(cfg.lakeRoot, cfg).writeBytes(uri, html);
  }
  return { uri, bytes: Buffer.byteLength(html) };
}

/** Starts the platform's opener detached; says what happened (never fails the command). */
async function openInBrowser(uri: string): Promise<string> {
  if (isS3(uri)) return `not opening ${uri}: it is an S3 object; use --out FILE to write a local copy`;
  const opener = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : 'xdg-open';
  return new Promise((resolve) => {
    const child = spawn(opener, [uri], { stdio: 'ignore', detached: true });
    child.once('error', () => resolve(`no browser opener (${opener}) found: open ${uri} yourself`));
    child.once('spawn', () => {
      child.unref();
      resolve(`opened ${uri} with ${opener}`);
    });
  });
}
