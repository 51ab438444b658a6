#!/usr/bin/env bash
# Backup and restore throughput of the engine into a repository on local disk and on a local S3 server
# (versitygw on loopback), in one run, and the S3/local ratios.
#
#   bench/storage.sh [SIZE_MB] [ITERATIONS]     (default 64 MiB, 3 iterations; needs versitygw, see .ci/run)
#
# The tree is incompressible (random) files, a few of 4-8 MiB and many of 4-64 KiB; each iteration backs up
# into a fresh repository, so nothing is deduplicated against an earlier one.
set -euo pipefail
size_mb=${1:-64}
n=${2:-3}
cd "$(dirname "$0")/.."
export PATH="$PATH:$(go env GOPATH)/bin"
out=$(REWIND_BENCH_MB=$size_mb go test -run '^$' -bench '^BenchmarkThroughput$' -benchtime "${n}x" -count 1 ./backup/storagetest/)
echo "$out" | grep -E '^(goos|goarch|cpu|Benchmark)'
echo "$out" | awk '
  /^BenchmarkThroughput\// { split($1, p, "/"); sub(/-[0-9]+$/, "", p[3]); mbs[p[2] "/" p[3]] = $(NF-1) }
  END {
    if (!("s3/backup" in mbs)) { print "no S3 results (versitygw missing?)"; exit 1 }
    printf "S3/local throughput: backup %.2f, restore %.2f\n", mbs["s3/backup"] / mbs["local/backup"], mbs["s3/restore"] / mbs["local/restore"]
  }'
