import { DefaultLogger, Runtime } from '@temporalio/worker';

// Workflow tests start real workers and fail activities on purpose; keep the SDK's lifecycle INFO and its WARN dump
// of every expected activity failure out of the output (a test that fails says why in its own assertion). ERROR stays.
// Core's own log lines go to stderr directly (console), not forwarded to the JS logger: a forwarding runtime holds a
// callback into this process until it is shut down, and one is installed for every test file, most of which never
// connect (so never shut it down) — jest's workers then could not exit after the run and were force-exited, with a
// warning in the output.
Runtime.install({
  logger: new DefaultLogger('ERROR'),
  telemetryOptions: { logging: { filter: 'ERROR' } },
});
