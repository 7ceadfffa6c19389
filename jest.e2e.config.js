/**
 * `npm run test:e2e` (CI runs it after `npm test`): whole pipeline runs, CLI processes, crashes, outages and the
 * report in a browser (tests/tiers.js), on a real Temporal dev server, DuckDB lake and chromium.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports -- a CommonJS config file, like the others
const base = require('./jest.config.js');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { E2E } = require('./tests/tiers.js');

module.exports = {
  ...base,
  testMatch: E2E.map((f) => `<rootDir>/${f}`),
  testPathIgnorePatterns: ['/node_modules/'],
};
