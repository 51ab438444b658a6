#!/usr/bin/env bash
# Compares the postgres source's backup (Pin + streaming pg_dump -Fc -Z0) and restore (Prepare with spooling +
# Switch) with plain `pg_dump -Fc` and `pg_restore --jobs` on a pgbench database, in one run, and prints ratios.
#
#   bench/pg.sh [SCALE]     (pgbench scale, default 10 ≈ 150 MB; needs PostgreSQL 15 in /usr/lib/postgresql/15/bin)
#
# It starts a private server as the postgres user on a free port under a temporary directory and removes it at
# the end. Run as root or as the postgres user.
set -euo pipefail
scale=${1:-10}
here=$(cd "$(dirname "$0")/.." && pwd)
bin=/usr/lib/postgresql/15/bin
work=$(mktemp -d /tmp/rewind-pgbench.XXXXXX)
chmod 755 "$work"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres: "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cleanup() {
  as_pg "$bin/pg_ctl" -D "$work/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
as_pg "$bin/initdb" -D "$work/data" -A trust -U postgres --no-sync >/dev/null
as_pg "$bin/pg_ctl" -D "$work/data" -l "$work/log" -w \
  -o "-p $port -k $work -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off" start >/dev/null
"$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres bench
echo "pgbench -i -s $scale"
"$bin/pgbench" -i -q -s "$scale" -h 127.0.0.1 -p "$port" -U postgres bench 2>&1 | tail -1
cd "$here"
REWIND_BENCH_PG_URL="postgres://postgres@127.0.0.1:$port/bench?sslmode=disable" \
  go test -count=1 -run TestCompareWithPgDump -v ./backup/postgres/ | grep -v -E '^(=== RUN|--- PASS|PASS|ok )'
