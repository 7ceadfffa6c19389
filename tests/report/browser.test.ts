import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import type { Browser } from 'playwright-core';
import { generate } from '../../lake/generator';
import type { RunSummary } from '../../activities';
import { directActivities } from '../support/activities';
import { cpa, tmpDir } from '../support/env';

/** Debian's chromium (`scripts/tools.sh chromium`, run by .ci/run); playwright-core never downloads a browser. */
const CHROMIUM = process.env.CPA_CHROMIUM_PATH || '/usr/bin/chromium';
/** `npm run report:screenshot` sets this to docs/quality-report.png. */
const SCREENSHOT = process.env.CPA_REPORT_SCREENSHOT;

/**
 * The real pipeline (`cpa run`, embedded Temporal) on a small generated lake, twice (the second run lands more
 * days), then its HTML quality report opened in headless Chromium: no console error, no page error, no request
 * but the file itself, and the charts and tables are there.
 */
describe('HTML quality report of real runs, in headless Chromium', () => {
  const landing = tmpDir('report-landing');
  const lake = tmpDir('report-lake');
  const runs: RunSummary[] = [];
  let browser: Browser;
  const suite = directActivities();

  beforeAll(async () => {
    if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} missing: run \`bash scripts/tools.sh chromium\``);
    // Two runs: the first lands 10 days, the second 4 more (the same seed extends the same history).
    for (const days of [10, 14]) {
      await generate({ scale: 0.05, seed: 11, out: landing, startDate: '2025-08-01', days });
      const r = cpa(['run', '--landing', landing, '--lake', lake, '--json'], {}, 280_000);
      if (r.code !== 0) throw new Error(`cpa run failed (${r.code}): ${r.stderr}`);
      runs.push(JSON.parse(r.stdout) as RunSummary);
    }
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  }, 600_000);

  afterAll(async () => {
    await browser?.close();
  });

  it('every run wrote its report under _meta/reports/ and its record points at it', () => {
    for (const r of runs) {
      expect(r.status).toBe('succeeded');
      expect(r.report).toEqual({ uri: path.join(lake, '_meta', 'reports', `${r.runId}.html`) });
      expect(fs.statSync(r.report!.uri!).size).toBeGreaterThan(10_000);
    }
    const status = JSON.parse(cpa(['status', '--lake', lake, '--json']).stdout) as Array<{ report?: { uri?: string } }>;
    expect(status[0].report?.uri).toBe(runs[1].report?.uri);
    // Both runs are of no date ('all'): status shows the latest, --runs both; quality names the run it shows.
    expect(status.map((r) => (r as { runId?: string }).runId)).toEqual([runs[1].runId]);
    const all = JSON.parse(cpa(['status', '--lake', lake, '--runs', '--json']).stdout) as Array<{ runId: string }>;
    expect(all.map((r) => r.runId)).toEqual([runs[1].runId, runs[0].runId]);
    const q = cpa(['quality', '--lake', lake, '--run', runs[0].runId]);
    expect(q.code).toBe(0);
    expect(q.stdout).toContain(`run ${runs[0].runId} · ${runs[0].workflowId} · date all · manual · succeeded`);
    expect(q.stdout).toMatch(/quality gate: passed/);
    const bogus = cpa(['quality', '--lake', lake, '--run', 'bogus']);
    expect({ code: bogus.code, stdout: bogus.stdout }).toEqual({ code: 1, stdout: '' });
    expect(bogus.stderr).toContain('no run bogus recorded in the lake');
  });

  it('renders in Chromium with no console error, no page error, no network, and shows charts and tables', async () => {
    const out = path.join(tmpDir('report-out'), 'report.html');
    const made = cpa(['report', '--lake', lake, '--out', out]);
    expect(made).toMatchObject({ code: 0, stdout: expect.stringContaining(out) });

    const page = await browser.newPage({ viewport: { width: 1240, height: 900 } });
    const errors: string[] = [];
    const requests: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') errors.push(`${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
    page.on('request', (r) => requests.push(r.url()));
    const url = pathToFileURL(out).href;
    await page.goto(url, { waitUntil: 'load' });

    expect(errors).toEqual([]);
    expect(requests).toEqual([url]);
    expect(await page.title()).toBe(`Data quality — ${runs[1].workflowId}`);
    // Four charts, each with a line through the two runs and a legend.
    const charts = page.locator('svg.chart');
    expect(await charts.evaluateAll((els) => els.map((e) => e.id))).toEqual([
      'chart-quarantine',
      'chart-anomaly',
      'chart-rows',
      'chart-duration',
    ]);
    for (const id of ['chart-quarantine', 'chart-anomaly', 'chart-rows', 'chart-duration']) {
      const box = await page.locator(`#${id}`).boundingBox();
      expect(box!.width).toBeGreaterThan(400);
      expect(await page.locator(`#${id} path.series`).count()).toBeGreaterThan(0);
    }
    // The tables: every step, quarantine rules with sample rows, null rates, anomalies, gate, the run history.
    const steps = await page.locator('#tables table.steps tbody tr').count();
    expect(steps).toBe(runs[1].steps.length);
    expect(await page.locator('#tables table.steps').innerText()).toContain('silver.usage_events');
    expect(await page.locator('#quarantine table.rules').count()).toBeGreaterThan(0);
    const samples = page.locator('#quarantine table.samples');
    expect(await samples.count()).toBeGreaterThan(0);
    const firstSample = await samples.first().locator('tbody tr').count();
    expect(firstSample).toBeGreaterThan(0);
    expect(firstSample).toBeLessThanOrEqual(5);
    expect(await page.locator('#null-rates table.nulls tbody tr').count()).toBeGreaterThan(5);
    expect(await page.locator('#anomalies').innerText()).toMatch(/gold\.cost_anomaly_mart \(whole table\)/);
    expect(await page.locator('#gate table.gate tbody tr').count()).toBe(runs[1].gate!.checks.length);
    expect(await page.locator('#history table.runs tbody tr').count()).toBe(2);
    // No e-mail address in clear text anywhere on the page (silver hashes them; the report hashes what it shows).
    expect(await page.locator('body').innerText()).not.toMatch(/[\w.+-]+@[\w-]+\.[\w.]+/);
    if (SCREENSHOT) {
      // The head of the page: the run, then the four history charts.
      await page.setViewportSize({ width: 1240, height: 1320 });
      await page.screenshot({ path: SCREENSHOT, type: 'png' });
    }
    await page.close();
  });

  it('the run-time copy renders cleanly too, and `cpa report` names an unknown run and exits non-zero', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(pathToFileURL(runs[0].report!.uri!).href);
    expect(errors).toEqual([]);
    expect(await page.locator('svg.chart').count()).toBe(4);
    expect(await page.locator('#history table.runs tbody tr').count()).toBe(1);
    await page.close();

    const again = cpa(['report', '--lake', lake, '--run', runs[0].runId]);
    expect(again).toMatchObject({ code: 0, stdout: expect.stringContaining(runs[0].report!.uri!) });
    const unknown = cpa(['report', '--lake', lake, '--run', 'no-such-run']);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr.trim()).toBe(
      `cpa: no run no-such-run recorded in the lake ${lake} — \`cpa status\` lists the recorded ones`,
    );
  });

  it('a report that cannot be written returns its error instead of failing the run', async () => {
    const blocked = path.join(tmpDir('report-blocked'), 'lake-is-a-file');
    fs.writeFileSync(blocked, '');
    const res = await suite.acts.writeQualityReport({ ...runs[1], lake: blocked });
    expect(res.uri).toBeUndefined();
    expect(res.error).toContain(`quality report not written to ${blocked}/_meta/reports/${runs[1].runId}.html`);
  });
});
