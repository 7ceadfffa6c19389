/**
 * How long an activity may go without a heartbeat before Temporal hands it to another worker. Every activity
 * heartbeats every {@link KEEPALIVE_MS} while it runs (activities/common.ts `withKeepalive`, also during one long
 * DuckDB statement, which runs off the event loop), so a killed or partitioned worker's activity is retried within
 * this bound instead of after its start-to-close timeout. An attempt that lost its activity this way cannot commit
 * (lake/fence.ts). Pure: imported by workflow code and by the activities.
 */
export const HEARTBEAT_TIMEOUT = '20 seconds';

/** The keepalive period: well under a third of {@link HEARTBEAT_TIMEOUT}, so two lost beats are survived. */
export const KEEPALIVE_MS = 3000;
