#!/usr/bin/env bash
# Backs up one generated tree with Rewind's engine (kopia underneath) and with restic, twice each (the second
# run with nothing changed), and prints the throughput, second-run and repository-size ratios.
#
#   bench/files.sh [SIZE_MB]     (default 300; needs /usr/bin/restic and python3)
#
# Both tools read the same tree from the same (warm) page cache, encrypt and compress (zstd) into a local
# repository under a temporary directory, which is removed at the end.
set -euo pipefail
size_mb=${1:-300}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/rewind-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
tree=$work/tree

echo "generating a ${size_mb} MB tree in $tree"
python3 - "$tree" "$size_mb" <<'PY'
import os, random, sys, base64
root, size_mb = sys.argv[1], int(sys.argv[2])
rnd = random.Random(42)
total, budget = 0, size_mb << 20
i = 0
while total < budget:
    d = os.path.join(root, f"d{i % 17}", f"e{i % 5}")
    os.makedirs(d, exist_ok=True)
    if i % 200 == 0:    # large
        n = rnd.randint(8 << 20, 24 << 20)
    elif i % 20 == 0:   # medium
        n = rnd.randint(256 << 10, 2 << 20)
    else:               # small; half of all files are compressible text
        n = rnd.randint(1 << 10, 32 << 10)
    raw = rnd.randbytes(n if i % 2 else n * 3 // 4)
    data = raw if i % 2 else base64.b64encode(raw)[:n]
    with open(os.path.join(d, f"f{i:06d}.bin"), "wb") as f:
        f.write(data)
    total += len(data)
    i += 1
print(f"{i} files, {total >> 20} MB")
PY
sync

echo "building the engine's benchmark driver"
(cd "$here" && go test -c -o "$work/files.test" ./backup/files/)

bytes=$(du -sb "$tree" | cut -f1)

now() { date +%s.%N; }

echo "rewind (kopia library, files source: first pass + pin + final upload)"
rw_out=$(REWIND_BENCH_TREE=$tree REWIND_BENCH_DIR=$work/rewind REWIND_BENCH_PARALLEL=${REWIND_BENCH_PARALLEL:-0} \
	"$work/files.test" -test.run '^TestBenchEngine$' -test.v=false)
echo "$rw_out" | grep '^rewind'
rw1=$(echo "$rw_out" | awk '/^rewind first/ {split($3,a,"="); print a[2]}')
rw2=$(echo "$rw_out" | awk '/^rewind second/ {split($3,a,"="); print a[2]}')
rw_size=$(du -sb "$work/rewind/repo" | cut -f1)

echo "restic $(restic version | awk '{print $2}')"
export RESTIC_PASSWORD=bench RESTIC_REPOSITORY=$work/restic RESTIC_CACHE_DIR=$work/restic-cache
restic init --quiet >/dev/null
t0=$(now); restic backup --quiet --host bench "$tree" >/dev/null; t1=$(now)
restic backup --quiet --host bench "$tree" >/dev/null; t2=$(now)
rs1=$(echo "$t1 - $t0" | bc -l); rs2=$(echo "$t2 - $t1" | bc -l)
rs_size=$(du -sb "$work/restic" | cut -f1)
echo "restic first seconds=$rs1"
echo "restic second seconds=$rs2"

mb=$(echo "$bytes / 1048576" | bc -l)
printf '\n%-34s %12s %12s %10s\n' "" rewind restic ratio
printf '%-34s %12.1f %12.1f %10.2f\n' "first backup throughput (MB/s)" "$(echo "$mb/$rw1" | bc -l)" "$(echo "$mb/$rs1" | bc -l)" "$(echo "$rs1/$rw1" | bc -l)"
printf '%-34s %12.2f %12.2f %10.2f\n' "second backup, unchanged (s)" "$rw2" "$rs2" "$(echo "$rw2/$rs2" | bc -l)"
printf '%-34s %12.1f %12.1f %10.2f\n' "repository size (MB)" "$(echo "$rw_size/1048576" | bc -l)" "$(echo "$rs_size/1048576" | bc -l)" "$(echo "$rw_size/$rs_size" | bc -l)"
echo "(throughput ratio = rewind/restic speed, >1 is Rewind faster; time and size ratios = rewind/restic, <1 is Rewind better)"
