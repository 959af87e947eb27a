#!/usr/bin/env bash
# Runs every test against real redis-servers: each test binary starts its own
# on a free port (internal/redistest), or uses KEYQ_TEST_REDIS_URL if set.
# Installs Debian's redis-server first if it is missing, and Debian's
# docker-compose (to validate docker-compose.yml) and prometheus (promtool and
# a real Prometheus, for deploy/prometheus/) when apt is there.
# Extra arguments go to `go test` (e.g. scripts/test.sh -run Failover ./worker).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${KEYQ_TEST_REDIS_URL:-}" ] && ! command -v redis-server >/dev/null 2>&1; then
	echo "test.sh: redis-server not found, installing Debian's package" >&2
	sudo=""
	[ "$(id -u)" = 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
	# The package starts a system-wide server on :6379; the tests never use it.
fi

# docker-compose validates docker-compose.yml (internal/deploytest); no Docker
# engine is needed. Without it, or without apt, that test skips and says why.
if ! command -v docker-compose >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
	echo "test.sh: docker-compose not found, installing Debian's package" >&2
	sudo=""
	[ "$(id -u)" = 0 ] || sudo="sudo"
	if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq docker-compose >/dev/null; }; then
		echo "test.sh: could not install docker-compose; the compose file will not be validated" >&2
	fi
fi

# Debian's prometheus package: promtool checks deploy/prometheus/ and the
# Grafana dashboard's queries, and a real prometheus scrapes a real keyq api
# and worker (internal/deploytest). Without it those tests skip and say why.
if { ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; } && command -v apt-get >/dev/null 2>&1; then
	echo "test.sh: prometheus/promtool not found, installing Debian's package" >&2
	sudo=""
	[ "$(id -u)" = 0 ] || sudo="sudo"
	if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }; then
		echo "test.sh: could not install prometheus; the monitoring files will not be checked" >&2
	fi
	# The package may start a system-wide prometheus on :9090; the tests never use it.
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
