import cassandra from 'cassandra-driver';
import type { Config } from '../config/env';
import { bootstrapCql, migrations, SCHEMA_VERSION } from '../config/serving';
import { firstLine } from './errors';

/**
 * The Cassandra side of serving: one client per process from config (contact points, local DC, user/password,
 * TLS), error classification, and the idempotent schema migration. Every statement runs prepared with bound
 * parameters; the only spliced text is the keyspace (validated identifier) and the replication map (validated).
 */

export type CassandraSettings = NonNullable<Config['cassandra']>;
export type CassandraClient = cassandra.Client;

const { errors, types } = cassandra;

/** Cassandra cannot be reached (no host answered): transient, retried by the activity's retry policy. */
export class CassandraUnavailable extends Error {
  override name = 'CassandraUnavailable';
}

/** A defect or a refusal that retrying cannot fix (bad credentials, CQL error, missing permission). */
export class CassandraRejected extends Error {
  override name = 'CassandraRejected';
}

/** Thrown when serving is requested but CPA_CASSANDRA_CONTACT_POINTS is not set. */
export class ServingNotConfigured extends Error {
  override name = 'ServingNotConfigured';
}

export function requireCassandra(config: Config): CassandraSettings {
  if (!config.cassandra) {
    throw new ServingNotConfigured('serving is not configured: set CPA_CASSANDRA_CONTACT_POINTS (see .env.example)');
  }
  return config.cassandra;
}

export function createClient(
  c: CassandraSettings,
  opts: { connectTimeoutMs?: number; readTimeoutMs?: number } = {},
): CassandraClient {
  return new cassandra.Client({
    contactPoints: c.contactPoints,
    localDataCenter: c.localDataCenter,
    authProvider: c.username ? new cassandra.auth.PlainTextAuthProvider(c.username, c.password ?? '') : undefined,
    // Server certificates are verified against the system CAs (NODE_EXTRA_CA_CERTS adds a private CA).
    sslOptions: c.tls ? { rejectUnauthorized: true } : undefined,
    socketOptions: { connectTimeout: opts.connectTimeoutMs ?? 5000, readTimeout: opts.readTimeoutMs ?? 30000 },
    // Upserts by primary key are idempotent, so the driver may retry them on timeouts.
    queryOptions: { consistency: types.consistencies.localQuorum, prepare: true, isIdempotent: true, fetchSize: 5000 },
  });
}

/** Connects, turning "no host answered" into one readable line (the CLI prints it as is). */
export async function connect(
  c: CassandraSettings,
  opts?: Parameters<typeof createClient>[1],
): Promise<CassandraClient> {
  const client = createClient(c, opts);
  try {
    await client.connect();
    return client;
  } catch (e) {
    await client.shutdown().catch(() => undefined);
    throw describeError(e, c);
  }
}

/**
 * One place that classifies driver errors: unreachable hosts, timeouts, overload and unavailability are transient
 * ({@link CassandraUnavailable}, retried); bad credentials and CQL/schema/permission errors are not
 * ({@link CassandraRejected}). Messages are one line and never contain the password.
 */
export function describeError(e: unknown, c?: CassandraSettings): Error {
  if (e instanceof CassandraUnavailable || e instanceof CassandraRejected || e instanceof ServingNotConfigured)
    return e;
  const where = c ? ` at ${c.contactPoints.join(',')} (dc ${c.localDataCenter})` : '';
  if (e instanceof errors.NoHostAvailableError) {
    const inner = Object.entries((e.innerErrors ?? {}) as Record<string, unknown>);
    if (inner.length > 0 && inner.every(([, ie]) => ie instanceof errors.AuthenticationError)) {
      return new CassandraRejected(`Cassandra rejected the credentials${where}: ${firstLine(inner[0][1])}`);
    }
    const detail = inner.length ? inner.map(([h, ie]) => `${h}: ${firstLine(ie)}`).join('; ') : firstLine(e);
    return new CassandraUnavailable(`Cassandra unreachable${where}: ${detail}`);
  }
  if (e instanceof errors.AuthenticationError)
    return new CassandraRejected(`Cassandra rejected the credentials${where}: ${firstLine(e)}`);
  if (e instanceof errors.OperationTimedOutError || e instanceof errors.BusyConnectionError) {
    return new CassandraUnavailable(`Cassandra timed out${where}: ${firstLine(e)}`);
  }
  if (e instanceof errors.ResponseError) {
    const codes = types.responseErrorCodes;
    const permanent = [
      codes.syntaxError,
      codes.unauthorized,
      codes.invalid,
      codes.configError,
      codes.alreadyExists,
      codes.badCredentials,
      codes.protocolError,
    ];
    if (permanent.includes(e.code)) return new CassandraRejected(`Cassandra rejected a statement: ${firstLine(e)}`);
    return new CassandraUnavailable(`Cassandra error (transient)${where}: ${firstLine(e)}`);
  }
  return e instanceof Error ? e : new Error(String(e));
}

export interface MigrationResult {
  keyspace: string;
  fromVersion: number;
  toVersion: number;
  applied: number[];
}

/**
 * Applies the schema idempotently: keyspace (replication from config), then every migration newer than the highest
 * version recorded in `schema_migrations`. Each statement is CREATE … IF NOT EXISTS, so re-running is harmless and
 * a migration interrupted half-way completes on the next run.
 */
export async function migrate(client: CassandraClient, c: CassandraSettings): Promise<MigrationResult> {
  for (const stmt of bootstrapCql(c.keyspace, c.replication)) await client.execute(stmt, [], { prepare: false });
  const current = await schemaVersion(client, c.keyspace);
  const applied: number[] = [];
  for (const m of migrations(c.keyspace)) {
    if (m.version <= current) continue;
    for (const stmt of m.statements) await client.execute(stmt, [], { prepare: false });
    await client.execute(
      `INSERT INTO ${c.keyspace}.schema_migrations (version, description, applied_at) VALUES (?, ?, ?)`,
      [m.version, m.description, new Date()],
    );
    applied.push(m.version);
  }
  return { keyspace: c.keyspace, fromVersion: current, toVersion: Math.max(current, ...applied), applied };
}

/** Highest applied schema version, 0 when the keyspace or the migrations table does not exist yet. */
export async function schemaVersion(client: CassandraClient, keyspace: string): Promise<number> {
  const ks = client.metadata.keyspaces[keyspace];
  if (!ks) {
    await client.metadata.refreshKeyspace(keyspace).catch(() => undefined);
    if (!client.metadata.keyspaces[keyspace]) return 0;
  }
  try {
    const rs = await client.execute(`SELECT version FROM ${keyspace}.schema_migrations`);
    return rs.rows.reduce((a, r) => Math.max(a, Number(r.get('version'))), 0);
  } catch (e) {
    if (e instanceof errors.ResponseError && e.code === types.responseErrorCodes.invalid) return 0;
    throw e;
  }
}

/** Migrates only when the recorded version is behind the code's (cheap check on every load). */
export async function ensureSchema(client: CassandraClient, c: CassandraSettings): Promise<void> {
  if ((await schemaVersion(client, c.keyspace)) >= SCHEMA_VERSION) return;
  await migrate(client, c);
}
