import { DefaultLogger, Runtime } from '@temporalio/worker';

// Workflow tests start real workers and fail activities on purpose; keep the SDK's lifecycle INFO and its WARN dump
// of every expected activity failure out of the output (a test that fails says why in its own assertion). ERROR stays.
Runtime.install({
  logger: new DefaultLogger('ERROR'),
  telemetryOptions: { logging: { forward: {}, filter: 'ERROR' } },
});
