#!/usr/bin/env bash
# Runs every test against real redis-servers: each test binary starts its own
# on a free port (internal/redistest), or uses KEYQ_TEST_REDIS_URL if set.
# Installs the Debian packages it needs when they are missing (below).
# Extra arguments go to `go test` (e.g. scripts/test.sh -run Failover ./worker).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use, installed in one apt run when missing:
# - redis-server: every test talks to a real Redis (required). The package
#   starts a system-wide server on :6379; the tests never use it.
# - docker-compose: validates docker-compose.yml (no Docker engine needed).
# - prometheus: promtool checks deploy/prometheus/ and the dashboard's
#   queries, and a real prometheus scrapes a real keyq api and worker.
# - chromium: the /keys console in a real headless browser.
# Without an optional one (or without apt) its tests skip and say why.
missing=()
if [ -z "${KEYQ_TEST_REDIS_URL:-}" ] && ! command -v redis-server >/dev/null 2>&1; then missing+=(redis-server); fi
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
{ command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; } || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "test.sh: installing Debian's ${missing[*]}" >&2
	sudo=""
	[ "$(id -u)" = 0 ] || sudo="sudo"
	if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
		echo "test.sh: could not install all of ${missing[*]}; the tests that need a missing one skip" >&2
	fi
fi
if [ -z "${KEYQ_TEST_REDIS_URL:-}" ] && ! command -v redis-server >/dev/null 2>&1; then
	echo "test.sh: redis-server is required (apt-get install -y redis-server, or set KEYQ_TEST_REDIS_URL)" >&2
	exit 1
fi

if [ $# -eq 0 ]; then
	set -- ./...
fi
go test -race -count=1 "$@"

# A short fuzz run of each target, on top of its committed corpus
# (testdata/fuzz/<Fuzz...>/). The budgets are counts of executions (a few
# seconds each here), not durations: a -fuzztime duration can end the run
# mid-input and fail it with "context deadline exceeded". KEYQ_FUZZTIME
# replaces every budget (e.g. 60s or 1000000x; 0 skips).
for target in api:FuzzAnalyzeCharacterRequest:20000x gemini:FuzzClassify:100000x keyring:FuzzParseKeys:200000x; do
	IFS=: read -r pkg name budget <<<"$target"
	budget="${KEYQ_FUZZTIME:-$budget}"
	if [ "$budget" = 0 ] || [ "$budget" = 0s ]; then
		continue
	fi
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "$budget" "./$pkg"
done
