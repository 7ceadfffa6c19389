import { loadConfig } from '../../config/env';
import { startDevServer } from '../../worker/temporal';
import type { TemporalEndpoint } from '../../worker/temporal';
import { temporalCli } from './env';

/** Where the test files find the jest run's shared dev server (`127.0.0.1:<port>`), set by globalSetup. */
export const SHARED_SERVER_ENV = 'CPA_TEST_TEMPORAL_ADDRESS';

// globalSetup and globalTeardown run in the same process, but not in one module registry: the handle lives on global.
const HANDLE = Symbol.for('cpa.test.sharedTemporalServer');
type Holder = { [HANDLE]?: TemporalEndpoint };

/**
 * Starts the one dev server of this jest run, as `cpa run` starts its embedded one (worker/temporal.ts
 * startDevServer: in-memory, headless, loopback, free ports, the custom search attributes registered), and publishes
 * its address to the test files through process.env (jest's workers inherit the environment of globalSetup).
 * Settings come from no environment variable of the developer's (TEMPORAL_TLS, TEMPORAL_ADDRESS…): a clean config.
 */
export async function startSharedServer(): Promise<void> {
  const config = loadConfig({ CPA_LAKE_ROOT: '/tmp/unused', TEMPORAL_CLI_PATH: temporalCli() });
  const server = await startDevServer(config);
  (globalThis as Holder)[HANDLE] = server;
  process.env[SHARED_SERVER_ENV] = server.address;
}

export async function stopSharedServer(): Promise<void> {
  const holder = globalThis as Holder;
  await holder[HANDLE]?.stop();
  delete holder[HANDLE];
  delete process.env[SHARED_SERVER_ENV];
}
