import { DefaultLogger, Runtime } from '@temporalio/worker';

// Workflow tests start real workers; keep their lifecycle chatter out of the test output.
Runtime.install({ logger: new DefaultLogger('WARN'), telemetryOptions: { logging: { forward: {}, filter: 'ERROR' } } });
