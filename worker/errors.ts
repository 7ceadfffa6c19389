import { TemporalFailure } from '@temporalio/common';
import { failureHeadline } from '../workflows/failures';

/**
 * The one-line reason of an error chain, after unwrapping the client errors that are not TemporalFailures themselves
 * (WorkflowFailedError, a gRPC error's cause): `<step>: <root cause>` when a pipeline step failed
 * (workflows/failures.ts), else the innermost message (the SDK's rootCause()).
 */
export function rootMessage(e: unknown): string {
  let cur: unknown = e;
  while (cur instanceof Error && !(cur instanceof TemporalFailure) && (cur as { cause?: unknown }).cause) {
    cur = (cur as { cause?: unknown }).cause;
  }
  return failureHeadline(cur);
}
