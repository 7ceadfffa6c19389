import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import type { Config } from '../config/env';

/** Custom search attributes that make runs findable in the Web UI by logical date, kind and status. */
export const SEARCH_ATTRIBUTES = {
  CpaLogicalDate: 'Keyword',
  CpaRunKind: 'Keyword',
  CpaStatus: 'Keyword',
  CpaFileKey: 'Keyword',
} as const;

/** A Temporal server the CLI talks to; `stop()` is a no-op for servers it did not start. */
export interface TemporalEndpoint {
  address: string;
  uiUrl?: string;
  started: boolean;
  stop(): Promise<void>;
}

/** Connection settings (TLS, API key) for `address`, shared by the client, the worker and the outage-aware wait. */
export function connectionOptions(config: Config, address: string) {
  const t = config.temporal;
  const tls =
    t.tls || t.tlsCertPath
      ? {
          clientCertPair:
            t.tlsCertPath && t.tlsKeyPath
              ? { crt: fs.readFileSync(t.tlsCertPath), key: fs.readFileSync(t.tlsKeyPath) }
              : undefined,
        }
      : undefined;
  return { address, tls, apiKey: t.apiKey };
}

export async function clientFor(config: Config, address: string): Promise<{ client: Client; close(): Promise<void> }> {
  const connection = await Connection.connect(connectionOptions(config, address));
  return { client: new Client({ connection, namespace: config.temporal.namespace }), close: () => connection.close() };
}

export async function nativeConnectionFor(config: Config, address: string): Promise<NativeConnection> {
  return NativeConnection.connect(connectionOptions(config, address));
}

/** True when a Temporal frontend answers at `address` within `timeoutMs`. */
export async function isServerUp(config: Config, address: string, timeoutMs = 1500): Promise<boolean> {
  const [host, portStr] = address.split(':');
  const open = await new Promise<boolean>((resolve) => {
    const sock = net.connect({ host, port: Number(portStr) });
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(false);
    }, timeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.end();
      resolve(true);
    });
    sock.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
  if (!open) return false;
  try {
    const conn = await Connection.connect({ ...connectionOptions(config, address), connectTimeout: timeoutMs });
    await conn.close();
    return true;
  } catch {
    return false;
  }
}

/** Where the `temporal` CLI binary is: TEMPORAL_CLI_PATH, then PATH, then the project's tool cache. */
export function findTemporalCli(config: Config): string | undefined {
  if (config.temporal.cliPath) {
    if (!fs.existsSync(config.temporal.cliPath))
      throw new Error(`TEMPORAL_CLI_PATH ${config.temporal.cliPath} does not exist`);
    return config.temporal.cliPath;
  }
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const p = path.join(dir, 'temporal');
    if (dir && fs.existsSync(p)) return p;
  }
  const cache = process.env.CPA_CACHE_DIR ?? path.join(os.homedir(), '.cache', 'cpa');
  const cached = path.join(cache, 'pybin', 'bin', 'temporal');
  return fs.existsSync(cached) ? cached : undefined;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts `temporal server start-dev` on loopback and waits until its frontend answers. Ephemeral servers are
 * headless with in-memory state; `cpa dev` passes a db file and a UI port so history survives restarts.
 * Without a local binary, falls back to the SDK's own download (needs internet).
 */
export async function startDevServer(
  config: Config,
  opts: { port?: number; uiPort?: number; dbFile?: string; quiet?: boolean } = {},
): Promise<TemporalEndpoint> {
  const binary = findTemporalCli(config);
  if (!binary) return startDownloadedServer(opts);
  // Ports picked by freePort() can be taken by another process before the server binds them: an ephemeral server
  // that dies during start-up is retried on fresh ports (fixed ports, as `cpa dev` uses, are not retried).
  const attempts = opts.port ? 1 : 3;
  for (let attempt = 1; ; attempt++) {
    try {
      return await spawnDevServer(config, binary, opts);
    } catch (e) {
      if (!(e instanceof DevServerExited) || attempt >= attempts) throw e;
    }
  }
}

/**
 * Whether process `pid` (or one of its descendants) holds the listening TCP socket of `port`, from /proc (Linux);
 * undefined where /proc cannot tell (another OS), so the caller's answer is then the reachability check alone. A
 * process that is gone (a server that could not bind exits at once, possibly before its exit event is seen) holds
 * nothing: false.
 */
export function listensOn(pid: number, port: number): boolean | undefined {
  const inodes = new Set<string>();
  let readable = false;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = fs.readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    readable = true;
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // local_address is HEXIP:HEXPORT; state 0A is LISTEN; the inode is the tenth field
      if (f.length > 9 && f[3] === '0A' && parseInt(f[1].split(':')[1], 16) === port) inodes.add(f[9]);
    }
  }
  if (!readable) return undefined;
  const pids = [pid];
  for (let i = 0; i < pids.length; i++) {
    try {
      for (const task of fs.readdirSync(`/proc/${pids[i]}/task`)) {
        const children = fs.readFileSync(`/proc/${pids[i]}/task/${task}/children`, 'utf8').trim();
        if (children) pids.push(...children.split(/\s+/).map(Number));
      }
    } catch {
      /* gone meanwhile */
    }
  }
  for (const p of pids) {
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${p}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${p}/fd/${fd}`));
        if (m && inodes.has(m[1])) return true;
      } catch {
        /* closed meanwhile */
      }
    }
  }
  return false;
}

class DevServerExited extends Error {
  override name = 'DevServerExited';
}

async function spawnDevServer(
  config: Config,
  binary: string,
  opts: { port?: number; uiPort?: number; dbFile?: string },
): Promise<TemporalEndpoint> {
  const port = opts.port ?? (await freePort());
  const address = `127.0.0.1:${port}`;
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port), '--log-level', 'error'];
  args.push('--http-port', String(await freePort()), '--metrics-port', String(await freePort()));
  if (opts.uiPort) args.push('--ui-port', String(opts.uiPort));
  else args.push('--headless');
  if (opts.dbFile) {
    fs.mkdirSync(path.dirname(opts.dbFile), { recursive: true });
    args.push('--db-filename', opts.dbFile);
  }
  for (const [k, v] of Object.entries(SEARCH_ATTRIBUTES)) args.push('--search-attribute', `${k}=${v}`);
  // Its own process group, so that stop() and the leash end the server with whatever it runs, and a Ctrl-C meant for
  // the CLI reaches the server only through stop(), after the worker has drained.
  const child: ChildProcess = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  const killServer = (signal: NodeJS.Signals): void => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      /* already gone */
    }
  };
  const leash = child.pid ? leashTo(child.pid) : { release: () => undefined };
  // Keep the head of stderr (where the reason is) and its tail (where a panic ends).
  let head = '';
  let tail = '';
  child.stderr?.on('data', (d: Buffer) => {
    if (head.length < 2000) head = (head + d.toString()).slice(0, 2000);
    tail = (tail + d.toString()).slice(-2000);
  });
  const reason = (): string => (head.length < 2000 ? head : `${head} … ${tail}`).trim().split('\n')[0];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) {
      leash.release();
      throw new DevServerExited(`temporal dev server exited (${child.exitCode}): ${reason()}`);
    }
    if (await isServerUp(config, address, 1000)) {
      if (listensOn(child.pid!, port) !== false) break;
      // Another process's server answers on this port: two processes were handed the same free port, the other bound
      // it first and ours cannot (seen in the e2e suite: `cpa run` attached to a test's `cpa dev` server, which the
      // test then killed). Not ours: start again on fresh ports.
      killServer('SIGKILL');
      leash.release();
      throw new DevServerExited(`port ${port} is answered by another process, not by the dev server started here`);
    }
    if (Date.now() > deadline) {
      killServer('SIGKILL');
      leash.release();
      throw new Error(`temporal dev server did not answer on ${address} within 60s: ${reason()}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    address,
    uiUrl: opts.uiPort ? `http://127.0.0.1:${opts.uiPort}` : undefined,
    started: true,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        // An in-memory server has nothing to write: SIGKILL ends it at once (SIGTERM takes about a second of graceful
        // shutdown). A server with a state file (`cpa dev`) is asked to stop, so SQLite closes cleanly.
        killServer(opts.dbFile ? 'SIGTERM' : 'SIGKILL');
        const timer = setTimeout(() => killServer('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      leash.release();
    },
  };
}

/**
 * The leash: a `sh` that blocks reading a pipe from this process and, when the pipe closes (this process exited,
 * crashed or was killed with SIGKILL, which no handler of ours sees), ends the process group `pgid` (SIGTERM, then
 * SIGKILL after 5 s). It ignores SIGINT/SIGTERM/SIGHUP so a Ctrl-C or a signal to our whole group cannot take it down
 * before it has done its job. `release()` is for a server stopped by other means (stop(), a failed start): it ends the
 * leash without touching the group.
 */
function leashTo(pgid: number): { release(): void } {
  const script = [
    "trap '' INT TERM HUP",
    'while read -r _; do :; done',
    'kill -TERM -"$1" 2>/dev/null || exit 0',
    'i=0',
    'while kill -0 -"$1" 2>/dev/null && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done',
    'kill -KILL -"$1" 2>/dev/null',
  ].join('\n');
  const leash = spawn('/bin/sh', ['-c', script, 'cpa-temporal-leash', String(pgid)], {
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  // Never what keeps this process alive: the pipe only has to exist as long as we do.
  leash.unref();
  (leash.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  leash.stdin?.on('error', () => undefined);
  return {
    release() {
      if (leash.exitCode === null && leash.signalCode === null) leash.kill('SIGKILL');
    },
  };
}

async function startDownloadedServer(opts: { uiPort?: number; dbFile?: string }): Promise<TemporalEndpoint> {
  // The SDK downloads the same CLI binary; only reached when no local binary exists (needs internet).
  const { TestWorkflowEnvironment } = await import('@temporalio/testing');
  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      ui: opts.uiPort !== undefined,
      uiPort: opts.uiPort,
      dbFilename: opts.dbFile,
      searchAttributes: Object.entries(SEARCH_ATTRIBUTES).map(([name]) => ({ name, type: 'KEYWORD' as never })),
    },
  });
  const address = env.connection.options.address;
  return {
    address,
    started: true,
    uiUrl: opts.uiPort ? `http://127.0.0.1:${opts.uiPort}` : undefined,
    stop: () => env.teardown(),
  };
}
