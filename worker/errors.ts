import { rootCause, TemporalFailure } from '@temporalio/common';

/**
 * The innermost message of an error chain: the SDK's rootCause() for Temporal failures, after unwrapping the client
 * errors that are not TemporalFailures themselves (WorkflowFailedError, a gRPC error's cause).
 */
export function rootMessage(e: unknown): string {
  let cur: unknown = e;
  while (cur instanceof Error && !(cur instanceof TemporalFailure) && (cur as { cause?: unknown }).cause) {
    cur = (cur as { cause?: unknown }).cause;
  }
  return rootCause(cur) ?? String(cur);
}
