# keyq: one static binary, run as `keyq api` or `keyq worker`.
#   docker build -t keyq .
# Build stage: the Go toolchain; runtime stage: distroless static, no shell,
# no package manager, a non-root user (uid 65532).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/keyq ./cmd/keyq

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/keyq /usr/local/bin/keyq
USER nonroot:nonroot
# 8080: keyq api (API_ADDR); 9090: a worker's /metrics (WORKER_METRICS_ADDR).
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/keyq"]
CMD ["api"]
