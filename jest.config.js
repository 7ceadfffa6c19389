/** Unit and workflow tests. Stack tests (MinIO, Cassandra) live in jest.stack.config.js. */
module.exports = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' } }] },
  testMatch: ['<rootDir>/tests/**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/tests/stack/'],
  testTimeout: 120000,
  maxWorkers: 2,
};
