#!/usr/bin/env bash
# Measures the peak memory (maximum resident set size) of one Rewind backup of a generated tree of mixed-size
# incompressible files, through the engine into a fresh local kopia repository. Target of issue 3: below 300 MB
# backing up 2 GB.
#
#   bash bench/mem.sh [SIZE_MB]     (default 2048; needs python3 and GNU time: apt-get install -y time)
#
# Everything lives in a temporary directory removed at the end (it needs about twice SIZE_MB of free disk).
set -euo pipefail
size_mb=${1:-2048}
here=$(cd "$(dirname "$0")/.." && pwd)
[ -x /usr/bin/time ] || { echo "needs GNU time: apt-get install -y time" >&2; exit 1; }
work=$(mktemp -d /tmp/rewind-mem.XXXXXX)
trap 'rm -rf "$work"' EXIT

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
/usr/bin/time -v -o "$work/time.txt" "$work/enginebench" files ${ENGINEBENCH_FLAGS:-} -tree "$work/tree" -dir "$work/run"
rss_kb=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$work/time.txt")
grep -E 'Elapsed|Percent of CPU' "$work/time.txt" | sed 's/^\t/  /'
printf 'peak RSS: %.1f MB (target < 300 MB)\n' "$(echo "$rss_kb / 1024" | bc -l)"
