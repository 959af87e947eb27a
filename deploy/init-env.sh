#!/bin/sh
# Writes .env from .env.example with every change-me placeholder replaced by
# a random value (keyq refuses to start with a change-me value), so that the
# compose quick start runs as written. Never overwrites an existing .env.
# The values are in .env only: read them there (API_TOKENS for clients,
# DASHBOARD_PASSWORD for /keys and /monitoring/, GRAFANA_ADMIN_PASSWORD).
#   usage: deploy/init-env.sh [.env]
set -eu
cd "$(dirname "$0")/.."
out="${1:-.env}"
if [ -e "$out" ]; then
	echo "init-env.sh: $out exists; not touching it (remove it first to start over)" >&2
	exit 1
fi
umask 077
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
while IFS= read -r line || [ -n "$line" ]; do
	case "$line" in
	\#*) ;;
	*=change-me*)
		# 24 random bytes as 48 hex digits.
		secret=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
		line="${line%%=*}=$secret"
		;;
	esac
	printf '%s\n' "$line"
done <.env.example >"$tmp"
mv "$tmp" "$out"
trap - EXIT
echo "init-env.sh: wrote $out (mode 600) with random API_TOKENS, DASHBOARD_PASSWORD and GRAFANA_ADMIN_PASSWORD" >&2
