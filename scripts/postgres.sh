#!/usr/bin/env bash
# A throwaway PostgreSQL server for the store tests, on 127.0.0.1 with a random port, in a fresh data dir
# under /tmp (owned by the postgres user when run as root), so concurrent runs never collide.
#   eval "$(bash scripts/postgres.sh start)"   initdb + start; prints VPP_PG_URL=… and VPP_PG_DIR=… (shell syntax)
#   bash scripts/postgres.sh stop DIR          stops the server of DIR and removes DIR
#   bash scripts/postgres.sh restart DIR [S]   stops the server of DIR (fast: every connection is ended), waits S
#                                              seconds (default 0) and starts it again: same data, same port
# Needs Debian's postgresql (bash scripts/setup.sh --postgres). Progress goes to stderr.
set -euo pipefail

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bindir" ] && [ -x "$bindir/pg_ctl" ] || {
  echo "postgres.sh: no PostgreSQL server found under /usr/lib/postgresql (run 'bash scripts/setup.sh --postgres')" >&2; exit 1; }

# As root, the server runs as the postgres user (it refuses to run as root).
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# Starts the server of data dir $1/data on 127.0.0.1:$2 (sockets in $1, log $1/server.log); fails if it does not start.
start_server() {
  as_owner "$bindir/pg_ctl" -D "$1/data" -l "$1/server.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $2 -k $1 -c fsync=off" start >&2
}

check_dir() {
  case "$1" in /tmp/vpp-pg-*) ;; *) echo "postgres.sh: refusing to touch '$1'" >&2; exit 2 ;; esac
}

case "${1:-}" in
  start)
    dir=$(mktemp -d /tmp/vpp-pg-XXXXXX)
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    as_owner "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || {
      cat "$dir/initdb.log" >&2; exit 1; }
    started=no
    for _ in 1 2 3 4 5; do
      port=$(shuf -i 20000-60999 -n 1)
      if start_server "$dir" "$port"; then
        started=yes; break
      fi
    done
    [ "$started" = yes ] || { echo "postgres.sh: the server did not start (see $dir/server.log)" >&2; cat "$dir/server.log" >&2; exit 1; }
    echo "$port" >"$dir/port"
    as_owner "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
      -c "CREATE ROLE vpp LOGIN" -c "CREATE DATABASE vpp OWNER vpp" >&2
    echo "postgres.sh: PostgreSQL $("$bindir/postgres" --version | awk '{ print $3 }') on 127.0.0.1:$port ($dir)" >&2
    printf 'VPP_PG_URL=%q\nVPP_PG_DIR=%q\n' "postgres://vpp@127.0.0.1:$port/vpp" "$dir"
    ;;
  restart)
    dir=${2:?usage: postgres.sh restart DIR [SECONDS]}
    check_dir "$dir"
    [ -f "$dir/port" ] || { echo "postgres.sh: no server of postgres.sh start in '$dir'" >&2; exit 2; }
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >&2
    sleep "${3:-0}"
    start_server "$dir" "$(cat "$dir/port")" || { cat "$dir/server.log" >&2; exit 1; }
    ;;
  stop)
    dir=${2:?usage: postgres.sh stop DIR}
    check_dir "$dir"
    if [ -f "$dir/data/postmaster.pid" ]; then as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true; fi
    rm -rf "$dir"
    ;;
  *) sed -n '2,8p' "$0" >&2; exit 2 ;;
esac
