/** Unit and workflow tests. Stack tests (MinIO, Cassandra) live in jest.stack.config.js. */
module.exports = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' } }] },
  testMatch: ['<rootDir>/tests/**/*.test.ts'],
  // Stack tests need MinIO and Cassandra (jest.stack.config.js); the long invariants run in jest.invariant.config.js.
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/tests/stack/', '<rootDir>/tests/invariant/'],
  // The SDK's worker lifecycle INFO/WARN lines stay out of the output of passing tests (errors still show).
  // dist/ (the prebuilt workflow bundle and CLI) rebuilt once when a source is newer than it (tests/support/global-setup.ts).
  globalSetup: '<rootDir>/tests/support/global-setup.ts',
  setupFiles: ['<rootDir>/tests/support/setup.ts'],
  testTimeout: 120000,
  // DuckDB's native handles can outlive a suite by minutes; results are final when the last test ends.
  forceExit: true,
  maxWorkers: 2,
};
