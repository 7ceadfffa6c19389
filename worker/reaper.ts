import os from 'node:os';
import type { NativeConnection } from '@temporalio/worker';

/**
 * Fails, at once, the running activities of workers that died on this host, so Temporal retries them now instead of
 * after their heartbeat timeout. A worker's identity always carries `<pid>@<host>` (worker/main.ts); an activity
 * whose last worker is on this host with a pid that no longer exists cannot finish, and failing it by id
 * (RespondActivityTaskFailedById, retryable `WorkerDied`) hands it to the retry policy. Activities of workers on
 * other hosts, or whose process still exists, are left to the heartbeat timeout. A failed attempt that was in fact
 * still committing somewhere is stopped by the commit fence (lake/fence.ts).
 */
export async function reapDeadWorkerActivities(
  connection: NativeConnection,
  namespace: string,
  taskQueue: string,
  identity: string,
): Promise<number> {
  const host = os.hostname();
  let reaped = 0;
  let nextPageToken: Uint8Array | undefined;
  do {
    const page = await connection.workflowService.listWorkflowExecutions({
      namespace,
      query: `ExecutionStatus = 'Running' AND TaskQueue = '${taskQueue.replace(/'/g, "\\'")}'`,
      pageSize: 100,
      nextPageToken,
    });
    for (const wf of page.executions ?? []) {
      const execution = { workflowId: wf.execution?.workflowId ?? '', runId: wf.execution?.runId ?? '' };
      const d = await connection.workflowService
        .describeWorkflowExecution({ namespace, execution })
        .catch(() => undefined);
      for (const a of d?.pendingActivities ?? []) {
        if (Number(a.state) !== STARTED || !a.activityId) continue;
        const owner = processOf(a.lastWorkerIdentity ?? '');
        if (!owner || owner.host !== host || processAlive(owner.pid)) continue;
        try {
          await connection.workflowService.respondActivityTaskFailedById({
            namespace,
            workflowId: execution.workflowId,
            runId: execution.runId,
            activityId: a.activityId,
            identity,
            failure: {
              message: `worker ${a.lastWorkerIdentity} died (pid ${owner.pid} is gone); retrying at once`,
              applicationFailureInfo: { type: 'WorkerDied', nonRetryable: false },
            },
          });
          reaped++;
        } catch {
          /* completed or retried meanwhile */
        }
      }
    }
    nextPageToken = page.nextPageToken && page.nextPageToken.length > 0 ? page.nextPageToken : undefined;
  } while (nextPageToken);
  return reaped;
}

/** temporal.api.enums.v1.PendingActivityState STARTED. */
const STARTED = 2;

/** `<pid>@<host>` anywhere in a worker identity. */
export function processOf(identity: string): { pid: number; host: string } | undefined {
  const m = /(?:^|[\s(])(\d+)@([^\s)/]+)/.exec(identity);
  return m ? { pid: Number(m[1]), host: m[2] } : undefined;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** This process's worker identity: the operator's name (CPA_WORKER_IDENTITY) if any, always with `<pid>@<host>`. */
export function workerIdentity(custom: string | undefined): string {
  const me = `${process.pid}@${os.hostname()}`;
  return custom ? `${custom} (${me})` : me;
}
