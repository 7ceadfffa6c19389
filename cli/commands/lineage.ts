import type { Command } from 'commander';
import { lineageTree, renderTree, resolveTable } from '../../lake/lineage';
import type { GraphNode } from '../../lake/lineage';
import { PipelineFailed } from '../kit';

/**
 * `cpa lineage TABLE [--upstream|--downstream] [--json]`: the table-level graph around one table, from the table
 * registry (lake/tables.ts) — what it is computed from and what is computed from it, with each edge's partition
 * dependency (`same`, `window:N`, `all`). Reads no lake. The per-run OpenLineage events are under
 * `<lake>/_meta/lineage/` (and in Marquez when OPENLINEAGE_URL is set).
 */
export function register(program: Command): void {
  program
    .command('lineage')
    .description('print the table lineage graph around TABLE (layer.table, e.g. gold.cost_anomaly_mart)')
    .argument('<table>', 'layer.table (a bare name when only one layer has it)')
    .option('--upstream', 'only what TABLE is computed from')
    .option('--downstream', 'only what is computed from TABLE')
    .option('--json', 'print JSON')
    .action((name: string, opts: { upstream?: boolean; downstream?: boolean; json?: boolean }) => {
      if (opts.upstream && opts.downstream) throw new PipelineFailed('--upstream and --downstream exclude each other');
      let table: string;
      try {
        table = resolveTable(name);
      } catch (e) {
        throw new PipelineFailed((e as Error).message);
      }
      const up = !opts.downstream ? lineageTree(table, 'up') : undefined;
      const down = !opts.upstream ? lineageTree(table, 'down') : undefined;
      if (opts.json) {
        console.log(
          JSON.stringify(
            { table, ...(up ? { upstream: up.children } : {}), ...(down ? { downstream: down.children } : {}) },
            null,
            2,
          ),
        );
        return;
      }
      const section = (title: string, tree: GraphNode) =>
        tree.children.length === 0 ? `${title}: none` : `${title}:\n${renderTree(tree)}`;
      const parts: string[] = [];
      if (up) parts.push(section(`upstream (what ${table} is computed from)`, up));
      if (down) parts.push(section(`downstream (what is computed from ${table})`, down));
      console.log(parts.join('\n\n'));
    });
}
