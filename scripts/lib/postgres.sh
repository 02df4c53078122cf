# shellcheck shell=bash
# Find a PostgreSQL for the tests, or start a throwaway one.
#
# Installs Debian's `postgresql` package when its server binaries are missing (exports
# PG_BINDIR). Then: $DATABASE_URL if it answers; then 127.0.0.1:5432; else a private cluster in
# a temp dir on a free port, stopped when the calling script exits. Exports DATABASE_URL (a
# database the tests may create schemas in).

pg_answers() { # url
  PGCONNECT_TIMEOUT=3 psql "$1" -Atqc 'select 1' >/dev/null 2>&1
}

pg_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && echo "$d"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# The fault tests start a cluster of their own (initdb, pg_ctl): the server binaries must be
# here even when some PostgreSQL already answers.
ensure_postgres_binaries() {
  if [ -z "$(pg_bindir)" ] || ! command -v psql >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  PG_BINDIR=$(pg_bindir)
  export PG_BINDIR
}

ensure_postgres() {
  ensure_postgres_binaries
  if [ -n "${DATABASE_URL:-}" ] && pg_answers "$DATABASE_URL"; then
    echo "postgres: using DATABASE_URL"
    return 0
  fi
  if command -v psql >/dev/null && pg_answers "postgres://postgres@127.0.0.1:5432/postgres"; then
    export DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres"
    echo "postgres: using 127.0.0.1:5432"
    return 0
  fi
  echo "postgres: none answers; starting a throwaway cluster"
  local bin dir port
  bin=$(pg_bindir)
  dir=$(mktemp -d /tmp/pool-test-pg.XXXXXX)
  port=$(free_port)
  chown postgres: "$dir"
  runuser -u postgres -- "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >/dev/null
  runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
  PG_THROWAWAY_DIR="$dir"
  PG_THROWAWAY_BIN="$bin"
  trap 'runuser -u postgres -- "$PG_THROWAWAY_BIN/pg_ctl" -D "$PG_THROWAWAY_DIR/data" -m immediate stop >/dev/null 2>&1; rm -rf "$PG_THROWAWAY_DIR"' EXIT
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  pg_answers "$DATABASE_URL" || { echo "postgres: throwaway cluster did not start"; cat "$dir/log"; return 1; }
  echo "postgres: throwaway cluster on port $port"
}
