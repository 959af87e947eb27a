// Package deploytest checks the deployment files: docker-compose.yml,
// .env.example, Dockerfile, .dockerignore and deploy/ (Prometheus config and
// alerts, Grafana provisioning and dashboard, the demo override,
// init-env.sh). Their invariants as text; the compose file resolved by
// `docker-compose config` with .env from .env.example; the Prometheus files
// through promtool; and a real Prometheus scraping a real keyq api and
// worker. Tools that are missing (Debian's docker-compose and prometheus
// packages, which scripts/test.sh installs) make their tests skip and say
// so. It has no code of its own.
package deploytest
