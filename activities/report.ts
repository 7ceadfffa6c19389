import { gatherReportData, reportUri } from '../lake/report-data';
import { renderQualityReport } from '../lake/report-html';
import { storageFor } from '../lake/storage';
import { warn, withLake } from './common';
import type { ActivityDeps } from './common';
import type { RunSummary } from './quality';
import { firstLine } from '../lake/errors';

/** Where the run's quality report was written, or why it was not (never both). */
export interface ReportResult {
  uri?: string;
  bytes?: number;
  error?: string;
}

/**
 * Renders the run's data-quality report (SPEC §13) from its summary and the lake's meta tables, and writes it to
 * `<lake>/_meta/reports/<runId>.html` through the lake's storage (local or S3; one atomic object write, so a
 * retry just replaces it). Never fails: a report is an observation of the run, not part of it — an error is
 * logged and returned, and the run records it.
 */
export async function writeQualityReport(deps: ActivityDeps, summary: RunSummary): Promise<ReportResult> {
  const uri = reportUri(summary.lake, summary.runId);
  try {
    const html = await withLake(deps, summary.lake, async (conn, lake) =>
      renderQualityReport(await gatherReportData(conn, lake, deps.config, summary, { location: uri })),
    );
    await storageFor(summary.lake, deps.config).writeBytes(uri, html);
    return { uri, bytes: Buffer.byteLength(html) };
  } catch (e) {
    const error = `quality report not written to ${uri}: ${firstLine(e)}`;
    warn(error, { runId: summary.runId });
    return { error };
  }
}
