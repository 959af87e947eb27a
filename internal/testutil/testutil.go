// Package testutil has the small helpers keyq's tests share: a log sink safe
// for concurrent writers, waiting on a condition with a deadline, and a scan
// of everything in Redis for secrets.
package testutil

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Logs is an io.Writer that many goroutines may write to and tests read.
type Logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String returns everything written so far.
func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Eventually polls cond every 10ms until it returns true, failing the test
// with what after the deadline. No sleeping-and-hoping: the wait ends as
// soon as the condition holds.
func Eventually(tb testing.TB, deadline time.Duration, what string, cond func() bool) {
	tb.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			tb.Fatalf("after %s: %s", deadline, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Pieces returns every substring of s of length n: a leak of any of them
// counts as a leak of s.
func Pieces(s string, n int) []string {
	if len(s) <= n {
		return []string{s}
	}
	var out []string
	for i := 0; i+n <= len(s); i++ {
		out = append(out, s[i:i+n])
	}
	return out
}

// FindSecrets returns a description of every place in text where a secret,
// or any 12-character piece of one, appears.
func FindSecrets(text string, secrets ...string) []string {
	var hits []string
	for _, s := range secrets {
		for _, p := range Pieces(s, 12) {
			if i := strings.Index(text, p); i >= 0 {
				lo, hi := max(0, i-40), min(len(text), i+len(p)+40)
				hits = append(hits, fmt.Sprintf("piece %q of a key in ...%s...", p, text[lo:hi]))
				break
			}
		}
	}
	return hits
}

// DumpRedis returns every key and value of the client's database as text,
// whatever the types, for a scan of what a run left in Redis.
func DumpRedis(tb testing.TB, rdb *redis.Client) string {
	tb.Helper()
	ctx := context.Background()
	var b strings.Builder
	iter := rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		fmt.Fprintf(&b, "%s => ", k)
		typ, err := rdb.Type(ctx, k).Result()
		if err != nil {
			tb.Fatal(err)
		}
		var v any
		switch typ {
		case "string":
			v, err = rdb.Get(ctx, k).Result()
		case "hash":
			v, err = rdb.HGetAll(ctx, k).Result()
		case "list":
			v, err = rdb.LRange(ctx, k, 0, -1).Result()
		case "set":
			v, err = rdb.SMembers(ctx, k).Result()
		case "zset":
			v, err = rdb.ZRangeWithScores(ctx, k, 0, -1).Result()
		case "stream":
			v, err = rdb.XRange(ctx, k, "-", "+").Result()
		default:
			v = "(type " + typ + ")"
		}
		if err != nil && err != redis.Nil {
			tb.Fatal(err)
		}
		fmt.Fprintf(&b, "%v\n", v)
	}
	if err := iter.Err(); err != nil {
		tb.Fatal(err)
	}
	return b.String()
}
