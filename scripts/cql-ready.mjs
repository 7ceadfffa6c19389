#!/usr/bin/env node
// Wait until Cassandra accepts CQL, then create the keyspace if it does not exist.
// Options (all optional):
//   --contact-points 127.0.0.1:9042   comma separated host:port list
//   --dc datacenter1                  local data center
//   --keyspace cloud_analytics        keyspace to create (SimpleStrategy, RF 1); "" to skip
//   --timeout 180                     seconds to keep trying
//   --pid <pid>                       give up at once if this process exits
// Prints the server's release_version on success; exits 1 with the last error on timeout.
import cassandra from 'cassandra-driver';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const contactPoints = opt('--contact-points', process.env.CPA_CASSANDRA_CONTACT_POINTS ?? '127.0.0.1:9042')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
const localDataCenter = opt('--dc', process.env.CPA_CASSANDRA_LOCAL_DC ?? 'datacenter1');
const keyspace = opt('--keyspace', process.env.CPA_CASSANDRA_KEYSPACE ?? 'cloud_analytics');
const timeoutMs = Number(opt('--timeout', '180')) * 1000;
const pid = Number(opt('--pid', '0'));

if (keyspace && !/^[A-Za-z][A-Za-z0-9_]{0,47}$/.test(keyspace)) {
  console.error(`cql-ready: invalid keyspace name ${JSON.stringify(keyspace)}`);
  process.exit(2);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const alive = (p) => {
  try {
    process.kill(p, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
};

// One line per error; NoHostAvailableError carries the per-host causes in innerErrors.
const describe = (e) => {
  const inner = e?.innerErrors && Object.entries(e.innerErrors);
  if (inner?.length) return inner.map(([host, ie]) => `${host}: ${ie?.message ?? ie}`).join('; ');
  return String(e?.message ?? e).split('\n')[0];
};

const deadline = Date.now() + timeoutMs;
let lastError = 'not tried';
for (;;) {
  if (pid && !alive(pid)) {
    console.error(`cql-ready: Cassandra process ${pid} exited (last error: ${lastError})`);
    process.exit(1);
  }
  const client = new cassandra.Client({
    contactPoints,
    localDataCenter,
    socketOptions: { connectTimeout: 3000, readTimeout: 30000 },
  });
  try {
    await client.connect();
    const rs = await client.execute('SELECT release_version FROM system.local');
    if (keyspace) {
      await client.execute(
        `CREATE KEYSPACE IF NOT EXISTS ${keyspace} WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`,
      );
    }
    console.log(rs.first().get('release_version'));
    await client.shutdown();
    process.exit(0);
  } catch (e) {
    lastError = describe(e);
    await client.shutdown().catch(() => {});
  }
  if (Date.now() >= deadline) {
    console.error(
      `cql-ready: no CQL connection to ${contactPoints.join(',')} within ${timeoutMs / 1000}s: ${lastError}`,
    );
    process.exit(1);
  }
  await sleep(1000);
}
