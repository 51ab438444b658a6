#!/usr/bin/env bash
# Measures point-in-time protection of PostgreSQL (issue 10) in one run, on a pgbench database of about 1 GB:
#   - the achieved recovery point under pgbench load (-c 4): from a probe commit returning to the client until the
#     repository holds WAL with a commit at or after it, as a share of the platforms' 5 min / 6 h / 24 h;
#   - a restore to the end of the load (Rewind's rebuild: base + WAL out of the repository into a scratch server,
#     recovered to T) against a plain restore of a pg_basebackup taken at the end (untar, start, recover).
#
#   bash bench/pitr.sh [SCALE] [SECONDS]   (pgbench scale, default 70 ≈ 1 GB; load seconds, default 30;
#                                           needs PostgreSQL 15 in /usr/lib/postgresql/15/bin)
#
# It starts private servers on free ports under a temporary directory (as the postgres user when run as root)
# and removes everything at the end.
set -euo pipefail
scale=${1:-70}
seconds=${2:-30}
here=$(cd "$(dirname "$0")/.." && pwd)
bin=/usr/lib/postgresql/15/bin
work=$(mktemp -d /tmp/rewind-pitrbench.XXXXXX)
chmod 755 "$work"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
mkdir "$work/pg" "$work/plain"
[ "$(id -u)" = 0 ] && chown postgres: "$work/pg" "$work/plain"
port=$(freeport)
cleanup() {
  as_pg "$bin/pg_ctl" -D "$work/pg/data" -m fast stop >/dev/null 2>&1 || true
  as_pg "$bin/pg_ctl" -D "$work/plain/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
as_pg "$bin/initdb" -D "$work/pg/data" -A trust -U postgres --no-sync >/dev/null
as_pg "$bin/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w \
  -o "-p $port -k $work/pg -c listen_addresses=127.0.0.1 -c max_wal_size=4GB" start >/dev/null
"$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres bench
echo "pgbench -i -s $scale"
"$bin/pgbench" -i -q -s "$scale" -h 127.0.0.1 -p "$port" -U postgres bench 2>&1 | tail -1
"$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -Atc "SELECT 'database size: ' || pg_size_pretty(pg_database_size('bench'))" bench

echo "building bench/cmd/enginebench"
(cd "$here" && go build -o "$work/enginebench" ./bench/cmd/enginebench)
out=$("$work/enginebench" pitr -bin "$bin" -dir "$work/run" -seconds "$seconds" \
  -url "postgres://postgres@127.0.0.1:$port/bench?sslmode=disable")
grep -v '^REBUILD_SECONDS=' <<<"$out"
rebuild=$(sed -n 's/^REBUILD_SECONDS=//p' <<<"$out")

# Plain: a pg_basebackup of the database as it is now, restored the usual way (untar, start, recover).
as_pg "$bin/pg_basebackup" -h 127.0.0.1 -p "$port" -U postgres -D "$work/plain/base" -Ft -X fetch -c fast
t0=$(date +%s.%N)
as_pg mkdir -m 700 "$work/plain/data"
as_pg tar -xf "$work/plain/base/base.tar" -C "$work/plain/data"
as_pg "$bin/pg_ctl" -D "$work/plain/data" -l "$work/plain/log" -w -t 600 \
  -o "-p $(freeport) -k $work/plain -c listen_addresses=''" start >/dev/null
t1=$(date +%s.%N)
plain=$(python3 -c "print(f'{$t1 - $t0:.3f}')")
echo
printf '%-62s %8s\n' "restore of a pg_basebackup (untar, start, recover)" "${plain}s"
printf '%-62s %8s\n' "Rewind's restore to T (base + the load's WAL from the repository)" "${rebuild}s"
python3 -c "print(f'ratio: {$rebuild / $plain:.2f}x')"
echo "(load average at the end: $(cut -d' ' -f1-3 /proc/loadavg))"
