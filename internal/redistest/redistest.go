// Package redistest gives each test its own database on a real redis-server.
//
// The server comes from KEYQ_TEST_REDIS_URL (scripts/test.sh starts one on a
// free port and sets it). Without it, the first test that asks starts a
// private redis-server from PATH on a free port, killed with the test binary.
// A mock is not a Redis: nothing here fakes one.
package redistest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// EnvURL names the variable that points tests at a running redis-server.
const EnvURL = "KEYQ_TEST_REDIS_URL"

// databases is how many logical databases a server started here has; each
// test takes one, so many tests of many packages can share one server.
const databases = 1024

var (
	once    sync.Once
	baseURL string
	baseErr error
)

// Open returns a client on a database no other running test uses, emptied
// before the test and after it, and the redis:// URL of that database for
// code that wants a URL (REDIS_URL of a process under test).
func Open(tb testing.TB) (*redis.Client, string) {
	tb.Helper()
	once.Do(func() { baseURL, baseErr = server() })
	if baseErr != nil {
		tb.Fatalf("redistest: %v", baseErr)
	}
	opt, err := redis.ParseURL(baseURL)
	if err != nil {
		tb.Fatalf("redistest: %s: %v", EnvURL, err)
	}
	db, err := claimDB(opt)
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	opt.DB = db
	rdb := redis.NewClient(opt)
	ctx := context.Background()
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		tb.Fatalf("redistest: flush db %d: %v", db, err)
	}
	tb.Cleanup(func() {
		_ = rdb.FlushDB(context.Background()).Err()
		_ = rdb.Close()
	})
	u := fmt.Sprintf("redis://%s/%d", opt.Addr, db)
	if opt.Password != "" {
		u = fmt.Sprintf("redis://:%s@%s/%d", opt.Password, opt.Addr, db)
	}
	return rdb, u
}

// claimDB hands out database numbers 1..n-1 through a counter in database 0,
// so concurrent test binaries never share one (until the counter wraps).
func claimDB(opt *redis.Options) (int, error) {
	o := *opt
	o.DB = 0
	c := redis.NewClient(&o)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n := databases
	if v, err := c.ConfigGet(ctx, "databases").Result(); err == nil {
		if d, err := strconv.Atoi(v["databases"]); err == nil && d > 1 {
			n = d
		}
	}
	seq, err := c.Incr(ctx, "redistest:next-db").Result()
	if err != nil {
		return 0, fmt.Errorf("claim a database at %s: %w", opt.Addr, err)
	}
	return 1 + int((seq-1)%int64(n-1)), nil
}

func server() (string, error) {
	if u := os.Getenv(EnvURL); u != "" {
		return u, nil
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", errors.New("no redis-server on PATH and " + EnvURL + " unset: run scripts/test.sh, or apt-get install -y redis-server")
	}
	dir, err := os.MkdirTemp("", "keyq-redistest-")
	if err != nil {
		return "", err
	}
	// Another test binary may bind the same port between our check and
	// redis-server's: try again on another.
	for range 5 {
		port, err := freePort()
		if err != nil {
			return "", err
		}
		u, err := startServer(bin, dir, port)
		if err == nil {
			return u, nil
		}
		if !errors.Is(err, errExited) {
			return "", err
		}
	}
	return "", errors.New("redis-server would not start on any of 5 ports")
}

var errExited = errors.New("redis-server exited")

func startServer(bin, dir string, port int) (string, error) {
	started := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		// Pdeathsig fires when the thread that started the child exits, so
		// this goroutine keeps its thread for the life of the test binary.
		runtime.LockOSThread()
		cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", dir,
			"--databases", strconv.Itoa(databases), "--maxmemory-policy", "noeviction")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		return "", fmt.Errorf("start redis-server: %w", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.Ping(context.Background()).Err()
		if err == nil {
			return "redis://" + addr, nil
		}
		select {
		case <-exited:
			return "", errExited
		default:
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("redis-server on %s did not answer in 10s: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freePort picks a port below Linux's ephemeral range (32768 and up), so
// that no outgoing connection can take it before redis-server binds it.
func freePort() (int, error) {
	for range 200 {
		p := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err == nil {
			l.Close()
			return p, nil
		}
	}
	return 0, errors.New("no free port in 20000-31999")
}
