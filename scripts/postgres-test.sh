#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests. Idempotent; run as root (or as the postgres user).
#   scripts/postgres-test.sh start        -> installs Debian's postgresql if missing, starts a fresh
#                                            cluster on 127.0.0.1 (free port) and a unix socket in its
#                                            own temp dir, creates database crosslink_test, prints its URL
#   scripts/postgres-test.sh stop URL|PORT -> stops that cluster and removes its directory
# Nothing listens beyond 127.0.0.1; the cluster lives in /tmp/crosslink-pg-PORT, owned by postgres.
set -euo pipefail

die() { echo "postgres-test: $*" >&2; exit 1; }

as_postgres() {
  if [ "$(id -un)" = postgres ]; then "$@"
  elif [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"
  else die "run as root or as the postgres user (need to start a server as postgres)"; fi
}

ensure_installed() {
  if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
    [ "$(id -u)" = 0 ] || die "PostgreSQL is not installed and we are not root to install it"
    echo "postgres-test: installing Debian's postgresql" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends postgresql >&2
  fi
  id postgres >/dev/null 2>&1 || die "the postgres system user is missing (is the postgresql package installed correctly?)"
}

bindir() {
  # The newest installed major version.
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -x "$d/initdb" ] || die "initdb not found under /usr/lib/postgresql/*/bin"
  echo "$d"
}

free_port() {
  node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

start() {
  ensure_installed
  local bin port dir
  bin=$(bindir)
  for _ in 1 2 3 4 5; do
    port=$(free_port)
    dir=/tmp/crosslink-pg-$port
    mkdir "$dir" 2>/dev/null && break
    dir=
  done
  [ -n "$dir" ] || die "could not pick a free port and directory"
  chown postgres: "$dir"
  chmod 700 "$dir"
  as_postgres "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  # fsync stays on: the crash tests must see real durability semantics from the server too.
  if ! as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir" start >&2; then
    cat "$dir/server.log" >&2 || true
    die "pg_ctl start failed (log above)"
  fi
  as_postgres "$bin/psql" -h "$dir" -p "$port" -U postgres -d postgres -qAt -c 'create database crosslink_test' >&2 \
    || die "could not create database crosslink_test"
  echo "postgres://postgres@127.0.0.1:$port/crosslink_test"
}

stop() {
  local arg=${1:-} port dir bin
  [ -n "$arg" ] || die "usage: $0 stop URL|PORT"
  if [[ $arg =~ ^[0-9]+$ ]]; then port=$arg; else port=$(sed -E 's#^.*:([0-9]+)/.*$#\1#' <<<"$arg"); fi
  [[ $port =~ ^[0-9]+$ ]] || die "cannot find a port in '$arg'"
  dir=/tmp/crosslink-pg-$port
  [ -d "$dir" ] || { echo "postgres-test: nothing at $dir (already stopped)" >&2; return 0; }
  bin=$(bindir)
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_postgres "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >&2 || true
  fi
  rm -rf "$dir"
}

case "${1:-}" in
  start) start ;;
  stop) stop "${2:-}" ;;
  *) die "usage: $0 start | stop URL|PORT" ;;
esac
