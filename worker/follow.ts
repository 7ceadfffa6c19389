import { setTimeout as sleep } from 'node:timers/promises';
import {
  Client,
  Connection,
  defaultGrpcRetryOptions,
  isGrpcServiceError,
  makeGrpcRetryInterceptor,
  TemporalFailure,
  WorkflowFailedError,
} from '@temporalio/client';
import type { Config } from '../config/env';
import { connectionOptions } from './temporal';
import { firstLine } from '../lake/errors';

/** gRPC status codes that mean no server answered (UNAVAILABLE, DEADLINE_EXCEEDED), not that one said no. */
const GRPC_UNREACHABLE = new Set([14, 4]);

/**
 * Thrown when Temporal stayed unreachable for longer than CPA_CLI_OUTAGE_SECONDS while a command waited for a
 * workflow: the run was started and goes on in Temporal; only its outcome is unknown here. The CLI exits 3.
 */
export class OutcomeUnknown extends Error {
  override name = 'OutcomeUnknown';
  constructor(
    readonly workflowId: string,
    readonly address: string,
    readonly waitedSeconds: number,
    cause: unknown,
    namespace = 'default',
  ) {
    const ns = namespace === 'default' ? '' : ` --namespace ${namespace}`;
    super(
      `temporal unreachable at ${address} for ${waitedSeconds} s (CPA_CLI_OUTAGE_SECONDS): the outcome of ${workflowId} ` +
        `is unknown, it may still be running; follow it with \`temporal workflow show -w ${workflowId} --address ${address}${ns}\` ` +
        `or in the Web UI`,
      { cause },
    );
  }
}

/**
 * True when `e` says no Temporal server answered: a gRPC UNAVAILABLE or DEADLINE_EXCEEDED, or a connection that could
 * not be established. A workflow's own failure never is, whatever its message says.
 */
export function isUnreachable(e: unknown): boolean {
  for (let cur: unknown = e; cur instanceof Error; cur = cur.cause) {
    if (cur instanceof WorkflowFailedError || cur instanceof TemporalFailure) return false;
    if (isGrpcServiceError(cur) && GRPC_UNREACHABLE.has(cur.code)) return true;
    // grpc-js waitForReady on a fresh connection (Connection.connect) to a port nobody listens on.
    if (/Failed to connect before the deadline/.test(cur.message)) return true;
  }
  return false;
}

/** The first gRPC service error in `e`'s cause chain, unless a workflow's own failure comes first. */
function grpcErrorIn(e: unknown): { code: number; details: string; message: string } | undefined {
  for (let cur: unknown = e; cur instanceof Error; cur = cur.cause) {
    if (cur instanceof WorkflowFailedError || cur instanceof TemporalFailure) return undefined;
    if (isGrpcServiceError(cur)) return cur;
  }
  return undefined;
}

/** The gRPC status (code and details) or message behind an unreachable server, for the retry line. */
export function grpcReason(e: unknown): string {
  const g = grpcErrorIn(e);
  if (g) return `gRPC ${g.code}: ${(g.details || g.message).split('\n')[0]}`;
  return firstLine(e);
}

/** The line printed for each retry while no Temporal server answers. */
function unreachableLine(address: string, e: unknown, waitedMs: number, budgetMs: number): string {
  return `temporal unreachable at ${address} (${grpcReason(e)}), retrying (${secs(waitedMs)} s of ${secs(budgetMs)} s) …`;
}

/** A result poll that ran at least this long before its DEADLINE_EXCEEDED was a long poll, not a failed call. */
const LONG_POLL_MS = 5000;

/** True when `e` is (or wraps) a gRPC DEADLINE_EXCEEDED and no workflow failure. */
export function isDeadlineExceeded(e: unknown): boolean {
  return grpcErrorIn(e)?.code === 4;
}

/**
 * The SDK's gRPC retries minus UNAVAILABLE: the default retries it ~20 s in silence, then fails the call. The wait
 * below retries it itself, for as long as configured, saying so on stderr.
 */
const withoutUnavailableRetries = (() => {
  const sdk = defaultGrpcRetryOptions();
  return makeGrpcRetryInterceptor({
    delayFunction: sdk.delayFunction,
    retryableDecider: (attempt, status) => status.code !== 14 && sdk.retryableDecider(attempt, status),
  });
})();

export interface FollowOptions {
  /** Where progress lines go (default: stderr). */
  log?: (line: string) => void;
  /** The server is this CLI's embedded dev server: the workflow ends with the CLI (said when interrupted). */
  embedded?: boolean;
}

/**
 * Thrown when the operator interrupted a command (Ctrl-C, SIGTERM) while it waited for a workflow. The CLI stops its
 * in-process worker and exits 130 with where the run stands: on an embedded dev server the run ends with the CLI
 * (what it published stays: every publish is one transaction; the next run goes on from there), on a shared server it
 * goes on without this CLI. Before, the SDK's signal handler stopped the worker and the CLI waited forever for a
 * result no worker would produce.
 */
export class Interrupted extends Error {
  override name = 'Interrupted';
  constructor(signal: string, workflowId: string, address: string, embedded: boolean, namespace = 'default') {
    const ns = namespace === 'default' ? '' : ` --namespace ${namespace}`;
    super(
      embedded
        ? `interrupted (${signal}): ${workflowId} stopped with this CLI's embedded Temporal server; what it published ` +
            `stays, and the next run goes on from there`
        : `interrupted (${signal}): stopped waiting for ${workflowId}, which goes on in Temporal at ${address} once a ` +
            `worker polls; follow it with \`temporal workflow show -w ${workflowId} --address ${address}${ns}\` or cancel ` +
            `it in the Web UI`,
    );
  }
}

/** Rejects with Interrupted on the first SIGINT or SIGTERM; `dispose` removes the handlers. */
function interruption(
  workflowId: string,
  address: string,
  embedded: boolean,
  namespace: string,
): { promise: Promise<never>; dispose: () => void } {
  let onSignal: (signal: NodeJS.Signals) => void = () => undefined;
  const promise = new Promise<never>((_, reject) => {
    onSignal = (signal) => reject(new Interrupted(signal, workflowId, address, embedded, namespace));
  });
  promise.catch(() => undefined);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return {
    promise,
    dispose: () => {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
    },
  };
}

/**
 * Waits for a workflow's result like `handle.result()` (following continue-as-new and retries), and rides out a
 * Temporal outage: while no server answers at the client's address it reconnects with backoff (1 s doubling to 5 s),
 * printing `temporal unreachable at ADDR (gRPC status), retrying (12 s of 300 s) …`, and resumes waiting once it
 * answers. A failed workflow throws WorkflowFailedError as the SDK does; an outage longer than
 * `config.temporal.cliOutageSeconds` throws OutcomeUnknown. Its own connection (closed on return) carries the
 * client's TLS/API-key settings from `config`.
 * Ctrl-C or SIGTERM while waiting throws Interrupted (exit 130).
 */
export async function followResult<T>(
  client: Client,
  config: Config,
  workflowId: string,
  runId?: string,
  opts: FollowOptions = {},
): Promise<T> {
  const address = (client.connection as Connection).options.address;
  const stop = interruption(workflowId, address, opts.embedded ?? false, client.options.namespace);
  try {
    return await Promise.race([follow<T>(client, config, workflowId, runId, opts), stop.promise]);
  } finally {
    stop.dispose();
  }
}

async function follow<T>(
  client: Client,
  config: Config,
  workflowId: string,
  runId: string | undefined,
  opts: FollowOptions,
): Promise<T> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const address = (client.connection as Connection).options.address;
  const namespace = client.options.namespace;
  const budgetMs = config.temporal.cliOutageSeconds * 1000;
  let outageSince: number | undefined;
  let delayMs = 1000;
  for (;;) {
    let connection: Connection | undefined;
    let pollStart: number | undefined;
    try {
      const remaining = outageSince === undefined ? budgetMs : budgetMs - (Date.now() - outageSince);
      connection = await Connection.connect({
        ...connectionOptions(config, address),
        connectTimeout: Math.max(1000, Math.min(5000, remaining)),
        interceptors: [withoutUnavailableRetries],
      });
      if (outageSince !== undefined) {
        log(
          `temporal at ${address} answers again after ${secs(Date.now() - outageSince)} s; waiting for ${workflowId}`,
        );
        outageSince = undefined;
        delayMs = 1000;
      }
      const follower = new Client({ connection, namespace });
      pollStart = Date.now();
      return (await follower.workflow.getHandle(workflowId, runId).result()) as T;
    } catch (e) {
      // A busy server that does not answer a result long poll in time is no outage: the server answered the connect
      // just before, so the poll is made again (its reconnect finds out whether the server went away meanwhile).
      const longPoll = pollStart !== undefined && Date.now() - pollStart >= LONG_POLL_MS;
      if (longPoll && outageSince === undefined && isDeadlineExceeded(e)) continue;
      if (!isUnreachable(e)) throw e;
      outageSince ??= Date.now();
      const waited = Date.now() - outageSince;
      if (waited >= budgetMs) throw new OutcomeUnknown(workflowId, address, secs(waited), e, namespace);
      log(unreachableLine(address, e, waited, budgetMs));
      await sleep(Math.min(delayMs, budgetMs - waited));
      delayMs = Math.min(delayMs * 2, 5000);
    } finally {
      await connection?.close();
    }
  }
}

/**
 * Runs `call` (a start or a describe of `workflowId`: idempotent calls) and rides out a Temporal outage the way
 * {@link followResult} does: each try is bounded to a few seconds (the SDK would otherwise retry UNAVAILABLE ~20 s in
 * silence), an unreachable server is retried with backoff and said so on stderr, and an outage longer than
 * CPA_CLI_OUTAGE_SECONDS throws OutcomeUnknown. Any other error is the call's own and is thrown as is. Without it, a
 * server that went away between a workflow's start and the CLI's first describe made `cpa run` exit 1, "could not
 * start", for a run that had started.
 */
export async function rideOutOutage<T>(
  client: Client,
  config: Config,
  workflowId: string,
  call: () => Promise<T>,
  opts: FollowOptions = {},
): Promise<T> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const address = (client.connection as Connection).options.address;
  const budgetMs = config.temporal.cliOutageSeconds * 1000;
  let outageSince: number | undefined;
  let delayMs = 1000;
  for (;;) {
    const tryStart = Date.now();
    try {
      const remaining = outageSince === undefined ? budgetMs : budgetMs - (tryStart - outageSince);
      const out = await client.withDeadline(tryStart + Math.max(1000, Math.min(5000, remaining)), call);
      if (outageSince !== undefined)
        log(`temporal at ${address} answers again after ${secs(Date.now() - outageSince)} s`);
      return out;
    } catch (e) {
      if (!isUnreachable(e)) throw e;
      // The outage began when the failed try did (a try waits up to its deadline before it fails).
      outageSince ??= tryStart;
      const waited = Date.now() - outageSince;
      if (waited >= budgetMs) throw new OutcomeUnknown(workflowId, address, secs(waited), e, client.options.namespace);
      log(unreachableLine(address, e, waited, budgetMs));
      await sleep(Math.min(delayMs, budgetMs - waited));
      delayMs = Math.min(delayMs * 2, 5000);
    }
  }
}

const secs = (ms: number): number => Math.round(ms / 1000);
