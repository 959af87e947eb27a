// Package deploytest checks the deployment files at the top of the
// repository (docker-compose.yml, Dockerfile, .dockerignore): their
// invariants as text, and the compose file through `docker-compose config`
// when Debian's docker-compose (or the docker compose plugin) is installed.
// It has no code of its own.
package deploytest
