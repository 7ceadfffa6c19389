import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import Table from 'cli-table3';
import type { CommandKit } from '../kit';
import { runChaos } from '../chaos';

/** `cpa chaos`: crash-recovery trials (cli/chaos.ts); `npm run chaos` runs 20 at S=10. */
export function register(program: Command, kit: CommandKit): void {
  program
    .command('chaos')
    .description('kill -9 the worker (and sometimes the dev server) at random points of runs; report recovery times')
    .option('--trials <n>', 'number of trials', kit.integer, 20)
    .option('--scale <S>', 'scale factor of the generated data', kit.positiveNumber, 10)
    .option('--seed <n>', 'generator seed', kit.integer, 42)
    .option('--server-every <n>', 'every n-th trial also kills the dev server (0 = never)', kit.integer, 4)
    .option(
      '--dir <dir>',
      'working directory (generated data, lakes, server state)',
      path.join(os.tmpdir(), 'cpa-chaos'),
    )
    .option('--json', 'JSON report')
    .action(
      async (opts: {
        trials: number;
        scale: number;
        seed: number;
        serverEvery: number;
        dir: string;
        json?: boolean;
      }) => {
        const report = await runChaos(kit.config(), {
          trials: opts.trials,
          scale: opts.scale,
          seed: opts.seed,
          dir: opts.dir,
          serverEvery: opts.serverEvery,
          log: (l) => console.error(l),
        });
        if (opts.json) {
          console.log(JSON.stringify(report, null, 2));
          return;
        }
        const t = new Table({
          style: { head: [], border: [] },
          head: [
            'trial',
            'killed',
            'at s',
            'kill point',
            'resumed s',
            'recovered s',
            'lost s',
            'identical',
            'leftovers',
          ],
        });
        for (const r of report.trials) {
          t.push([
            r.trial,
            r.killed,
            r.killedAfterS,
            r.killPoint,
            r.resumeS,
            r.recoveryS,
            r.lostS,
            r.identical ? 'yes' : 'NO',
            r.leftovers.length,
          ]);
        }
        console.log(t.toString());
        const s = report.summary;
        console.log(
          `S=${report.scale}: clean run ${report.cleanRunS} s; recovery p50 ${s.recoveryP50} s, p95 ${s.recoveryP95} s, ` +
            `max ${s.recoveryMax} s; resumed p50 ${s.resumeP50} s, p95 ${s.resumeP95} s; lost p50 ${s.lostP50} s, ` +
            `p95 ${s.lostP95} s; ` +
            `${s.identical}/${report.trials.length} identical; ${s.withLeftovers} with leftovers`,
        );
        if (s.identical < report.trials.length || s.withLeftovers > 0) process.exitCode = 1;
      },
    );
}
