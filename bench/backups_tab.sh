#!/usr/bin/env bash
# Load test of an environment's Backups tab with 10,000 backups: seeds the catalog, signs in through the login
# form (session cookie + CSRF token), then runs wrk with 50 concurrent clients against the real server and
# prints wrk's latency distribution (the target is p99 under 50 ms).
#
#   bench/backups_tab.sh [BACKUPS] [DURATION]     (defaults 10000 and 15s; needs wrk, sqlite3, curl)
#
# REWIND_BIN=path uses that binary instead of building one from this checkout.
# Everything runs under a temporary directory, removed at the end.
set -euo pipefail
backups=${1:-10000}
duration=${2:-15s}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/rewind-bench-tab.XXXXXX)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
data=$work/data
bin=$work/rewind
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
addr=127.0.0.1:$port
password='bench password 123'
export REWIND_REPO_PASSWORD='bench repository password'

if [ -n "${REWIND_BIN:-}" ]; then
	cp "$REWIND_BIN" "$bin"
else
	echo "building rewind"
	(cd "$here" && go build -o "$bin" .)
fi
printf '%s\n' "$password" | "$bin" users:add bench@example.com --role admin --password-stdin --data "$data" >/dev/null
token=$("$bin" tokens:create --user bench@example.com --data "$data" 2>/dev/null)

"$bin" serve --addr "$addr" --data "$data" --log-level error >"$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -fs "http://$addr/healthz" >/dev/null && break; sleep 0.1; done

mkdir -p "$work/app/uploads"
curl -fs -X PUT -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
	-d "{\"type\":\"production\",\"services\":[{\"name\":\"uploads\",\"type\":\"files\",\"path\":\"$work/app/uploads\"}]}" \
	"http://$addr/api/v1/environments/main" >/dev/null

echo "seeding $backups backups of main"
sqlite3 "$data/rewind.db" >/dev/null <<SQL
PRAGMA busy_timeout = 5000;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $backups)
INSERT INTO backups (id, environment, kind, live, status, progress, size_bytes, new_bytes, pause_ms, services,
	created_at, completed_at)
SELECT printf('%020x', i), 'main', CASE i % 3 WHEN 0 THEN 'automated' ELSE 'manual' END, i % 3 = 0, 'complete',
	100, 1048576 + i, i * 10, i % 7,
	'[{"name":"uploads","type":"files","version":"","size":1048576}]',
	strftime('%Y-%m-%dT%H:%M:%fZ', 'now', printf('-%d minutes', i)),
	strftime('%Y-%m-%dT%H:%M:%fZ', 'now', printf('-%d minutes', i))
FROM n;
SQL

echo "signing in"
jar=$work/cookies
csrf=$(curl -fs -c "$jar" "http://$addr/login" | sed -n 's/.*name="_csrf" value="\([^"]*\)".*/\1/p' | head -1)
curl -fs -b "$jar" -c "$jar" -o /dev/null --data-urlencode "_csrf=$csrf" --data-urlencode "email=bench@example.com" \
	--data-urlencode "password=$password" "http://$addr/login"
cookie=$(awk '(!/^#/ || /^#HttpOnly_/) && NF >= 7 { printf "%s=%s", $6, $7 }' "$jar")
[ -n "$cookie" ] || { echo "no session cookie"; exit 1; }
rows=$(curl -fs -H "Cookie: $cookie" "http://$addr/environments/main" | grep -o 'data-testid="backup-row"' | wc -l)
echo "the Backups tab lists $rows backups on its first page of $backups"

# The machine may be shared: after each run, say how much CPU went to the server, to wrk and to everything else
# (other processes' work stretches the tail; a run with much "other" is not comparable).
hz=$(getconf CLK_TCK) cpus=$(getconf _NPROCESSORS_ONLN)
ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }   # busy ticks of all CPUs
own() { awk '{print $14+$15}' "/proc/$pid/stat"; }                # the server's
kids() { # sets kids to the CPU seconds of this shell's reaped children (wrk): times must run in this shell
	times >"$work/times"
	kids=$(awk 'NR == 2 {gsub(/[ms]/, " "); print $1 * 60 + $2 + $3 * 60 + $4}' "$work/times")
}
run() {
	local t0 s0 k0 w0 t1 s1 k1 w1
	kids
	t0=$(ticks) s0=$(own) w0=$(date +%s.%N) k0=$kids
	wrk -t4 -c50 -d"$duration" --latency -H "Cookie: $cookie" "http://$addr$1"
	kids
	t1=$(ticks) s1=$(own) w1=$(date +%s.%N) k1=$kids
	awk -v t=$((t1 - t0)) -v s=$((s1 - s0)) -v k0="$k0" -v k1="$k1" -v w0="$w0" -v w1="$w1" -v hz="$hz" \
		-v cpus="$cpus" 'BEGIN { all = cpus * (w1 - w0) / 100; w = k1 - k0
		printf "CPU during the run, %% of all CPUs: server %.0f, wrk %.0f, other processes %.0f\n",
			s / hz / all, w / all, (t / hz - s / hz - w) / all }'
}

echo "wrk: 50 connections, 4 threads, $duration: GET /environments/main (first page)"
run /environments/main
echo
# The Older links page by keyset (?before=ID: the backups older than ID), found through the index at any depth;
# the 9,000th newest backup starts the same page as offset 9000 (the seed's backup i is i minutes old).
before=$(printf '%020x' 9000)
echo "wrk: same, a deep page (before=$before: the backups after the 9,000th, as the Older links ask)"
run "/environments/main?before=$before"
echo
echo "wrk: same, the deep page by offset (offset 9000: links from before keyset paging)"
run "/environments/main?offset=9000"
