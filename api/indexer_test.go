package api

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/internal/jobstore"
	"github.com/keyq/keyq/internal/redistest"
)

// pipelines counts the pipelines a client sends.
type pipelines struct{ n atomic.Int64 }

func (p *pipelines) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (p *pipelines) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (p *pipelines) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		p.n.Add(1)
		return next(ctx, cmds)
	}
}

// Jobs POSTed at once are listed in groups: every one is listed when its
// add returns, in fewer round trips than jobs.
func TestIndexerGroupsConcurrentJobs(t *testing.T) {
	rdb, _ := redistest.Open(t)
	count := &pipelines{}
	rdb.AddHook(count)
	x := &indexer{rdb: rdb, retention: time.Hour}
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			owner := fmt.Sprintf("owner-%d", i%3)
			id := fmt.Sprintf("job-%03d", i)
			if err := x.add(t.Context(), owner, jobstore.Indexed{ID: id, Score: time.Now().UnixMicro()}); err != nil {
				t.Errorf("add %s: %v", id, err)
				return
			}
			if _, err := rdb.ZScore(context.Background(), jobstore.OwnerKey(owner), id).Result(); err != nil {
				t.Errorf("%s is not listed once add returned: %v", id, err)
			}
		})
	}
	wg.Wait()
	total := 0
	for o := range 3 {
		total += int(rdb.ZCard(context.Background(), jobstore.OwnerKey(fmt.Sprintf("owner-%d", o))).Val())
	}
	if total != n {
		t.Errorf("%d jobs listed, want %d", total, n)
	}
	if p := count.n.Load(); p >= n {
		t.Errorf("%d pipelines for %d jobs: not grouped", p, n)
	} else {
		t.Logf("%d jobs in %d pipelines", n, p)
	}
}

// A failed write is every waiter's error, and the indexer works again
// once Redis does.
func TestIndexerReportsAFailedWrite(t *testing.T) {
	rdb, _ := redistest.Open(t)
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	t.Cleanup(func() { dead.Close() })
	x := &indexer{rdb: dead, retention: time.Hour}
	if err := x.add(t.Context(), "", jobstore.Indexed{ID: "a"}); err == nil {
		t.Error("add with Redis unreachable: no error")
	}
	x.rdb = rdb
	if err := x.add(t.Context(), "", jobstore.Indexed{ID: "b"}); err != nil {
		t.Errorf("add once Redis is back: %v", err)
	}
}
