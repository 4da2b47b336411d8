#!/bin/sh
# Memory and start-up of one node holding many records.
#
#   scripts/mem-1m.sh fill DIR      write 1M records of 100 bytes into the data dir DIR
#                                   (RECORDS=, VALUE_BYTES= to change), through the store's
#                                   own write path; about 10 s and 650 MB
#   scripts/mem-1m.sh measure DIR   start bin/dhtd three times (RUNS=) on a fresh copy of DIR,
#                                   a single node with its own CA, certificate and HMAC key,
#                                   and print per run: milliseconds from start to /readyz 200,
#                                   then RssAnon and RssFile (kB, /proc/PID/status) right after
#                                   ready, after GET /status and after GET /metrics; then the
#                                   medians. BIN= names the directory of dhtd and dhtctl
#                                   (default bin, from make build); PORT= the first of the
#                                   three loopback ports it uses (default 17400). REUSE=1 copies
#                                   DIR once and starts every run on the same copy (to see a
#                                   database upgraded by the first run start again); with STOP=KILL
#                                   each run ends in SIGKILL instead of SIGTERM (a crash).
#
# The fresh copy keeps runs alike (a node remembers its peers in the data dir); it sits in the
# page cache, which RssFile does not count: RssFile is what the node itself mapped and touched.
set -eu

cmd=${1:-}
src=${2:-}
[ -n "$cmd" ] && [ -n "$src" ] || { sed -n '2,20p' "$0"; exit 2; }

case $cmd in
fill)
	DURACHORD_FILL_DIR=$src DURACHORD_FILL_RECORDS=${RECORDS:-1000000} \
		DURACHORD_FILL_VALUE_BYTES=${VALUE_BYTES:-100} \
		go test -count=1 -run '^TestFill$' -v ./store/ | grep -E 'wrote|FAIL|ok'
	exit 0
	;;
measure) ;;
*) echo "unknown command $cmd" >&2; exit 2 ;;
esac

bin=${BIN:-bin}
runs=${RUNS:-3}
port=${PORT:-17400}
p2p=127.0.0.1:$port
api=127.0.0.1:$((port + 1))
admin=127.0.0.1:$((port + 2))
work=$(mktemp -d)
pid=
cleanup() {
	if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

"$bin/dhtctl" ca init --dir "$work/ca" >/dev/null
"$bin/dhtctl" cert issue --ca "$work/ca" --address "$p2p" --out "$work/tls" >/dev/null
"$bin/dhtctl" hmac new --out "$work/hmac.keys"

now_ms() { echo $(($(date +%s%N) / 1000000)); }
rss() { awk '/^RssAnon|^RssFile/ { printf "%s ", $2 }' "/proc/$1/status"; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "run ready_ms anon_ready file_ready anon_status file_status anon_metrics file_metrics"
: >"$work/results"
i=1
while [ "$i" -le "$runs" ]; do
	if [ "${REUSE:-0}" != 1 ] || [ "$i" = 1 ]; then
		rm -rf "$work/data"
		cp -r "$src" "$work/data"
		sync
	fi
	t0=$(now_ms)
	"$bin/dhtd" --data-dir "$work/data" --p2p-address "$p2p" --api-address "$api" \
		--admin-address "$admin" --tls-dir "$work/tls" --hmac-keys "$work/hmac.keys" \
		--log-level warn 2>"$work/log" &
	pid=$!
	until curl -sf -o /dev/null "http://$admin/readyz"; do
		kill -0 "$pid" 2>/dev/null || { cat "$work/log" >&2; exit 1; }
		sleep 0.005
	done
	t1=$(now_ms)
	ready=$(rss "$pid")
	curl -sf -o /dev/null "http://$admin/status"
	status=$(rss "$pid")
	curl -sf -o /dev/null "http://$admin/metrics"
	metrics=$(rss "$pid")
	line="$((t1 - t0)) $ready$status$metrics"
	echo "$i $line"
	echo "$line" >>"$work/results"
	kill -"${STOP:-TERM}" "$pid"
	{ wait "$pid"; } 2>/dev/null || true
	pid=
	i=$((i + 1))
done
printf "median"
for col in 1 2 3 4 5 6 7; do
	printf " %s" "$(cut -d' ' -f$col "$work/results" | median)"
done
echo
