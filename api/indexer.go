package api

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/internal/jobstore"
)

// indexer adds new jobs to their owners' lists (GET /api/jobs) in groups:
// the POSTs that arrive while one write is on its way to Redis wait for the
// next, which carries them all in one pipeline (a group commit). Each POST
// still answers only once its job is listed, and under load the API makes
// one round trip per group rather than one per job.
type indexer struct {
	rdb       redis.UniversalClient
	retention time.Duration

	mu      sync.Mutex
	queue   []*indexWait
	writing bool // a goroutine is writing, and will take the queue next
}

type indexWait struct {
	owner string
	job   jobstore.Indexed
	done  chan error
}

// add lists job under owner, returning when it is written (or ctx ends).
func (x *indexer) add(ctx context.Context, owner string, job jobstore.Indexed) error {
	w := &indexWait{owner: owner, job: job, done: make(chan error, 1)}
	x.mu.Lock()
	x.queue = append(x.queue, w)
	lead := !x.writing
	x.writing = true
	x.mu.Unlock()
	if lead {
		go x.write()
	}
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// write sends the queued entries, then again while more have queued.
func (x *indexer) write() {
	for {
		x.mu.Lock()
		group := x.queue
		x.queue = nil
		if len(group) == 0 {
			x.writing = false
			x.mu.Unlock()
			return
		}
		x.mu.Unlock()
		err := x.send(group)
		for _, w := range group {
			w.done <- err
		}
	}
}

// send writes one group: each owner's entries, one pipeline.
func (x *indexer) send(group []*indexWait) error {
	byOwner := map[string][]jobstore.Indexed{}
	for _, w := range group {
		byOwner[w.owner] = append(byOwner[w.owner], w.job)
	}
	ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
	defer cancel()
	pipe := x.rdb.Pipeline()
	for owner, jobs := range byOwner {
		jobstore.QueueIndex(ctx, pipe, owner, jobs, x.retention)
	}
	_, err := pipe.Exec(ctx)
	return err
}
