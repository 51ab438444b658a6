#!/usr/bin/env bash
# Measures the peak memory (maximum resident set size) of one Rewind backup of a generated tree of mixed-size
# incompressible files, through the engine into a fresh local kopia repository, and of its restore. Target of
# issue 12: below 200 MB backing up 2 GB with the default settings.
#
#   bash bench/mem.sh [SIZE_MB [PG_SCALE]]     (default 2048; needs python3 and GNU time: apt-get install -y time)
#
# With PG_SCALE it also backs up a pgbench database of that scale (140 ≈ 2 GB on disk, a 1.4 GB dump) from a
# private PostgreSQL 15 server (as in bench/db.sh) and reports that backup's peak memory too.
# GOMAXPROCS and ENGINEBENCH_FLAGS="-parallel N" emulate a larger machine.
#
# Everything lives in a temporary directory removed at the end (it needs about twice SIZE_MB of free disk).
set -euo pipefail
size_mb=${1:-2048}
pg_scale=${2:-}
here=$(cd "$(dirname "$0")/.." && pwd)
[ -x /usr/bin/time ] || { echo "needs GNU time: apt-get install -y time" >&2; exit 1; }
work=$(mktemp -d /tmp/rewind-mem.XXXXXX)
bin=/usr/lib/postgresql/15/bin
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  [ -d "$work/pg/data" ] && as_pg "$bin/pg_ctl" -D "$work/pg/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
chmod 755 "$work"

echo "generating a ${size_mb} MB tree of incompressible files in $work/tree"
python3 - "$work/tree" "$size_mb" <<'PY'
import os, random, sys
root, size_mb = sys.argv[1], int(sys.argv[2])
rnd = random.Random(7)
total, budget, i = 0, size_mb << 20, 0
while total < budget:
    d = os.path.join(root, f"d{i % 23}", f"e{i % 7}")
    os.makedirs(d, exist_ok=True)
    if i % 100 == 0:   # large: 16-256 MB
        n = rnd.randint(16 << 20, 256 << 20)
    elif i % 10 == 0:  # medium: 256 KB - 8 MB
        n = rnd.randint(256 << 10, 8 << 20)
    else:              # small: 1-64 KB
        n = rnd.randint(1 << 10, 64 << 10)
    n = min(n, budget - total) or 1
    with open(os.path.join(d, f"f{i:06d}.bin"), "wb") as f:
        while n > 0:
            k = min(n, 4 << 20)
            f.write(os.urandom(k))
            n -= k
            total += k
    i += 1
print(f"{i} files, {total >> 20} MB")
PY
sync

echo "building bench/cmd/enginebench"
(cd "$here" && go build -o "$work/enginebench" ./bench/cmd/enginebench)
report() {
  grep -E 'Elapsed|Percent of CPU' "$1" | sed 's/^\t/  /'
  awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); printf "peak RSS: %.1f MB (target < 200 MB)\n", $2 / 1024}' "$1"
}
/usr/bin/time -v -o "$work/time.txt" "$work/enginebench" files ${ENGINEBENCH_FLAGS:-} -tree "$work/tree" -dir "$work/run"
report "$work/time.txt"
rm -rf "$work/tree"
/usr/bin/time -v -o "$work/time-restore.txt" "$work/enginebench" files-restore -dir "$work/run" -target "$work/restored"
report "$work/time-restore.txt"
rm -rf "$work/run" "$work/restored"

[ -n "$pg_scale" ] || exit 0
mkdir "$work/pg"
[ "$(id -u)" = 0 ] && chown postgres: "$work/pg"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg "$bin/initdb" -D "$work/pg/data" -A trust -U postgres --no-sync >/dev/null
as_pg "$bin/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w \
  -o "-p $port -k $work/pg -c listen_addresses=127.0.0.1" start >/dev/null
"$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres bench
echo "pgbench -i -s $pg_scale"
"$bin/pgbench" -i -q -s "$pg_scale" -h 127.0.0.1 -p "$port" -U postgres bench 2>&1 | tail -1
"$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -Atc "SELECT 'database size: ' || pg_size_pretty(pg_database_size('bench'))" bench
/usr/bin/time -v -o "$work/time-pg.txt" "$work/enginebench" pg -bin "$bin" -dir "$work/run-pg" \
  -url "postgres://postgres@127.0.0.1:$port/bench?sslmode=disable"
report "$work/time-pg.txt"
