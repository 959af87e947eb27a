// Package chaostest holds keyq's failure tests: the real binary (`keyq api`
// and `keyq worker` processes) against redis-servers the tests start, kill
// with SIGKILL and start again, a Redis Sentinel failover, a worker killed
// mid-job and a worker stopped with SIGTERM while calls are in flight.
//
// The package has no code of its own; its tests run with the others
// (scripts/test.sh) and are skipped by -short. Each test logs the figures
// it measured (t.Logf: run with -v to see them).
package chaostest
