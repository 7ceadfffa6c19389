/**
 * Integration tests against the real local stack (Temporal, MinIO, Cassandra) started by scripts/stack.sh.
 * `npm run test:stack`; global setup brings the stack up (idempotent) and exports its settings.
 */
module.exports = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' } }] },
  testMatch: ['<rootDir>/tests/stack/**/*.test.ts'],
  globalSetup: '<rootDir>/tests/stack/global-setup.ts',
  setupFiles: ['<rootDir>/tests/stack/load-env.ts', '<rootDir>/tests/support/setup.ts'],
  testTimeout: 300000,
  // DuckDB's native handles can outlive a suite by minutes; results are final when the last test ends.
  forceExit: true,
  maxWorkers: 1,
};
