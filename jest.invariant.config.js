/**
 * The long invariants (`npm run test:invariant`, run by CI after `npm test`, one at a time): the recompute invariant
 * over several seeds and the reference dataset streamed file by file. `npm test` runs a sample of the first.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports -- a CommonJS config file, like the others
const base = require('./jest.config.js');

module.exports = {
  ...base,
  testMatch: ['<rootDir>/tests/invariant/**/*.test.ts', '<rootDir>/tests/e2e/incremental.test.ts'],
  testPathIgnorePatterns: ['/node_modules/'],
  maxWorkers: 1,
};
