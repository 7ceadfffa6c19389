#!/usr/bin/env bash
# Local, Docker-less service stack: PostgreSQL (the DuckLake catalog of S3 lakes), Temporal dev server,
# MinIO (S3), Cassandra 5.0.
#
#   scripts/stack.sh up [postgres|temporal|minio|cassandra ...]     start (all by default), wait until ready
#   scripts/stack.sh down [postgres|temporal|minio|cassandra ...]   stop (SIGTERM, then SIGKILL)
#   scripts/stack.sh status                                        one line per service, always exits 0
#
# Everything listens on 127.0.0.1 only. State, pid files and logs live in
# ${CPA_STACK_DIR:-${CPA_CACHE_DIR:-$HOME/.cache/cpa}/stack}. Binaries come from scripts/tools.sh.
# `up` writes <repo>/.cpa-stack.env (git-ignored) with the connection settings of the running
# services; `down` rewrites it (and removes it once nothing is running).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
CACHE="${CPA_CACHE_DIR:-$HOME/.cache/cpa}"
STACK="${CPA_STACK_DIR:-$CACHE/stack}"
ENV_FILE="$REPO_ROOT/.cpa-stack.env"
SERVICES=(postgres temporal minio cassandra)

HOST=127.0.0.1
PG_PORT="${CPA_PG_PORT:-5432}"
PG_DB=cpa_lake
PG_USER=cpa
TEMPORAL_PORT=7233
TEMPORAL_UI_PORT=8233
MINIO_PORT=9000
MINIO_CONSOLE_PORT=9001
CASSANDRA_NATIVE_PORT=9042
CASSANDRA_STORAGE_PORT=7000
S3_BUCKET="${CPA_S3_BUCKET:-cpa-lake}"
S3_REGION=us-east-1
CASSANDRA_DC=datacenter1
CASSANDRA_KEYSPACE=cloud_analytics
CASSANDRA_HEAP="${CPA_CASSANDRA_HEAP:-1g}"
TEMPORAL_SEARCH_ATTRIBUTES=(CpaLogicalDate=Keyword CpaRunKind=Keyword CpaStatus=Keyword CpaFileKey=Keyword)

# Readiness / shutdown bounds in seconds (overridable for slow machines).
TIMEOUT_POSTGRES="${CPA_STACK_TIMEOUT_POSTGRES:-60}"
TIMEOUT_TEMPORAL="${CPA_STACK_TIMEOUT_TEMPORAL:-60}"
TIMEOUT_MINIO="${CPA_STACK_TIMEOUT_MINIO:-60}"
TIMEOUT_CASSANDRA="${CPA_STACK_TIMEOUT_CASSANDRA:-240}"
STOP_TIMEOUT="${CPA_STACK_STOP_TIMEOUT:-30}"

say() { printf '[stack] %s\n' "$*"; }
warn() { printf '[stack] %s\n' "$*" >&2; }
die() {
  printf '[stack] ERROR: %s\n' "$*" >&2
  exit 1
}

# KEY=VALUE lines from tools.sh: TEMPORAL_CLI_PATH, TEMPORAL_TEST_SERVER_PATH,
# CPA_DUCKDB_EXTENSION_DIR, MINIO_BIN, CASSANDRA_HOME.
eval "$(bash "$SCRIPT_DIR/tools.sh" paths)"

pidfile() { echo "$STACK/$1.pid"; }
logfile() { echo "$STACK/$1.log"; }

# Prints the pid of our running instance of $1 (pid file + process alive + its command line
# mentions our stack dir, so a recycled pid is not mistaken for ours); returns 1 otherwise.
pid_of() {
  local f pid
  f="$(pidfile "$1")"
  [ -s "$f" ] || return 1
  pid="$(cat "$f")"
  if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$STACK/"; then
    echo "$pid"
    return 0
  fi
  rm -f "$f"
  return 1
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

ports_of() {
  case "$1" in
    postgres) echo "$PG_PORT" ;;
    temporal) echo "$TEMPORAL_PORT $TEMPORAL_UI_PORT" ;;
    minio) echo "$MINIO_PORT $MINIO_CONSOLE_PORT" ;;
    cassandra) echo "$CASSANDRA_NATIVE_PORT $CASSANDRA_STORAGE_PORT" ;;
  esac
}

address_of() {
  case "$1" in
    postgres) echo "$HOST:$PG_PORT (database $PG_DB, user $PG_USER)" ;;
    temporal) echo "$HOST:$TEMPORAL_PORT (ui http://$HOST:$TEMPORAL_UI_PORT)" ;;
    minio) echo "http://$HOST:$MINIO_PORT (console http://$HOST:$MINIO_CONSOLE_PORT)" ;;
    cassandra) echo "$HOST:$CASSANDRA_NATIVE_PORT (storage $HOST:$CASSANDRA_STORAGE_PORT)" ;;
  esac
}

check_ports_free() {
  local p
  for p in $(ports_of "$1"); do
    if port_open "$p"; then
      die "$1: port $HOST:$p is already in use by a process not managed by $0 (stop it, or run '$0 status')"
    fi
  done
}

# Start "$@" detached (own session, stdin/stdout/stderr redirected) and record its pid. Every other inherited file
# descriptor is closed first: a daemon must not keep a caller's lock open (`flock LOCK scripts/stack.sh up` would
# otherwise hold LOCK for as long as the service runs), nor our own lock fd 9.
start_bg() {
  local svc="$1" log
  shift
  log="$(logfile "$svc")"
  printf '=== %s starting %s\n' "$(date -u +%FT%TZ)" "$svc" >>"$log"
  (
    for fd in /proc/self/fd/*; do
      fd="${fd##*/}"
      if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec setsid "$@" </dev/null >>"$log" 2>&1
  ) &
  echo "$!" >"$(pidfile "$svc")"
}

# Kill a service we just failed to bring up, show the tail of this start's logs and exit.
fail_start() {
  local svc="$1" msg="$2" f log
  shift 2
  log="$(logfile "$svc")"
  warn "$svc: $msg"
  if [ -s "$log" ]; then
    warn "---- $log (this start, last 30 lines) ----"
    awk '/^=== .* starting /{n=0} {buf[n++]=$0} END{s=n>30?n-30:0; for(i=s;i<n;i++) print buf[i]}' "$log" |
      cut -c1-400 >&2
  fi
  for f in "$@"; do
    # Extra logs (e.g. Cassandra's system.log) only if written since this start.
    if [ ! -s "$f" ] || [ ! "$f" -nt "$(pidfile "$svc")" ]; then continue; fi
    warn "---- $f (last 30 lines) ----"
    tail -n 30 "$f" | cut -c1-400 >&2
  done
  stop_svcs "$svc" >/dev/null 2>&1 || true
  exit 1
}

# ---------------------------------------------------------------------------------------------
# A service that was already running is waited on too (it may still be starting, e.g. after an
# interrupted `up`), but never killed: only a process this invocation started is stopped on failure.
not_ready() { # not_ready <svc> <started 0|1> <message> [extra logs]
  if [ "$2" = 1 ]; then fail_start "$1" "$3" "${@:4}"; fi
  die "$1: already running (pid file $(pidfile "$1")) but $3; see $(logfile "$1"), or run '$0 down $1'"
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL from Debian's packages: the DuckLake catalog of S3 lakes (CPA_LAKE_CATALOG; one metadata schema per
# lake, see lake/lakehouse.ts). Cluster in $STACK/postgres/data, TCP on $HOST:$PG_PORT only (no Unix socket),
# scram-sha-256 for every login: superuser `postgres` for the setup below, role `cpa` owning database `cpa_lake`.
# PostgreSQL refuses to run as root, so as root the cluster belongs to an unprivileged system user
# (CPA_PG_OS_USER, default `postgres`, created when missing).
PG_DATA="$STACK/postgres/data"
PG_OS_USER="${CPA_PG_OS_USER:-postgres}"
PG_BIN=""
PG_AS=() # prefix that runs a command as the cluster's OS user (empty when we are not root)
PG_SUPER_PASSWORD=""
PG_PASSWORD=""

pg_bin_ok() {
  local t
  for t in initdb postgres pg_isready psql; do [ -x "$1/$t" ] || return 1; done
}

find_pg_bin() { # sets PG_BIN: CPA_PG_BIN, else the directory of `initdb` on PATH, else the newest Debian major
  local c candidates=()
  if [ -n "${CPA_PG_BIN:-}" ]; then
    pg_bin_ok "$CPA_PG_BIN" || die "postgres: CPA_PG_BIN=$CPA_PG_BIN does not hold initdb, postgres, pg_isready and psql"
    PG_BIN="$CPA_PG_BIN"
    return 0
  fi
  c="$(command -v initdb 2>/dev/null || true)"
  if [ -n "$c" ]; then candidates+=("$(dirname "$(readlink -f "$c")")"); fi
  while IFS= read -r c; do candidates+=("$c"); done < <(compgen -G '/usr/lib/postgresql/*/bin' | sort -V -r)
  for c in "${candidates[@]}"; do
    if pg_bin_ok "$c"; then
      PG_BIN="$c"
      return 0
    fi
  done
  return 1
}

apt_install() { # apt_install <package...>: as root, `apt-get update` only when the first attempt fails
  local log
  log="$(logfile postgres)"
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || return 1
  say "postgres: apt-get install -y $* (output in $log)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >>"$log" 2>&1 && return 0
  DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$log" 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >>"$log" 2>&1
}

ensure_pg_bin() {
  find_pg_bin && return 0
  apt_install postgresql ||
    die "postgres: PostgreSQL server binaries not found (install Debian's postgresql package, or set CPA_PG_BIN to the directory holding initdb and postgres)"
  find_pg_bin || die "postgres: installed postgresql, but no initdb/postgres under /usr/lib/postgresql/*/bin"
}

pg_prepare_user() {
  PG_AS=()
  [ "$(id -u)" = 0 ] || return 0
  command -v setpriv >/dev/null 2>&1 || die "postgres: setpriv (util-linux) is required to run PostgreSQL as $PG_OS_USER"
  if ! id -u "$PG_OS_USER" >/dev/null 2>&1; then
    say "postgres: creating system user $PG_OS_USER"
    useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$PG_OS_USER" ||
      die "postgres: cannot create system user $PG_OS_USER (set CPA_PG_OS_USER to an existing unprivileged user)"
  fi
  [ "$(id -u "$PG_OS_USER")" != 0 ] || die "postgres: CPA_PG_OS_USER=$PG_OS_USER is root; PostgreSQL refuses to run as root"
  # setpriv execs (no parent left behind), so the pid start_bg records is the postmaster's own.
  PG_AS=(setpriv --reuid="$PG_OS_USER" --regid="$(id -g "$PG_OS_USER")" --init-groups --)
}

# The cluster's OS user must traverse every directory down to $STACK/postgres; root's home is usually mode 700.
# Each directory it cannot pass gets a POSIX ACL entry granting that one user search (x) permission, nothing else
# (no listing, no reading; chmod o+x would open it to every user).
pg_grant_path() {
  [ "${#PG_AS[@]}" -gt 0 ] || return 0
  local dir granted=() rest d=""
  for dir in "$STACK" "$(readlink -f "$STACK")"; do
    rest="${dir#/}"
    d=""
    while [ -n "$rest" ]; do
      d="$d/${rest%%/*}"
      if [ "$rest" = "${rest#*/}" ]; then rest=""; else rest="${rest#*/}"; fi
      "${PG_AS[@]}" test -x "$d" && continue
      command -v setfacl >/dev/null 2>&1 || apt_install acl ||
        die "postgres: user $PG_OS_USER cannot reach $d and setfacl is missing (apt-get install acl, or set CPA_STACK_DIR to a directory $PG_OS_USER can reach)"
      setfacl -m "u:$PG_OS_USER:x" "$d" ||
        die "postgres: cannot grant user $PG_OS_USER search permission on $d (set CPA_STACK_DIR to a directory it can reach)"
      granted+=("$d")
    done
  done
  "${PG_AS[@]}" test -x "$STACK/postgres" || die "postgres: user $PG_OS_USER still cannot reach $STACK/postgres"
  if [ "${#granted[@]}" -gt 0 ]; then
    say "postgres: granted user $PG_OS_USER search (x) permission on ${granted[*]} (ACL) to reach $STACK/postgres"
  fi
}

gen_password() { LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32 || true; }

# Passwords of the superuser and of `cpa`: saved in the stack dir (mode 600, never in the repo) when the cluster is
# created; `up` re-applies the `cpa` one, so the file is the truth.
load_pg_creds() {
  local f="$STACK/postgres.credentials"
  PG_SUPER_PASSWORD=""
  PG_PASSWORD=""
  if [ -s "$f" ]; then
    PG_SUPER_PASSWORD="$(sed -n 's/^PG_SUPERUSER_PASSWORD=//p' "$f")"
    PG_PASSWORD="$(sed -n 's/^CPA_PG_PASSWORD=//p' "$f")"
  fi
  if [ -z "$PG_SUPER_PASSWORD" ] && [ -s "$PG_DATA/PG_VERSION" ]; then
    die "postgres: $f is missing but the cluster $PG_DATA exists (superuser password unknown): run '$0 down postgres', remove $STACK/postgres (the catalogs of S3 lakes in it are lost) and run up again"
  fi
  [ -n "$PG_SUPER_PASSWORD" ] || PG_SUPER_PASSWORD="$(gen_password)"
  [ -n "$PG_PASSWORD" ] || PG_PASSWORD="$(gen_password)"
  (
    umask 077
    printf 'PG_SUPERUSER_PASSWORD=%s\nCPA_PG_PASSWORD=%s\n' "$PG_SUPER_PASSWORD" "$PG_PASSWORD" >"$f"
  )
}

# A running server keeps the port it was started with (CPA_PG_PORT may differ in a later shell).
pg_sync_port() {
  if pid_of postgres >/dev/null && [ -s "$STACK/postgres.port" ]; then
    local running
    running="$(cat "$STACK/postgres.port")"
    if [ -n "${CPA_PG_PORT:-}" ] && [ "$CPA_PG_PORT" != "$running" ] && [ "${1:-}" = warn ]; then
      warn "postgres: already running on port $running; ignoring CPA_PG_PORT=$CPA_PG_PORT (run down first)"
    fi
    PG_PORT="$running"
  fi
}

pg_init() {
  local log
  log="$(logfile postgres)"
  mkdir -p "$STACK/postgres"
  if [ ! -s "$PG_DATA/PG_VERSION" ]; then
    rm -rf "$PG_DATA" # what an interrupted initdb left
    mkdir -p "$PG_DATA"
    chmod 700 "$PG_DATA"
    local pwfile="$STACK/postgres/.initdb-pw"
    (
      umask 077
      printf '%s\n' "$PG_SUPER_PASSWORD" >"$pwfile"
    )
    if [ "${#PG_AS[@]}" -gt 0 ]; then chown "$PG_OS_USER:" "$PG_DATA" "$pwfile"; fi
    printf '=== %s initdb %s\n' "$(date -u +%FT%TZ)" "$PG_DATA" >>"$log"
    if ! (cd / && "${PG_AS[@]}" "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --pwfile="$pwfile" \
      --auth=scram-sha-256 -E UTF8 --no-locale --no-instructions) >>"$log" 2>&1; then
      rm -f "$pwfile"
      warn "---- $log (last 20 lines) ----"
      tail -n 20 "$log" | cut -c1-400 >&2
      die "postgres: initdb of $PG_DATA failed"
    fi
    rm -f "$pwfile"
  elif [ "${#PG_AS[@]}" -gt 0 ] && [ "$(stat -c %U "$PG_DATA")" != "$PG_OS_USER" ]; then
    chown -R "$PG_OS_USER:" "$PG_DATA"
  fi
  # A postmaster.pid left by a killed server stays: PostgreSQL itself tells a stale one from a live one (including
  # orphaned backends still attached to the old shared memory).
}

pg_psql() { # pg_psql <user> <password> <database> [psql args]: SQL on stdin, results on stdout
  PGPASSWORD="$2" PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 \
    -h "$HOST" -p "$PG_PORT" -U "$1" -d "$3" "${@:4}"
}

# Role and database, idempotent; the password goes through stdin, never argv.
pg_setup() {
  pg_psql postgres "$PG_SUPER_PASSWORD" postgres >/dev/null <<SQL
select format('create role %I', '$PG_USER') where not exists (select from pg_roles where rolname = '$PG_USER') \gexec
alter role $PG_USER with login nosuperuser nocreatedb nocreaterole password '$PG_PASSWORD';
select format('create database %I owner %I', '$PG_DB', '$PG_USER')
  where not exists (select from pg_database where datname = '$PG_DB') \gexec
SQL
  echo "select current_setting('server_version')" | pg_psql "$PG_USER" "$PG_PASSWORD" "$PG_DB"
}

up_postgres() {
  local pid start=$SECONDS started=0 out
  ensure_pg_bin
  pg_prepare_user
  pg_sync_port warn
  load_pg_creds
  if ! pid="$(pid_of postgres)"; then
    check_ports_free postgres
    mkdir -p "$STACK/postgres"
    pg_grant_path
    pg_init
    echo "$PG_PORT" >"$STACK/postgres.port"
    # Settings on the command line (no secrets): TCP on $HOST only, no Unix socket (nothing of ours in /run),
    # logs to stderr = our log file.
    (cd / && start_bg postgres "${PG_AS[@]}" "$PG_BIN/postgres" -D "$PG_DATA" \
      -c listen_addresses="$HOST" -c port="$PG_PORT" -c unix_socket_directories= \
      -c max_connections=200 -c logging_collector=off -c log_checkpoints=off)
    pid="$(cat "$(pidfile postgres)")"
    started=1
  fi
  local deadline=$((SECONDS + TIMEOUT_POSTGRES))
  until "$PG_BIN/pg_isready" -q -h "$HOST" -p "$PG_PORT" -d postgres -t 2; do
    kill -0 "$pid" 2>/dev/null || not_ready postgres "$started" "process $pid exited"
    [ "$SECONDS" -lt "$deadline" ] || not_ready postgres "$started" "not accepting connections within ${TIMEOUT_POSTGRES}s"
    sleep 0.3
  done
  out="$(pg_setup 2>&1)" || not_ready postgres "$started" "role/database setup failed: $out"
  if [ "$started" = 1 ]; then
    say "postgres: ready in $((SECONDS - start))s (pid $pid), PostgreSQL $out, database $PG_DB ok"
  else
    say "postgres: already running (pid $pid), PostgreSQL $out, database $PG_DB ok"
  fi
}

# ---------------------------------------------------------------------------------------------
temporal_ready() {
  "$TEMPORAL_CLI_PATH" operator cluster health --address "$HOST:$TEMPORAL_PORT" \
    --command-timeout 2s 2>/dev/null | grep -q SERVING &&
    "$TEMPORAL_CLI_PATH" operator namespace describe --address "$HOST:$TEMPORAL_PORT" \
      --command-timeout 2s --namespace default >/dev/null 2>&1
}

up_temporal() {
  local pid start=$SECONDS started=0
  [ -x "$TEMPORAL_CLI_PATH" ] || die "temporal CLI not found at $TEMPORAL_CLI_PATH (run scripts/tools.sh temporal)"
  if ! pid="$(pid_of temporal)"; then
    check_ports_free temporal
    local sa_flags=() sa
    for sa in "${TEMPORAL_SEARCH_ATTRIBUTES[@]}"; do sa_flags+=(--search-attribute "$sa"); done
    start_bg temporal "$TEMPORAL_CLI_PATH" server start-dev \
      --ip "$HOST" --port "$TEMPORAL_PORT" --ui-port "$TEMPORAL_UI_PORT" \
      --db-filename "$STACK/temporal.db" "${sa_flags[@]}" --log-level warn
    pid="$(cat "$(pidfile temporal)")"
    started=1
  fi
  local deadline=$((SECONDS + TIMEOUT_TEMPORAL))
  until temporal_ready; do
    kill -0 "$pid" 2>/dev/null || not_ready temporal "$started" "process $pid exited"
    [ "$SECONDS" -lt "$deadline" ] || not_ready temporal "$started" "not ready within ${TIMEOUT_TEMPORAL}s"
    sleep 0.5
  done
  if [ "$started" = 1 ]; then
    say "temporal: ready in $((SECONDS - start))s (pid $pid)"
  else
    say "temporal: already running (pid $pid)"
  fi
}

# ---------------------------------------------------------------------------------------------
# Credentials: env MINIO_ROOT_USER / MINIO_ROOT_PASSWORD win; otherwise the ones saved in the
# stack dir; otherwise cpa-local + a generated password (saved, mode 600, never in the repo).
MINIO_USER=""
MINIO_PASSWORD=""
load_minio_creds() {
  local f="$STACK/minio.credentials" saved_user="" saved_password=""
  if [ -s "$f" ]; then
    saved_user="$(sed -n 's/^MINIO_ROOT_USER=//p' "$f")"
    saved_password="$(sed -n 's/^MINIO_ROOT_PASSWORD=//p' "$f")"
  fi
  if pid_of minio >/dev/null && [ -n "$saved_user" ]; then
    # A running server keeps the credentials it was started with.
    if [ -n "${MINIO_ROOT_USER:-}" ] && [ "$MINIO_ROOT_USER" != "$saved_user" ]; then
      warn "minio: already running as user '$saved_user'; ignoring MINIO_ROOT_USER (run down first)"
    fi
    MINIO_USER="$saved_user"
    MINIO_PASSWORD="$saved_password"
    return 0
  fi
  MINIO_USER="${MINIO_ROOT_USER:-${saved_user:-cpa-local}}"
  MINIO_PASSWORD="${MINIO_ROOT_PASSWORD:-$saved_password}"
  if [ -z "$MINIO_PASSWORD" ]; then
    MINIO_PASSWORD="$(LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32 || true)"
  fi
  [ "${#MINIO_USER}" -ge 3 ] || die "MINIO_ROOT_USER must be at least 3 characters"
  [ "${#MINIO_PASSWORD}" -ge 8 ] || die "MINIO_ROOT_PASSWORD must be at least 8 characters"
  (
    umask 077
    printf 'MINIO_ROOT_USER=%s\nMINIO_ROOT_PASSWORD=%s\n' "$MINIO_USER" "$MINIO_PASSWORD" >"$f"
  )
}

http_ok() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null
  else
    node -e 'fetch(process.argv[1],{signal:AbortSignal.timeout(2000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' "$1"
  fi
}

make_bucket() {
  CPA_S3_ENDPOINT="http://$HOST:$MINIO_PORT" CPA_S3_REGION="$S3_REGION" CPA_S3_BUCKET="$S3_BUCKET" \
    CPA_S3_ACCESS_KEY_ID="$MINIO_USER" CPA_S3_SECRET_ACCESS_KEY="$MINIO_PASSWORD" \
    NODE_NO_WARNINGS=1 node "$SCRIPT_DIR/s3-make-bucket.mjs" --timeout "$1" "${@:2}"
}

up_minio() {
  local pid start=$SECONDS started=0 out
  load_minio_creds
  if ! pid="$(pid_of minio)"; then
    [ -x "$MINIO_BIN" ] || die "minio not found at $MINIO_BIN (run scripts/tools.sh minio)"
    check_ports_free minio
    mkdir -p "$STACK/minio"
    # Secrets go through the environment (not argv); --anonymous keeps them out of the log.
    MINIO_ROOT_USER="$MINIO_USER" MINIO_ROOT_PASSWORD="$MINIO_PASSWORD" \
      MINIO_UPDATE=off MINIO_CALLHOME_ENABLE=off \
      start_bg minio "$MINIO_BIN" server "$STACK/minio" \
      --address "$HOST:$MINIO_PORT" --console-address "$HOST:$MINIO_CONSOLE_PORT" --anonymous
    pid="$(cat "$(pidfile minio)")"
    started=1
  fi
  local deadline=$((SECONDS + TIMEOUT_MINIO))
  until http_ok "http://$HOST:$MINIO_PORT/minio/health/live"; do
    kill -0 "$pid" 2>/dev/null || not_ready minio "$started" "process $pid exited"
    [ "$SECONDS" -lt "$deadline" ] || not_ready minio "$started" "not live within ${TIMEOUT_MINIO}s"
    sleep 0.3
  done
  out="$(make_bucket $((deadline - SECONDS > 5 ? deadline - SECONDS : 5)) 2>&1)" ||
    not_ready minio "$started" "bucket setup failed: $out"
  if [ "$started" = 1 ]; then
    say "minio: ready in $((SECONDS - start))s (pid $pid); $out"
  else
    say "minio: already running (pid $pid); $out"
  fi
}

# ---------------------------------------------------------------------------------------------
java_major() {
  { "$1" -version 2>&1 || true; } | sed -n 's/.*version "\([0-9]*\)[."].*/\1/p' | head -n1
}

# Module flags from Cassandra 5.0 conf/jvm17-server.options (JPMS section) + the netty options.
CASSANDRA_JVM17_FLAGS=(
  -Djdk.attach.allowAttachSelf=true
  --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
  --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
  --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED
  --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
  --add-exports java.sql/java.sql=ALL-UNNAMED
  --add-exports java.base/java.lang.ref=ALL-UNNAMED
  --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED
  --add-opens java.base/java.lang.module=ALL-UNNAMED
  --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
  --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
  --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
  --add-opens java.base/jdk.internal.math=ALL-UNNAMED
  --add-opens java.base/jdk.internal.module=ALL-UNNAMED
  --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED
  --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
  --add-opens java.base/sun.nio.ch=ALL-UNNAMED
  --add-opens java.base/java.io=ALL-UNNAMED
  --add-opens java.base/java.lang.reflect=ALL-UNNAMED
  --add-opens java.base/java.lang=ALL-UNNAMED
  --add-opens java.base/java.util=ALL-UNNAMED
  -Dio.netty.tryReflectionSetAccessible=true
  -Dio.netty.allocator.useCacheForAllThreads=true
  -Dio.netty.allocator.maxOrder=11
)

render_cassandra_conf() {
  local dir="$STACK/cassandra" esc
  mkdir -p "$dir/conf" "$dir/data" "$dir/commitlog" "$dir/saved_caches" "$dir/hints" \
    "$dir/cdc_raw" "$dir/logs" "$dir/tmp"
  esc="$(printf '%s' "$dir" | sed 's/[&|\\]/\\&/g')"
  sed "s|@CASSANDRA_DIR@|$esc|g" "$REPO_ROOT/stack/cassandra/cassandra.yaml.tmpl" >"$dir/conf/cassandra.yaml"
  cp "$REPO_ROOT/stack/cassandra/logback.xml" "$dir/conf/logback.xml"
}

cql_ready() { # cql_ready <timeout> [pid]
  node "$SCRIPT_DIR/cql-ready.mjs" --contact-points "$HOST:$CASSANDRA_NATIVE_PORT" \
    --dc "$CASSANDRA_DC" --keyspace "$CASSANDRA_KEYSPACE" --timeout "$1" ${2:+--pid "$2"}
}

up_cassandra() {
  local pid start=$SECONDS started=0 out dir="$STACK/cassandra"
  if ! pid="$(pid_of cassandra)"; then
    local java="${CPA_JAVA:-java}" major wrap=()
    command -v "$java" >/dev/null 2>&1 || die "java not found (Cassandra 5.0 needs JDK 11 or 17; set CPA_JAVA)"
    major="$(java_major "$java")"
    case "$major" in
      11 | 17) ;;
      *) die "Cassandra 5.0 runs on Java 11 or 17, '$java' is Java ${major:-unknown} (set CPA_JAVA=/path/to/jdk17/bin/java)" ;;
    esac
    compgen -G "$CASSANDRA_HOME/lib/cassandra-all-*.jar" >/dev/null ||
      die "Cassandra jars not found in $CASSANDRA_HOME/lib (run scripts/tools.sh cassandra)"
    check_ports_free cassandra
    render_cassandra_conf
    # Cassandra mlockall()s the whole JVM when it can; as root (CAP_IPC_LOCK) that pins ~1.5 GiB
    # resident. Drop the capability so the lock fails harmlessly (CPA_CASSANDRA_MLOCK=1 keeps it).
    if [ "$(id -u)" = 0 ] && [ "${CPA_CASSANDRA_MLOCK:-0}" != 1 ] && command -v setpriv >/dev/null 2>&1; then
      wrap=(setpriv --bounding-set=-ipc_lock --)
    fi
    start_bg cassandra "${wrap[@]}" "$java" \
      "-Xms$CASSANDRA_HEAP" "-Xmx$CASSANDRA_HEAP" \
      -XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1 -XX:MaxGCPauseMillis=300 \
      -XX:+ExitOnOutOfMemoryError -XX:+PerfDisableSharedMem -XX:StringTableSize=1000003 \
      "${CASSANDRA_JVM17_FLAGS[@]}" \
      -Djava.net.preferIPv4Stack=true \
      "-Djava.io.tmpdir=$dir/tmp" \
      "-Dcassandra.config=file://$dir/conf/cassandra.yaml" \
      "-Dlogback.configurationFile=file://$dir/conf/logback.xml" \
      "-Dcassandra.logdir=$dir/logs" \
      "-Dcassandra.storagedir=$dir" \
      -Dcassandra-foreground=yes \
      -Dcassandra.skip_wait_for_gossip_to_settle=0 \
      -cp "$dir/conf:$CASSANDRA_HOME/lib/*" \
      org.apache.cassandra.service.CassandraDaemon
    pid="$(cat "$(pidfile cassandra)")"
    started=1
  fi
  out="$(cql_ready "$TIMEOUT_CASSANDRA" "$pid" 2>&1)" ||
    not_ready cassandra "$started" "not ready: $out" "$dir/logs/system.log"
  if [ "$started" = 1 ]; then
    say "cassandra: ready in $((SECONDS - start))s (pid $pid), release $out, keyspace $CASSANDRA_KEYSPACE ok"
  else
    say "cassandra: already running (pid $pid), release $out, keyspace $CASSANDRA_KEYSPACE ok"
  fi
}

# ---------------------------------------------------------------------------------------------
# Stop services: SIGTERM to all of them at once (PostgreSQL: SIGINT), wait up to STOP_TIMEOUT, then SIGKILL.
stop_svcs() {
  local svc pid target i pids=() names=() targets=()
  for svc in "$@"; do
    if ! pid="$(pid_of "$svc")"; then
      say "$svc: not running"
      continue
    fi
    # start_bg made the service a session/process-group leader: signal the whole group.
    target="$pid"
    if [ "$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ')" = "$pid" ]; then target="-$pid"; fi
    if [ "$svc" = postgres ]; then
      # Fast shutdown via the postmaster alone: it ends the sessions and writes a checkpoint (SIGTERM would wait
      # for clients to leave; its auxiliary processes must not be signalled directly).
      kill -INT -- "$pid" 2>/dev/null || true
    else
      kill -TERM -- "$target" 2>/dev/null || true
    fi
    pids+=("$pid")
    names+=("$svc")
    targets+=("$target")
  done
  local deadline=$((SECONDS + STOP_TIMEOUT))
  for ((i = 0; i < ${#pids[@]}; i++)); do
    while kill -0 "${pids[$i]}" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
    if kill -0 "${pids[$i]}" 2>/dev/null; then
      warn "${names[$i]}: still running after ${STOP_TIMEOUT}s, sending SIGKILL"
      kill -KILL -- "${targets[$i]}" 2>/dev/null || true
      local n
      for ((n = 0; n < 25; n++)); do
        kill -0 "${pids[$i]}" 2>/dev/null || break
        sleep 0.2
      done
    fi
    rm -f "$(pidfile "${names[$i]}")"
    say "${names[$i]}: stopped (was pid ${pids[$i]})"
  done
}

env_value() { # dotenv-safe value: bare if simple, single-quoted otherwise
  if [[ "$1" =~ ^[A-Za-z0-9_./:@,+=-]*$ ]]; then printf '%s' "$1"; else printf "'%s'" "$1"; fi
}

# .cpa-stack.env lists the settings of the services that are running now.
write_env_file() {
  local lines=() running=0
  if pid_of postgres >/dev/null; then
    running=1
    [ -n "$PG_PASSWORD" ] || load_pg_creds
    pg_sync_port
    lines+=("CPA_LAKE_CATALOG=$(env_value "host=$HOST port=$PG_PORT dbname=$PG_DB user=$PG_USER password=$PG_PASSWORD")")
  fi
  if pid_of temporal >/dev/null; then
    running=1
    lines+=("TEMPORAL_ADDRESS=$HOST:$TEMPORAL_PORT")
  fi
  if pid_of minio >/dev/null; then
    running=1
    [ -n "$MINIO_USER" ] || load_minio_creds
    lines+=(
      "CPA_S3_ENDPOINT=http://$HOST:$MINIO_PORT"
      "CPA_S3_ACCESS_KEY_ID=$(env_value "$MINIO_USER")"
      "CPA_S3_SECRET_ACCESS_KEY=$(env_value "$MINIO_PASSWORD")"
      "CPA_S3_REGION=$S3_REGION"
      "CPA_S3_BUCKET=$(env_value "$S3_BUCKET")"
    )
  fi
  if pid_of cassandra >/dev/null; then
    running=1
    lines+=(
      "CPA_CASSANDRA_CONTACT_POINTS=$HOST:$CASSANDRA_NATIVE_PORT"
      "CPA_CASSANDRA_LOCAL_DC=$CASSANDRA_DC"
      "CPA_CASSANDRA_KEYSPACE=$CASSANDRA_KEYSPACE"
    )
  fi
  if [ "$running" = 0 ]; then
    rm -f "$ENV_FILE"
    return 0
  fi
  lines+=(
    "CPA_DUCKDB_EXTENSION_DIR=$(env_value "$CPA_DUCKDB_EXTENSION_DIR")"
    "TEMPORAL_CLI_PATH=$(env_value "$TEMPORAL_CLI_PATH")"
    "TEMPORAL_TEST_SERVER_PATH=$(env_value "$TEMPORAL_TEST_SERVER_PATH")"
  )
  (
    umask 077
    {
      echo "# Written by scripts/stack.sh up on $(date -u +%FT%TZ); local only, do not commit."
      printf '%s\n' "${lines[@]}"
    } >"$ENV_FILE.tmp"
    mv -f "$ENV_FILE.tmp" "$ENV_FILE"
  )
}

print_env_file() {
  [ -s "$ENV_FILE" ] || return 0
  say "wrote $ENV_FILE:"
  grep -v '^#' "$ENV_FILE" |
    sed "s/^\(CPA_S3_SECRET_ACCESS_KEY=\).*/\1********/; s/\(password=\)[^ ']*/\1********/; s/^/  /"
}

status() {
  local svc pid p busy
  pg_sync_port
  for svc in "${SERVICES[@]}"; do
    if pid="$(pid_of "$svc")"; then
      printf '%-10s running  pid %-8s %s\n' "$svc" "$pid" "$(address_of "$svc")"
    else
      busy=""
      for p in $(ports_of "$svc"); do
        if port_open "$p"; then busy+=" $p"; fi
      done
      if [ -n "$busy" ]; then
        printf '%-10s stopped  (port%s in use by another process)\n' "$svc" "$busy"
      else
        printf '%-10s stopped\n' "$svc"
      fi
    fi
  done
  if [ -s "$ENV_FILE" ]; then echo "env file: $ENV_FILE"; fi
  echo "state dir: $STACK"
}

# ---------------------------------------------------------------------------------------------
parse_services() { # validates names, default = all; result in SELECTED
  SELECTED=()
  local s
  if [ $# -eq 0 ]; then
    SELECTED=("${SERVICES[@]}")
    return 0
  fi
  for s in "$@"; do
    case "$s" in
      postgres | temporal | minio | cassandra) SELECTED+=("$s") ;;
      *) die "unknown service '$s' (expected: ${SERVICES[*]})" ;;
    esac
  done
}

lock_stack() {
  mkdir -p "$STACK"
  exec 9>"$STACK/.lock"
  if command -v flock >/dev/null 2>&1; then
    flock -w 600 9 || die "another stack.sh is running (lock $STACK/.lock)"
  fi
}

usage() {
  cat >&2 <<EOF
usage: $0 up [postgres|temporal|minio|cassandra ...]
       $0 down [postgres|temporal|minio|cassandra ...]
       $0 status
state dir: $STACK (CPA_STACK_DIR), cache: $CACHE (CPA_CACHE_DIR)
EOF
  exit 2
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  up)
    parse_services "$@"
    command -v node >/dev/null 2>&1 || die "node is required"
    [ -d "$REPO_ROOT/node_modules" ] || die "run 'npm ci' in $REPO_ROOT first (needs @aws-sdk/client-s3, cassandra-driver)"
    t0=$SECONDS
    lock_stack
    # PostgreSQL comes from Debian's packages (up_postgres), not from tools.sh.
    tools=(duckdb)
    for s in "${SELECTED[@]}"; do [ "$s" = postgres ] || tools+=("$s"); done
    if [ "${#SELECTED[@]}" -eq "${#SERVICES[@]}" ]; then tools=(all); fi
    bash "$SCRIPT_DIR/tools.sh" "${tools[@]}"
    eval "$(bash "$SCRIPT_DIR/tools.sh" paths)"
    for s in "${SELECTED[@]}"; do "up_$s"; done
    write_env_file
    print_env_file
    say "up done in $((SECONDS - t0))s"
    ;;
  down)
    parse_services "$@"
    lock_stack
    stop_svcs "${SELECTED[@]}"
    write_env_file
    ;;
  status)
    [ $# -eq 0 ] || usage
    status
    ;;
  *) usage ;;
esac
