#!/usr/bin/env bash
# Local, Docker-less service stack: Temporal dev server, MinIO (S3), Cassandra 5.0.
#
#   scripts/stack.sh up [temporal|minio|cassandra ...]     start (all by default), wait until ready
#   scripts/stack.sh down [temporal|minio|cassandra ...]   stop (SIGTERM, then SIGKILL)
#   scripts/stack.sh status                               one line per service, always exits 0
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
SERVICES=(temporal minio cassandra)

HOST=127.0.0.1
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
TEMPORAL_SEARCH_ATTRIBUTES=(CpaLogicalDate=Keyword CpaRunKind=Keyword CpaStatus=Keyword)

# Readiness / shutdown bounds in seconds (overridable for slow machines).
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
    temporal) echo "$TEMPORAL_PORT $TEMPORAL_UI_PORT" ;;
    minio) echo "$MINIO_PORT $MINIO_CONSOLE_PORT" ;;
    cassandra) echo "$CASSANDRA_NATIVE_PORT $CASSANDRA_STORAGE_PORT" ;;
  esac
}

address_of() {
  case "$1" in
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

# Start "$@" detached (own session, stdin/stdout/stderr redirected, lock fd closed) and record its pid.
start_bg() {
  local svc="$1" log
  shift
  log="$(logfile "$svc")"
  printf '=== %s starting %s\n' "$(date -u +%FT%TZ)" "$svc" >>"$log"
  setsid "$@" </dev/null >>"$log" 2>&1 9>&- &
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
# Stop services: SIGTERM to all of them at once, wait up to STOP_TIMEOUT, then SIGKILL.
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
    kill -TERM -- "$target" 2>/dev/null || true
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
  grep -v '^#' "$ENV_FILE" | sed 's/^\(CPA_S3_SECRET_ACCESS_KEY=\).*/\1********/; s/^/  /'
}

status() {
  local svc pid p busy
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
      temporal | minio | cassandra) SELECTED+=("$s") ;;
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
usage: $0 up [temporal|minio|cassandra ...]
       $0 down [temporal|minio|cassandra ...]
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
    tools=(httpfs)
    for s in "${SELECTED[@]}"; do tools+=("$s"); done
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
