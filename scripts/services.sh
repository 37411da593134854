#!/usr/bin/env bash
# The project's own Postgres and Kafka, without Docker: `scripts/services.sh start|stop|status`.
# Idempotent: `start` leaves running services alone, `stop` is fine on stopped ones.
# State (data, jars, pid files, logs) lives in <repo>/.services, which git ignores.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
SCRIPTS="$ROOT/scripts"
STATE="$ROOT/.services"
LOGS="$STATE/logs"
PYTHON="${SHADOWLAB_PYTHON:-$ROOT/.venv/bin/python}"
# Used when the postgres user cannot reach $STATE (a repo under /root or a mode-700 CI folder).
FALLBACK="/var/tmp/shadowlab-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)"

PG_HOST=127.0.0.1
# Ports are the project's own; override them to run a second copy beside the first.
PG_PORT="${SHADOWLAB_PG_PORT:-54329}"
PG_READY_TIMEOUT=60
DB_URL="postgresql+psycopg://shadowlab:shadowlab@$PG_HOST:$PG_PORT/shadowlab"

KAFKA_HOST=127.0.0.1
KAFKA_PORT="${SHADOWLAB_KAFKA_PORT:-19092}"
CONTROLLER_PORT="${SHADOWLAB_KAFKA_CONTROLLER_PORT:-19093}"
KAFKA_READY_TIMEOUT="${SHADOWLAB_KAFKA_READY_TIMEOUT:-90}"
KAFKA_STOP_TIMEOUT=20
KAFKA_DIR="$STATE/kafka"
JARS="$KAFKA_DIR/jars"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_CONF="$KAFKA_DIR/server.properties"
KAFKA_PIDFILE="$KAFKA_DIR/kafka.pid"
KAFKA_LOG="$LOGS/kafka.log"
CLUSTER_ID_FILE="$KAFKA_DIR/cluster.id"
LOG4J_CONF="$SCRIPTS/kafka/log4j2.properties"

say() { printf 'services: %s\n' "$*"; }
die() { printf 'services: error: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }
port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }
# Alive and not a zombie (a zombie still has a /proc entry); the state follows "(comm) ".
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ -n $stat && ${stat:0:1} != Z ]]
}
cmdline() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null; }
show_log() { say "last lines of $1:" >&2; tail -n "${2:-40}" "$1" 2>/dev/null | sed 's/^/    /' >&2 || true; }

# Postgres refuses to run as root; as root we switch to the postgres user, otherwise we are the owner.
as_pg() {
  if ((EUID == 0)); then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

lock_state() {
  mkdir -p "$STATE" "$LOGS"
  chmod 755 "$STATE"
  exec 9>"$STATE/.lock"
  flock -w 600 9 || die "another services.sh still holds $STATE/.lock after 600 s"
}

# ---------------------------------------------------------------- Postgres

# Sets PG_HOME (data, socket, log). An existing cluster wins; else $STATE if postgres can reach it.
resolve_pg_home() {
  local create=${1:-}
  PG_HOME=""
  local candidate
  for candidate in "$STATE/postgres" "$FALLBACK/postgres"; do
    if [[ -f $candidate/data/PG_VERSION ]]; then PG_HOME=$candidate; break; fi
  done
  if [[ -z $PG_HOME && -n $create ]]; then
    PG_HOME="$STATE/postgres"
    if ((EUID == 0)); then
      mkdir -p "$PG_HOME" && chown postgres:postgres "$PG_HOME" && chmod 700 "$PG_HOME"
      if ! as_pg test -w "$PG_HOME" -a -x "$PG_HOME"; then
        rmdir "$PG_HOME"
        PG_HOME="$FALLBACK/postgres"
        say "postgres cannot reach $STATE; keeping its data in $PG_HOME"
        mkdir -p "$PG_HOME" && chmod 755 "$FALLBACK"
        chown postgres:postgres "$PG_HOME" && chmod 700 "$PG_HOME"
      fi
    fi
  fi
  PG_HOME=${PG_HOME:-$STATE/postgres}
  PG_DATA="$PG_HOME/data"
  PG_LOG="$PG_HOME/postgres.log"
  PG_SOCKET_DIR="$PG_HOME/run"
  # A unix socket path is limited to 107 bytes; deep CI folders would exceed it.
  if ((${#PG_SOCKET_DIR} > 80)); then PG_SOCKET_DIR="$FALLBACK/run"; fi
}

ensure_postgres_installed() {
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && return 0
  ((EUID == 0)) || die "PostgreSQL is not installed; as root: apt-get install -y postgresql"
  command -v apt-get >/dev/null || die "PostgreSQL is not installed and apt-get is not available"
  say "installing PostgreSQL from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends postgresql-common
  # As Docker's postgres image does: no default cluster on port 5432, we create our own.
  sed -ri 's/^#?\s*create_main_cluster\s*=.*/create_main_cluster = false/' \
    /etc/postgresql-common/createcluster.conf
  apt-get install -y -q postgresql
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || die "apt-get installed no initdb"
}

# The binaries of the cluster's own major version, else the newest installed.
resolve_pg_bin() {
  if [[ -f $PG_DATA/PG_VERSION ]]; then
    PG_BIN="/usr/lib/postgresql/$(<"$PG_DATA/PG_VERSION")/bin"
    [[ -x $PG_BIN/postgres ]] || die "cluster in $PG_DATA is PostgreSQL $(<"$PG_DATA/PG_VERSION"), not installed"
  else
    PG_BIN=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n1)
  fi
}

# Prints the postmaster's pid when our cluster runs (pid file names a live postgres on our data dir).
postgres_pid() {
  local pid
  [[ -f $PG_DATA/postmaster.pid ]] || return 1
  pid=$(head -n1 "$PG_DATA/postmaster.pid")
  [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == postgres ]] || return 1
  [[ " $(cmdline "$pid")" == *" -D $PG_DATA "* ]] || return 1
  echo "$pid"
}

write_postgres_conf() {
  # Durable by default (a committed row survives a Postgres crash); `make test` asks for the fast mode of a
  # disposable test cluster with SHADOWLAB_SERVICES_DURABILITY=fast. Applied with a reload when running.
  local durability mode=${SHADOWLAB_SERVICES_DURABILITY:-durable}
  case $mode in
    durable) durability=$'fsync = on\nsynchronous_commit = on\nfull_page_writes = on' ;;
    fast) durability=$'fsync = off\nsynchronous_commit = off\nfull_page_writes = off' ;;
    *) die "SHADOWLAB_SERVICES_DURABILITY: expected durable or fast, found $mode" ;;
  esac
  cat >"$PG_DATA/shadowlab.conf" <<EOF
# Written by scripts/services.sh on every start (SHADOWLAB_SERVICES_DURABILITY=$mode).
listen_addresses = '$PG_HOST'
port = $PG_PORT
unix_socket_directories = '$PG_SOCKET_DIR'
max_connections = 200
shared_buffers = 64MB
$durability
log_min_messages = warning
EOF
  if ((EUID == 0)); then chown postgres:postgres "$PG_DATA/shadowlab.conf"; fi
  grep -q "^include_if_exists = 'shadowlab.conf'" "$PG_DATA/postgresql.conf" ||
    echo "include_if_exists = 'shadowlab.conf'" >>"$PG_DATA/postgresql.conf"
}

wait_postgres_ready() {
  local deadline=$((SECONDS + PG_READY_TIMEOUT))
  until "$PG_BIN/pg_isready" -q -h "$PG_HOST" -p "$PG_PORT" -t 2; do
    if ((SECONDS >= deadline)); then
      show_log "$PG_LOG"
      die "postgres did not accept connections on $PG_HOST:$PG_PORT within ${PG_READY_TIMEOUT} s (log: $PG_LOG)"
    fi
    sleep 0.2
  done
}

ensure_postgres_role_and_db() {
  as_pg "$PG_BIN/psql" -q -X -v ON_ERROR_STOP=1 -h "$PG_SOCKET_DIR" -p "$PG_PORT" -d postgres >/dev/null <<'EOF'
SELECT 'CREATE ROLE shadowlab' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'shadowlab')\gexec
ALTER ROLE shadowlab WITH LOGIN CREATEDB PASSWORD 'shadowlab';
-- lets DROP DATABASE ... WITH (FORCE) end an autovacuum worker still busy in a test database
GRANT pg_signal_backend TO shadowlab;
-- the services' role: rows only, owns nothing (`shadowlab db grant-app shadowlab_app`, docs/operations.md)
SELECT 'CREATE ROLE shadowlab_app' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'shadowlab_app')\gexec
ALTER ROLE shadowlab_app WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD 'shadowlab_app';
SELECT 'CREATE DATABASE shadowlab OWNER shadowlab'
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'shadowlab')\gexec
EOF
}

start_postgres() {
  local t0 pid
  t0=$(now)
  ensure_postgres_installed
  resolve_pg_home create
  resolve_pg_bin
  if pid=$(postgres_pid); then
    wait_postgres_ready
    write_postgres_conf
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" reload >/dev/null
    ensure_postgres_role_and_db
    say "postgres up on $PG_HOST:$PG_PORT (pid $pid, already running)"
    return 0
  fi
  if port_open "$PG_HOST" "$PG_PORT"; then
    die "port $PG_HOST:$PG_PORT is taken by another program (not the cluster in $PG_DATA); see: ss -ltnp"
  fi
  if [[ ! -f $PG_DATA/PG_VERSION ]]; then
    say "initialising a PostgreSQL $("$PG_BIN/postgres" -V | awk '{ print $3 }') cluster in $PG_DATA"
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" --auth-local=peer --auth-host=scram-sha-256 \
      --encoding=UTF8 --locale=C --no-sync >/dev/null
  fi
  if [[ -f $PG_DATA/postmaster.pid ]]; then
    say "removing stale $PG_DATA/postmaster.pid"
    rm -f "$PG_DATA/postmaster.pid"
  fi
  mkdir -p "$PG_SOCKET_DIR"
  if ((EUID == 0)); then chown postgres:postgres "$PG_SOCKET_DIR"; fi
  write_postgres_conf
  ln -sfn "$PG_LOG" "$LOGS/postgres.log"
  # fd 9 is the state lock: the postmaster must not inherit it.
  if ! as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$PG_READY_TIMEOUT" start >/dev/null 9>&-; then
    show_log "$PG_LOG"
    die "postgres failed to start (log: $PG_LOG)"
  fi
  wait_postgres_ready
  ensure_postgres_role_and_db
  pid=$(postgres_pid) || die "postgres started but $PG_DATA/postmaster.pid names no live postmaster"
  say "postgres up on $PG_HOST:$PG_PORT (pid $pid, started in $(since "$t0"))"
}

stop_postgres() {
  local pid
  resolve_pg_home
  if ! pid=$(postgres_pid); then
    say "postgres already stopped"
    return 0
  fi
  resolve_pg_bin
  if ! as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null; then
    show_log "$PG_LOG"
    die "pg_ctl stop failed for $PG_DATA (log: $PG_LOG)"
  fi
  say "postgres stopped (was pid $pid)"
}

# ---------------------------------------------------------------- Kafka

check_java() {
  command -v java >/dev/null || die "java not found; Kafka 4 needs Java 17+: apt-get install -y openjdk-17-jre-headless"
  local major
  major=$(java -version 2>&1 | awk -F'"' '/version/ { split($2, v, "."); print v[1]; exit }')
  ((major >= 17)) || die "Kafka 4 needs Java 17 or newer, found Java $major"
}

# Jars from Maven Central, fetched once per pom.xml content (the marker holds the pom's hash).
fetch_kafka_jars() {
  local stamp t0
  stamp=$(sha256sum "$SCRIPTS/kafka/pom.xml" | cut -c1-16)
  if [[ -f $JARS/.complete && $(<"$JARS/.complete") == "$stamp" ]]; then return 0; fi
  command -v mvn >/dev/null || die "Maven (mvn) fetches Kafka's jars: apt-get install -y maven"
  t0=$(now)
  say "fetching Apache Kafka jars from Maven Central into $JARS"
  rm -rf "$JARS.partial"
  if ! mvn -B -q -Dstyle.color=never -f "$SCRIPTS/kafka/pom.xml" \
    org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$JARS.partial" >"$LOGS/kafka-fetch.log" 2>&1; then
    show_log "$LOGS/kafka-fetch.log"
    die "mvn could not fetch Kafka's jars (network? ~/.m2 settings?); full output: $LOGS/kafka-fetch.log"
  fi
  echo "$stamp" >"$JARS.partial/.complete"
  rm -rf "$JARS"
  mv "$JARS.partial" "$JARS"
  say "fetched $(find "$JARS" -name '*.jar' | wc -l) jars in $(since "$t0")"
}

# Generated once; recovered from meta.properties if the data dir outlived the id file.
kafka_cluster_id() {
  if [[ ! -s $CLUSTER_ID_FILE ]]; then
    if [[ -f $KAFKA_DATA/meta.properties ]]; then
      sed -n 's/^cluster\.id=//p' "$KAFKA_DATA/meta.properties" >"$CLUSTER_ID_FILE"
    else
      # Kafka's format: URL-safe base64 of a random UUID, no padding, not starting with '-'.
      "$PYTHON" -c '
import base64, uuid
while (cid := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"):
    pass
print(cid)' >"$CLUSTER_ID_FILE"
    fi
  fi
  cat "$CLUSTER_ID_FILE"
}

KAFKA_JAVA=(java -Xms256m -Xmx512m -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
  -Dkafka.logs.dir="$LOGS" -Dlog4j2.configurationFile="$LOG4J_CONF" -cp "$JARS/*")

# Prints Kafka's pid when the pid file names a live kafka.Kafka on our server.properties.
kafka_pid() {
  local pid
  [[ -f $KAFKA_PIDFILE ]] || return 1
  pid=$(<"$KAFKA_PIDFILE")
  [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
  [[ " $(cmdline "$pid") " == *" kafka.Kafka $KAFKA_CONF "* ]] || return 1
  echo "$pid"
}

wait_kafka_ready() {
  local pid=$1
  if ! "$PYTHON" - "$KAFKA_HOST:$KAFKA_PORT" "$pid" "$KAFKA_READY_TIMEOUT" <<'EOF'; then
import logging, sys, time
from pathlib import Path

logging.disable(logging.CRITICAL)  # connection-refused warnings while the broker boots are expected
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

bootstrap, pid, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
deadline = time.monotonic() + timeout
last: object = "no attempt"
while time.monotonic() < deadline:
    stat = Path(f"/proc/{pid}/stat")
    if not stat.exists() or stat.read_text().split(") ", 1)[1].startswith("Z"):
        sys.exit(f"services: kafka process {pid} exited")
    try:
        # Short bootstrap and backoff: the defaults (30 s each) would outlast the broker's own start.
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            bootstrap_timeout_ms=3000,
            reconnect_backoff_max_ms=300,
            request_timeout_ms=5000,
        )
        try:
            admin.list_topics()
            sys.exit(0)
        finally:
            admin.close()
    except KafkaError as exc:
        last = exc
    time.sleep(0.5)  # interval between readiness checks
sys.exit(f"services: kafka at {bootstrap} not ready after {timeout:.0f} s: {last!r}")
EOF
    show_log "$KAFKA_LOG"
    die "kafka did not become ready (logs: $LOGS, data: $KAFKA_DATA)"
  fi
}

start_kafka() {
  local t0 pid port cid
  t0=$(now)
  [[ -x $PYTHON ]] || die "$PYTHON not found (needed for kafka-python readiness checks): run make setup"
  mkdir -p "$KAFKA_DIR" "$KAFKA_DATA"
  if pid=$(kafka_pid); then
    wait_kafka_ready "$pid"
    say "kafka up on $KAFKA_HOST:$KAFKA_PORT (pid $pid, already running)"
    return 0
  fi
  if [[ -f $KAFKA_PIDFILE ]]; then
    say "removing stale $KAFKA_PIDFILE"
    rm -f "$KAFKA_PIDFILE"
  fi
  for port in "$KAFKA_PORT" "$CONTROLLER_PORT"; do
    if port_open "$KAFKA_HOST" "$port"; then
      die "port $KAFKA_HOST:$port is taken by another program (not our broker); see: ss -ltnp"
    fi
  done
  check_java
  fetch_kafka_jars
  sed -e "s|@LOG_DIRS@|$KAFKA_DATA|" -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
    -e "s|@CONTROLLER_PORT@|$CONTROLLER_PORT|g" "$SCRIPTS/kafka/server.properties.in" >"$KAFKA_CONF"
  cid=$(kafka_cluster_id)
  if [[ ! -f $KAFKA_DATA/meta.properties ]]; then
    say "formatting KRaft storage in $KAFKA_DATA (cluster id $cid)"
    "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format --standalone --ignore-formatted -t "$cid" -c "$KAFKA_CONF" \
      >"$LOGS/kafka-format.log" 2>&1 || {
      show_log "$LOGS/kafka-format.log"
      die "formatting Kafka storage failed"
    }
  fi
  if [[ -f $KAFKA_LOG ]]; then mv -f "$KAFKA_LOG" "$KAFKA_LOG.1"; fi
  # setsid: own session, so the broker outlives this script and its terminal. The child writes its
  # own pid before exec'ing java (setsid may fork, so $! is not reliable). fd 9 is the state lock.
  # shellcheck disable=SC2016 # expanded by the child shell, on purpose
  (cd "$KAFKA_DIR" && exec setsid bash -c 'echo $$ >"$0"; exec "$@"' "$KAFKA_PIDFILE" \
    "${KAFKA_JAVA[@]}" kafka.Kafka "$KAFKA_CONF") </dev/null >>"$KAFKA_LOG" 2>&1 9>&- &
  local deadline=$((SECONDS + 10))
  until pid=$(kafka_pid); do
    if ((SECONDS >= deadline)); then
      show_log "$KAFKA_LOG"
      die "kafka did not start (logs: $LOGS)"
    fi
    sleep 0.1
  done
  wait_kafka_ready "$pid"
  say "kafka up on $KAFKA_HOST:$KAFKA_PORT (pid $pid, started in $(since "$t0"))"
}

stop_kafka() {
  local pid deadline
  if ! pid=$(kafka_pid); then
    rm -f "$KAFKA_PIDFILE"
    say "kafka already stopped"
    return 0
  fi
  kill -TERM "$pid"
  deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
  while alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
  if alive "$pid"; then
    say "kafka (pid $pid) still running after ${KAFKA_STOP_TIMEOUT} s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while alive "$pid"; do sleep 0.1; done
  fi
  rm -f "$KAFKA_PIDFILE"
  say "kafka stopped (was pid $pid)"
}

# ---------------------------------------------------------------- commands

print_env() {
  say "export SHADOWLAB_DATABASE_URL=$DB_URL"
  say "export SHADOWLAB_KAFKA_BOOTSTRAP=$KAFKA_HOST:$KAFKA_PORT"
}

cmd_start() {
  local t0
  t0=$(now)
  lock_state
  start_postgres
  start_kafka
  say "all up in $(since "$t0"); logs in $LOGS"
  print_env
}

cmd_stop() {
  lock_state
  stop_kafka
  stop_postgres
}

cmd_status() {
  local pid up=0
  resolve_pg_home
  if pid=$(postgres_pid) && port_open "$PG_HOST" "$PG_PORT"; then
    say "postgres up on $PG_HOST:$PG_PORT (pid $pid)"
    up=$((up + 1))
  elif [[ -n ${pid:-} ]]; then
    say "postgres down on $PG_HOST:$PG_PORT (pid $pid alive but the port does not answer)"
  else
    say "postgres down on $PG_HOST:$PG_PORT"
  fi
  pid=""
  if pid=$(kafka_pid) && port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
    say "kafka up on $KAFKA_HOST:$KAFKA_PORT (pid $pid)"
    up=$((up + 1))
  elif [[ -n ${pid:-} ]]; then
    say "kafka down on $KAFKA_HOST:$KAFKA_PORT (pid $pid alive but the port does not answer)"
  else
    say "kafka down on $KAFKA_HOST:$KAFKA_PORT"
  fi
  ((up == 2))
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
