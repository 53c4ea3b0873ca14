#!/usr/bin/env bash
# Local Apache Kafka (KRaft, jars from Maven Central) and PostgreSQL (Debian's package), no Docker.
#
#   deploy/local/services.sh up|down|status
#   deploy/local/services.sh kafka-stop|kafka-start|pg-stop|pg-start   (one service; the fault tests use these)
#
# Everything lives under .cache/ (git-ignored). `up` is idempotent: services already running are
# left alone, missing packages are installed, and it returns only once both services answer.
# Ports: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), POSTGRES_PORT (5432).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="$ROOT/.cache"
KAFKA_PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
POSTGRES_PORT="${POSTGRES_PORT:-5432}"
KAFKA_HOME="$CACHE/kafka"
PG_HOME="$CACHE/postgres"

say() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] error: %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  say "installing Debian packages: $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_packages() {
  local missing=()
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || missing+=(maven)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
  if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi
}

# ---------------------------------------------------------------- Kafka
kafka_pid() { [ -f "$KAFKA_HOME/kafka.pid" ] && cat "$KAFKA_HOME/kafka.pid"; }
kafka_running() { local p; p="$(kafka_pid)" && [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

kafka_up() {
  if kafka_running; then say "kafka already running (pid $(kafka_pid)) on 127.0.0.1:$KAFKA_PORT"; return; fi
  for port in "$KAFKA_PORT" "$CONTROLLER_PORT"; do
    port_open "$port" && die "port $port is taken by another process; stop it, or set KAFKA_PORT / KAFKA_CONTROLLER_PORT, or point KAFKA_BOOTSTRAP_SERVERS at your own broker"
  done
  if [ ! -f "$KAFKA_HOME/libs/.complete" ]; then
    say "fetching Kafka jars from Maven Central (cached in .cache/kafka/libs)"
    rm -rf "$KAFKA_HOME/libs"
    mvn -q -B -f "$ROOT/deploy/kafka/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$KAFKA_HOME/libs" -DincludeScope=runtime >&2
    touch "$KAFKA_HOME/libs/.complete"
  fi
  mkdir -p "$KAFKA_HOME/data" "$KAFKA_HOME/logs"
  sed -e "s#@KAFKA_PORT@#$KAFKA_PORT#g" -e "s#@CONTROLLER_PORT@#$CONTROLLER_PORT#g" \
      -e "s#@DATA_DIR@#$KAFKA_HOME/data#g" "$ROOT/deploy/kafka/server.properties.in" > "$KAFKA_HOME/server.properties"
  local java_opts=(-Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$ROOT/deploy/kafka/log4j2.xml" "-Dkafka.logs.dir=$KAFKA_HOME/logs")
  if [ ! -f "$KAFKA_HOME/data/meta.properties" ]; then
    say "formatting Kafka storage"
    java "${java_opts[@]}" -cp "$KAFKA_HOME/libs/*" kafka.tools.StorageTool format --standalone \
      --cluster-id "$(python3 -c 'import base64,uuid;print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')" \
      --config "$KAFKA_HOME/server.properties" > "$KAFKA_HOME/logs/format.log" 2>&1 \
      || { cat "$KAFKA_HOME/logs/format.log" >&2; die "kafka storage format failed"; }
  fi
  say "starting Kafka on 127.0.0.1:$KAFKA_PORT"
  nohup java "${java_opts[@]}" -cp "$KAFKA_HOME/libs/*" kafka.Kafka "$KAFKA_HOME/server.properties" \
    > "$KAFKA_HOME/logs/stdout.log" 2>&1 < /dev/null &
  echo $! > "$KAFKA_HOME/kafka.pid"
}

kafka_wait() {
  local deadline=$((SECONDS + 90))
  until port_open "$KAFKA_PORT"; do
    kafka_running || { tail -n 30 "$KAFKA_HOME/logs/stdout.log" "$KAFKA_HOME/logs/server.log" >&2 || true; die "kafka exited during start-up (logs above)"; }
    [ "$SECONDS" -lt "$deadline" ] || die "kafka did not answer on 127.0.0.1:$KAFKA_PORT within 90 s (see $KAFKA_HOME/logs)"
    sleep 0.5
  done
  say "kafka answers on 127.0.0.1:$KAFKA_PORT"
}

kafka_down() {
  if kafka_running; then
    local p; p="$(kafka_pid)"; say "stopping Kafka (pid $p)"; kill "$p"
    for _ in $(seq 1 60); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$p" 2>/dev/null && kill -9 "$p"
  fi
  rm -f "$KAFKA_HOME/kafka.pid"
}

# ---------------------------------------------------------------- PostgreSQL
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
as_pg_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
pg_ctl_() { as_pg_owner "$(pg_bin)/pg_ctl" -D "$PG_HOME/data" "$@"; }
pg_running() { [ -f "$PG_HOME/data/postmaster.pid" ] && pg_ctl_ status >/dev/null 2>&1; }

pg_up() {
  if pg_running; then say "postgresql already running on 127.0.0.1:$POSTGRES_PORT"; return; fi
  port_open "$POSTGRES_PORT" && die "port $POSTGRES_PORT is taken by another process (a system PostgreSQL? try 'pg_ctlcluster 15 main stop'), or set POSTGRES_PORT / point DATABASE_URL at your own server"
  mkdir -p "$PG_HOME"
  [ "$(id -u)" = 0 ] && chown postgres: "$PG_HOME"
  if [ ! -f "$PG_HOME/data/PG_VERSION" ]; then
    say "initialising a PostgreSQL cluster in .cache/postgres"
    local pw="$PG_HOME/.pwfile"; echo postgres > "$pw"; [ "$(id -u)" = 0 ] && chown postgres: "$pw"
    as_pg_owner "$(pg_bin)/initdb" -D "$PG_HOME/data" -U postgres --pwfile="$pw" -A scram-sha-256 -E UTF8 \
      --locale=C.UTF-8 > "$PG_HOME/initdb.log" 2>&1 || { cat "$PG_HOME/initdb.log" >&2; die "initdb failed"; }
    rm -f "$pw"
    cat >> "$PG_HOME/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $POSTGRES_PORT
unix_socket_directories = '$PG_HOME'
max_connections = 200
shared_buffers = 256MB
synchronous_commit = on
fsync = on
CONF
  fi
  say "starting PostgreSQL on 127.0.0.1:$POSTGRES_PORT"
  pg_ctl_ -l "$PG_HOME/server.log" -o "-p $POSTGRES_PORT" -w -t 60 start >/dev/null \
    || { tail -n 30 "$PG_HOME/server.log" >&2; die "postgresql did not start (log above)"; }
  if ! PGPASSWORD=postgres psql -h 127.0.0.1 -p "$POSTGRES_PORT" -U postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname='telemetry'" | grep -q 1; then
    PGPASSWORD=postgres psql -h 127.0.0.1 -p "$POSTGRES_PORT" -U postgres -qc "CREATE DATABASE telemetry"
  fi
  say "postgresql answers on 127.0.0.1:$POSTGRES_PORT (database telemetry, user postgres)"
}

pg_down() {
  if pg_running; then say "stopping PostgreSQL"; pg_ctl_ -m fast -w stop >/dev/null; fi
}

case "${1:-}" in
  up)
    ensure_packages
    kafka_up; pg_up; kafka_wait
    say "ready: KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT DATABASE_URL=postgresql://postgres:postgres@127.0.0.1:$POSTGRES_PORT/telemetry" ;;
  down) kafka_down; pg_down ;;
  kafka-stop) kafka_down ;;
  kafka-start) kafka_up; kafka_wait ;;
  pg-stop) pg_down ;;
  pg-start) pg_up ;;
  status)
    kafka_running && say "kafka: running (pid $(kafka_pid))" || say "kafka: stopped"
    pg_running && say "postgresql: running" || say "postgresql: stopped" ;;
  *) die "usage: $0 up|down|status|kafka-stop|kafka-start|pg-stop|pg-start" ;;
esac
