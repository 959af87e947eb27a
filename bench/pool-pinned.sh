#!/bin/sh
# pool-pinned.sh runs the bench's pool-size part with redis-server on a
# core of its own (CPU 1) and the load generator on the other (CPU 0,
# GOMAXPROCS 1), as a deployment gives Redis its own core or host. On a
# 2-core machine without it, the 8 client goroutines and Redis compete for
# both cores and the client's scheduling dominates p99.
#
#   bench/pool-pinned.sh -pool-dur 1s -out bench/RESULTS-pool.md
set -eu
port=${PORT:-6399}
bin=$(mktemp -d)/keyq-bench
go build -o "$bin" ./bench
taskset -c 1 redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes
trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$(dirname "$bin")"' EXIT
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done
REDIS_URL="redis://127.0.0.1:$port/0" GOMAXPROCS=1 taskset -c 0 "$bin" -parts poolsize "$@"
