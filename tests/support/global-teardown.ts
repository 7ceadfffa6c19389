import { stopSharedServer } from './shared-server';

/** Once per jest run, after the last test file: stops the shared dev server globalSetup started. */
export default async function globalTeardown(): Promise<void> {
  await stopSharedServer();
}
