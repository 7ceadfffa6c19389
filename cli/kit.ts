import type { Command } from 'commander';
import type { Config, RawEnv } from '../config/env';

/** A command that cannot do what it was asked: the CLI prints `cpa: <message>` and exits non-zero. */
export class PipelineFailed extends Error {
  override name = 'PipelineFailed';
}

/** Exit codes of the CLI (SPEC §10: 0 ok, non-zero with a one-line reason). */
export const ExitCode = {
  /** The command did what it was asked; a waited-for workflow succeeded. */
  ok: 0,
  /** The command failed, or the workflow it waited for failed (the reason names the step). */
  failed: 1,
  /** The environment does not validate (every bad variable listed). */
  config: 2,
  /** Temporal stayed unreachable longer than CPA_CLI_OUTAGE_SECONDS: the workflow may still be running. */
  outcomeUnknown: 3,
  /** Interrupted (Ctrl-C, SIGTERM) while waiting for a workflow (128 + SIGINT, as shells report it). */
  interrupted: 130,
} as const;

/** What a command module gets to register its commands with the shared parsers and config loader. */
export interface CommandKit {
  config: (overrides?: Partial<RawEnv>) => Config;
  /**
   * Preflight for commands that open the lake (and landing) from `cfg`: S3 access; a local lake that is a file,
   * uncreatable, unwritable or inside the landing; with `sources`, a local landing that is missing or holds nothing.
   */
  checkStorage: (cfg: Config, opts?: { landing?: boolean; write?: boolean; sources?: boolean }) => Promise<void>;
  isoDate: (v: string) => string;
  integer: (v: string) => number;
  positiveNumber: (v: string) => number;
}

export type RegisterCommands = (program: Command, kit: CommandKit) => void;
