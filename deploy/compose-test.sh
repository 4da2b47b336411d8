#!/usr/bin/env bash
# compose-test: build the image, start the 4-node ring of deploy/compose.yaml
# under a unique project name, wait until the ring is whole, put a value and
# get it back through the published client API port (and through another
# node), then always tear everything down (containers, network, volumes).
#
# Where no Docker engine answers, it says so in one line and exits 0; in CI
# (CI=true), where the machine runs an engine, that is a failure instead.
# Environment: IMAGE (default durachord:latest), READY_TIMEOUT seconds
# (default 120), MAKE (default make), COMPOSE (command, default: detected).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "compose-test: $*"; }
die() { echo "compose-test: FAIL: $*" >&2; exit 1; }
skip() {
	if [[ "${CI:-}" == "true" ]]; then
		die "$* (in CI this test must run)"
	fi
	say "skipped: $*"
	exit 0
}

if ! docker info >/dev/null 2>&1; then
	skip "no Docker engine answers"
fi

if [[ -n "${COMPOSE:-}" ]]; then
	read -ra compose <<<"$COMPOSE"
elif docker compose version >/dev/null 2>&1; then
	compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
	compose=(docker-compose)
else
	skip "a Docker engine answers but neither 'docker compose' nor 'docker-compose' is installed"
fi

image="${IMAGE:-durachord:latest}"
ready_timeout="${READY_TIMEOUT:-120}"
"${MAKE:-make}" --no-print-directory image IMAGE="$image"

user=$(docker image inspect --format '{{.Config.User}}' "$image")
[[ "$user" =~ ^[1-9][0-9]*(:[0-9]+)?$ ]] || die "image $image runs as user '$user', want a numeric non-root user"
size=$(docker image inspect --format '{{.Size}}' "$image")
say "image $image: user $user, $((size / 1024 / 1024)) MiB"

project="durachord-test-$$-$RANDOM"
export DURACHORD_IMAGE="$image"
# Empty: the engine picks free loopback ports; asked for below.
export DURACHORD_API_PORT="" DURACHORD_ADMIN_PORT=""
dc() { "${compose[@]}" -f deploy/compose.yaml -p "$project" "$@"; }

ok=0
teardown() {
	if [[ $ok != 1 ]]; then
		say "logs of $project:"
		dc logs --no-color --tail 40 >&2 || true
	fi
	say "down $project"
	dc down -v --remove-orphans -t 20 >/dev/null 2>&1 || dc down -v --remove-orphans || true
}
trap teardown EXIT
trap 'exit 130' INT TERM

say "up $project (${compose[*]})"
t0=$SECONDS
dc up -d

hostport() {
	local hp
	hp=$(dc port node1 "$1" | tail -n 1)
	[[ "$hp" == 127.0.0.1:* ]] || die "node1 port $1 is published on '$hp', want 127.0.0.1:PORT"
	echo "$hp"
}
api=$(hostport 7401)
admin=$(hostport 7410)
say "node1 api $api, admin $admin"

# The nodes' admin servers listen off loopback inside their network, so
# they want the token the one-shot made; copy it out (no shell in the image;
# docker cp, as docker-compose v1 has no cp).
tokdir=$(mktemp -d)
trap 'rm -rf "$tokdir"; teardown' EXIT
until docker cp "$(dc ps -q node1)":/certs/admin.token "$tokdir/admin.token" >/dev/null 2>&1; do
	((SECONDS < t0 + ready_timeout)) || die "no admin token in node1 after ${ready_timeout}s"
	sleep 1
done
chmod 600 "$tokdir/admin.token"
export DURACHORD_ADMIN_TOKEN_FILE="$tokdir/admin.token"

dhtctl=bin/dhtctl
deadline=$((SECONDS + ready_timeout))
while :; do
	ring=$("$dhtctl" ring --admin "$admin" --json 2>/dev/null || true)
	nodes=$(grep -c '"ready":' <<<"$ring" || true)
	ready=$(grep -c '"ready": true' <<<"$ring" || true)
	if [[ $nodes == 4 && $ready == 4 ]]; then
		break
	fi
	if ((SECONDS >= deadline)); then
		"$dhtctl" ring --admin "$admin" >&2 || true
		die "ring not whole after ${ready_timeout}s: $nodes nodes, $ready ready"
	fi
	sleep 1
done
say "ring of 4 nodes, all ready $((SECONDS - t0))s after up"
"$dhtctl" ring --admin "$admin"
if out=$(DURACHORD_ADMIN_TOKEN_FILE= "$dhtctl" status --admin "$admin" 2>&1); then
	die "dhtctl status without the admin token succeeded; want 401"
fi
[[ "$out" == *"401 Unauthorized"* ]] || die "dhtctl status without the admin token: '$out'; want 401 Unauthorized"
say "admin without the token: 401"

key="compose-test-$RANDOM$RANDOM"
value="hello from $project"
"$dhtctl" put --api "$api" "$key" "$value" || die "put $key through $api failed"

# PUT has no reply: the value is visible to other connections within a
# moment, so the GET is retried for a bounded time.
get_until() {
	local what=$1 got=""
	shift
	local until=$((SECONDS + 10))
	while :; do
		got=$("$@" 2>/dev/null || true)
		if [[ "$got" == "$value" ]]; then
			say "get $key $what: ok"
			return 0
		fi
		((SECONDS < until)) || die "get $key $what = '$got'; want '$value'"
		sleep 0.2
	done
}
get_until "through $api" "$dhtctl" get --api "$api" "$key"
# The same key through node3's own API, from inside its container (exec form, no shell).
get_until "through node3" dc exec -T node3 dhtctl get --api 127.0.0.1:7401 "$key"

ok=1
say "ok"
