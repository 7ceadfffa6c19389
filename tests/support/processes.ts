import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { SEARCH_ATTRIBUTES } from '../../worker/temporal';
import { REPO, temporalCli } from './env';

/** Env for a `node bin/cpa.js` child: hermetic like `cpa()` (no stack env file, no Cassandra, no watcher). */
export function cpaEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  return {
    ...process.env,
    TEMPORAL_ADDRESS: '',
    TEMPORAL_CLI_PATH: temporalCli(),
    CPA_DEV_PORT: '1',
    CPA_STACK_ENV_FILE: '/nonexistent/cpa-stack.env',
    CPA_CASSANDRA_CONTACT_POINTS: '',
    CPA_WATCH_ENABLED: 'false',
    CPA_LOG_LEVEL: 'warn',
    ...env,
  };
}

/** A child process with its output kept, and a promise of its exit code (null when killed by a signal). */
export interface Proc {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<number | null>;
  /** Resolves once `re` matches stdout + stderr; rejects on exit or timeout first. */
  waitForOutput(re: RegExp, timeoutMs?: number): Promise<void>;
}

export function spawnProc(command: string, args: string[], env: NodeJS.ProcessEnv): Proc {
  const child = spawn(command, args, { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let done = false;
  void exited.then(() => (done = true));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    async waitForOutput(re, timeoutMs = 120_000) {
      const deadline = Date.now() + timeoutMs;
      while (!re.test(out + err)) {
        if (done) throw new Error(`exited before printing ${re}:\n${out}\n${err}`);
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${re}:\n${out}\n${err}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
  };
}

/** `node bin/cpa.js …` as a child process. */
export function spawnCpa(args: string[], env: Record<string, string>): Proc {
  return spawnProc(process.execPath, [path.join(REPO, 'bin', 'cpa.js'), ...args], cpaEnv(env));
}

/**
 * A `temporal server start-dev` of the test's own, on fixed ports and a db file, so that it can be killed and
 * started again on the same address with its state (the workflows it had) intact.
 */
export function startTemporal(opts: { port: number; httpPort: number; metricsPort: number; dbFile: string }): Proc {
  fs.mkdirSync(path.dirname(opts.dbFile), { recursive: true });
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(opts.port), '--headless'];
  args.push('--http-port', String(opts.httpPort), '--metrics-port', String(opts.metricsPort));
  args.push('--log-level', 'error', '--db-filename', opts.dbFile);
  for (const [k, v] of Object.entries(SEARCH_ATTRIBUTES)) args.push('--search-attribute', `${k}=${v}`);
  return spawnProc(temporalCli(), args, process.env);
}

/** `pid`'s children, grandchildren, … (from /proc), e.g. the `temporal` server a CLI started. */
export function descendants(pid: number): Array<{ pid: number; args: string }> {
  const all = fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map((d) => {
      try {
        const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        const args = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').join(' ').trim();
        return { pid: Number(d), ppid, args };
      } catch {
        return undefined; // exited meanwhile
      }
    })
    .filter((p): p is { pid: number; ppid: number; args: string } => p !== undefined);
  const out: Array<{ pid: number; args: string }> = [];
  const todo = [pid];
  while (todo.length > 0) {
    const parent = todo.pop()!;
    for (const p of all.filter((x) => x.ppid === parent)) {
      out.push({ pid: p.pid, args: p.args });
      todo.push(p.pid);
    }
  }
  return out;
}

/** True while `pid` runs: a zombie counts as gone (this machine's init does not reap orphans). */
export function isRunning(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}
