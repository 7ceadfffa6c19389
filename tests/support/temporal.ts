import crypto from 'node:crypto';
import type { Client } from '@temporalio/client';
import { SearchAttributeType, defineSearchAttributeKey } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { SEARCH_ATTRIBUTES } from '../../worker/temporal';
import { SHARED_SERVER_ENV } from './shared-server';

/**
 * The address of the dev server this jest run shares (tests/support/global-setup.ts). Never a default: without it a
 * test would talk to whatever answers on localhost:7233 (a developer's `cpa dev`, the local stack).
 */
export function sharedServerAddress(): string {
  const address = process.env[SHARED_SERVER_ENV];
  if (!address) {
    throw new Error(
      `${SHARED_SERVER_ENV} is not set: run this file with jest.config.js or jest.e2e.config.js, whose globalSetup ` +
        'starts the shared Temporal dev server',
    );
  }
  return address;
}

/**
 * A TestWorkflowEnvironment on the shared dev server (namespace default, the custom search attributes registered);
 * teardown closes its connections only. Other files use the same server at the same time: keep to task queues and
 * workflow ids of the file's own (uniqueName), and filter visibility queries by them.
 */
export function sharedTestEnv(): Promise<TestWorkflowEnvironment> {
  return TestWorkflowEnvironment.createFromExistingServer({ address: sharedServerAddress() });
}

/** `<label>-<8 hex>`: a task queue or workflow-id prefix that no other test file (nor a re-run) uses. */
export function uniqueName(label: string): string {
  return `${label}-${crypto.randomBytes(4).toString('hex')}`;
}

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
