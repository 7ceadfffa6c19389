import type { Client } from '@temporalio/client';
import { SearchAttributeType, defineSearchAttributeKey } from '@temporalio/common';
import { SEARCH_ATTRIBUTES } from '../../worker/temporal';

/** The search attributes the embedded dev server registers (worker/temporal.ts), for TestWorkflowEnvironment.createLocal. */
export const searchAttributeKeys = Object.keys(SEARCH_ATTRIBUTES).map((name) =>
  defineSearchAttributeKey(name, SearchAttributeType.KEYWORD),
);

/** Polls a visibility query (eventually consistent) until it returns at least `n` executions or time runs out. */
export async function listUntil(
  client: Client,
  query: string,
  n: number,
  timeoutMs = 15_000,
): Promise<Array<{ workflowId: string }>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found: Array<{ workflowId: string }> = [];
    for await (const w of client.workflow.list({ query })) found.push({ workflowId: w.workflowId });
    if (found.length >= n || Date.now() > deadline) return found;
    await new Promise((r) => setTimeout(r, 300));
  }
}
