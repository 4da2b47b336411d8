#!/usr/bin/env bash
# fuzz.sh FUZZTIME: every fuzz target of the module for FUZZTIME each.
#
# Go 1.26's fuzzing engine can end a run that found nothing with a bare
# "context deadline exceeded" when -fuzztime runs out while a worker is busy
# (go.dev/issue/75804, fixed in Go 1.27). Such a run wrote no failing input;
# it is run once more, and fails only if it fails again. A run that found
# something (a failing input written, a panic, a test error) fails at once.
set -euo pipefail
fuzztime=${1:?usage: fuzz.sh FUZZTIME}
go=${GO:-go}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

run() { # pkg target
	"$go" test -run '^$' -fuzz "^$2\$" -fuzztime "$fuzztime" "$1" 2>&1 | tee "$log"
	return "${PIPESTATUS[0]}"
}

for pkg in $("$go" list ./...); do
	for f in $("$go" test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		echo "fuzz $pkg $f"
		if run "$pkg" "$f"; then
			continue
		fi
		if grep -q 'context deadline exceeded' "$log" && ! grep -qE 'Failing input written|panic:|_test\.go:[0-9]+:' "$log"; then
			echo "fuzz: $f ended on the fuzzing engine's deadline race with no failing input (go.dev/issue/75804); running it again"
			run "$pkg" "$f"
		else
			exit 1
		fi
	done
done
