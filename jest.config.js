// eslint-disable-next-line @typescript-eslint/no-require-imports -- a CommonJS config file
const { E2E } = require('./tests/tiers.js');

/**
 * `npm test`: the quick suite (tests/tiers.js). End-to-end tests: jest.e2e.config.js; stack tests (MinIO, Cassandra):
 * jest.stack.config.js; the long invariants: jest.invariant.config.js.
 */
module.exports = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' } }] },
  testMatch: ['<rootDir>/tests/**/*.test.ts'],
  testPathIgnorePatterns: [
    '/node_modules/',
    '<rootDir>/tests/stack/',
    '<rootDir>/tests/invariant/',
    ...E2E.map((f) => `<rootDir>/${f}`),
  ],
  // Once per run (tests/support/global-setup.ts): dist/ (the prebuilt workflow bundle and CLI) is rebuilt when a source
  // is newer, and one Temporal dev server starts for the test files to share (CPA_TEST_TEMPORAL_ADDRESS); the e2e and
  // invariant configs inherit both.
  globalSetup: '<rootDir>/tests/support/global-setup.ts',
  globalTeardown: '<rootDir>/tests/support/global-teardown.ts',
  // The SDK's worker lifecycle INFO/WARN lines stay out of the output of passing tests (errors still show).
  setupFiles: ['<rootDir>/tests/support/setup.ts'],
  testTimeout: 120000,
  // DuckDB's native handles can outlive a suite by minutes; results are final when the last test ends.
  forceExit: true,
  maxWorkers: 2,
};
