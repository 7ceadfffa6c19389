/**
 * Which jest run a test file belongs to. `npm test` is the quick suite: unit tests, rule tests and the integration
 * tests that need seconds (a real DuckDB lake, a real Temporal dev server with small workflows). The end-to-end files
 * below — whole pipeline runs on the reference data, CLI processes, crashes, outages, the browser — run in
 * `npm run test:e2e`; the stack and the long invariants have their own configs. CI runs all four.
 */
module.exports.E2E = [
  'tests/e2e/chunked.test.ts',
  'tests/e2e/crash-recovery.test.ts',
  'tests/e2e/generated.test.ts',
  'tests/e2e/incremental.test.ts',
  'tests/e2e/reference.test.ts',
  'tests/cli/operator-mistakes.test.ts',
  'tests/cli/orphans.test.ts',
  'tests/cli/outage.test.ts',
  'tests/cli/serving-load.test.ts',
  'tests/workflows/backfill.test.ts',
  'tests/workflows/daily-pipeline.test.ts',
  'tests/workflows/schedule.test.ts',
  'tests/workflows/two-workers.test.ts',
  'tests/streaming/ingest-event-file.test.ts',
  'tests/streaming/order.test.ts',
  'tests/streaming/worker-kill.test.ts',
  'tests/activities/hostile-values.test.ts',
  'tests/activities/speed-order.test.ts',
  'tests/report/browser.test.ts',
];
