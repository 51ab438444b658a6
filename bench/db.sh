#!/usr/bin/env bash
# Measures the database targets of issue 3 end to end, through Rewind's engine and a real (local, encrypted,
# zstd) kopia repository, in one run on a pgbench database:
#   - Engine.Backup vs plain `pg_dump -Fc` to a file                    (target ≤ 1.15×)
#   - Engine.Restore (prepare + switch) vs plain `pg_restore --jobs N`  (target ≤ 1.15×; same N as Rewind)
#   - repository growth of a second backup after appending 1% more rows to pgbench_accounts, as a share of the
#     first backup's stored size                                      (target ≤ 5%)
#
#   bash bench/db.sh [SCALE]     (pgbench scale, default 50 ≈ 750 MB; needs PostgreSQL 15 in /usr/lib/postgresql/15/bin)
#
# Backups and restores run 3 rounds each, plain and Rewind alternating, and the best of each counts (single
# rounds vary a lot on a shared machine). ENGINEBENCH_FLAGS passes flags to bench/cmd/enginebench, e.g.
# "-rounds 5", "-backup-cpuprofile /tmp/b.prof", "-restore-cpuprofile /tmp/r.prof", "-spool-dir /dev/shm".
#
# It starts a private server on a free port under a temporary directory (as the postgres user when run as root)
# and removes everything at the end. Scale 50 takes several minutes on 2 cores.
set -euo pipefail
scale=${1:-50}
here=$(cd "$(dirname "$0")/.." && pwd)
bin=/usr/lib/postgresql/15/bin
work=$(mktemp -d /tmp/rewind-dbbench.XXXXXX)
chmod 755 "$work"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir "$work/pg"
[ "$(id -u)" = 0 ] && chown postgres: "$work/pg"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cleanup() {
  as_pg "$bin/pg_ctl" -D "$work/pg/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
as_pg "$bin/initdb" -D "$work/pg/data" -A trust -U postgres --no-sync >/dev/null
as_pg "$bin/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w \
  -o "-p $port -k $work/pg -c listen_addresses=127.0.0.1" start >/dev/null
"$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres bench
echo "pgbench -i -s $scale"
"$bin/pgbench" -i -q -s "$scale" -h 127.0.0.1 -p "$port" -U postgres bench 2>&1 | tail -1
"$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -Atc "SELECT 'database size: ' || pg_size_pretty(pg_database_size('bench'))" bench

echo "building bench/cmd/enginebench"
(cd "$here" && go build -o "$work/enginebench" ./bench/cmd/enginebench)
timer=(); [ -x /usr/bin/time ] && timer=(/usr/bin/time -v -o "$work/time.txt")
"${timer[@]}" "$work/enginebench" db ${ENGINEBENCH_FLAGS:-} -bin "$bin" -dir "$work/run" \
  -url "postgres://postgres@127.0.0.1:$port/bench?sslmode=disable"
if [ -f "$work/time.txt" ]; then
  awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); printf "peak RSS of the Rewind process over the whole run: %.1f MB\n", $2 / 1024}' "$work/time.txt"
fi
