import { ActivityFailure, ApplicationFailure, CancelledFailure, rootCause, TemporalFailure } from '@temporalio/common';

/**
 * Failures that read at a glance (SPEC §13): a run that fails in a step fails with `<step>: <root cause>` — e.g.
 * `bronze.billing: billing_monthly.csv line 6 column 4 (subtotal): …` — as its own headline in the Web UI, instead of
 * the SDK's "Activity task failed" with the reason two JSON panels deeper. The original failure is kept as the cause,
 * and the root's type (ContractViolation, QualityGateFailed, SqlError, …) is the headline's type, so a caller that
 * branches on the type still can. Pure: used by workflows and by the CLI.
 */

/** Marks a step failure in its details (they survive serialisation to clients and parent workflows). */
const STEP_KEY = 'cpaStep';

function causeOf(e: unknown): unknown {
  return e instanceof Error ? (e as { cause?: unknown }).cause : undefined;
}

/** `err`, then its cause, its cause's cause, …: the one walk of a failure chain (the CLI, the workflows). */
export function* causes(err: unknown): Generator<unknown> {
  for (let cur = err; cur !== undefined; cur = causeOf(cur)) yield cur;
}

function innermost(e: unknown): unknown {
  let last: unknown = e;
  for (const c of causes(e)) last = c;
  return last;
}

/** `err` of the activity that ran `step`, as the run's failure; anything but an activity failure passes unchanged. */
export function stepFailure(step: string, err: unknown): unknown {
  if (!(err instanceof ActivityFailure)) return err;
  // A cancelled step is the run being cancelled: Temporal's own failure says so best.
  if (err.cause instanceof CancelledFailure) return err;
  const root = innermost(err);
  const type =
    root instanceof ApplicationFailure && root.type ? root.type : root instanceof Error ? root.name : 'Error';
  return ApplicationFailure.create({
    message: `${step}: ${rootCause(err) ?? err.message}`,
    type,
    nonRetryable: true,
    cause: err,
    details: [{ [STEP_KEY]: step }],
  });
}

/** The step of a failure made by {@link stepFailure}, anywhere in the chain. */
export function failedStep(err: unknown): string | undefined {
  for (const cur of causes(err)) {
    if (cur instanceof ApplicationFailure) {
      const d = cur.details?.[0] as Record<string, unknown> | undefined;
      if (d && typeof d[STEP_KEY] === 'string') return d[STEP_KEY];
    }
  }
  return undefined;
}

/** The one-line reason of a failure: `<step>: <root cause>` when a step failed, else the root cause's message. */
export function failureHeadline(err: unknown): string {
  for (const cur of causes(err)) {
    if (cur instanceof ApplicationFailure && failedStep(cur) !== undefined) return cur.message;
  }
  return rootCause(err) ?? String(err);
}

/**
 * The one-line reason of any error a client sees, after unwrapping the client errors that are not TemporalFailures
 * themselves (WorkflowFailedError, a gRPC error's cause): {@link failureHeadline} of what is inside.
 */
export function rootMessage(e: unknown): string {
  for (const cur of causes(e)) {
    if (cur instanceof TemporalFailure || causeOf(cur) === undefined) return failureHeadline(cur);
  }
  return failureHeadline(e);
}

/**
 * Runs one activity under its step name: the name is the activity's summary in the UI's timeline (SPEC §13), and a
 * failure of the step fails the run as `<step>: <root cause>`, the activity's failure kept as the cause. `name` is
 * the failure's step when it differs from the summary (a summary that also names the file).
 */
export function step<A extends unknown[], R>(
  activity: { executeWithOptions(options: { summary: string }, args: A): Promise<R> },
  summary: string,
  args: A,
  name = summary,
): Promise<R> {
  return activity.executeWithOptions({ summary }, args).catch((err: unknown) => {
    throw stepFailure(name, err);
  });
}
