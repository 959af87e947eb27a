package api

import (
	"context"
	_ "embed"
	"errors"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/internal/jobstore"
	"github.com/keyq/keyq/tasks"
)

// A Redis that lost its data (restarted without persistence, a failover to
// an empty replica, FLUSHALL) must not break a running API. asynq's client
// registers a queue in the set of queues once per process, so after such a
// loss its Inspector knows no queue: every job, even one enqueued since,
// would answer 404 until a restart. The API puts the queue back itself.

// asynqQueues is asynq v0.26's set of known queues (internal/base.AllQueues).
const asynqQueues = "asynq:queues"

// healEvery is how often Serve re-registers the queue, so that the
// dashboard and the queue metrics see it again without waiting for a poll.
const healEvery = 10 * time.Second

var (
	//go:embed orphan.lua
	orphanSource string
	orphanScript = redis.NewScript(orphanSource)
)

// registerQueue puts keyq's queue back in asynq's set of queues.
func (s *Server) registerQueue(ctx context.Context) error {
	return s.rdb.SAdd(ctx, asynqQueues, tasks.Queue).Err()
}

// healLoop re-registers the queue every healEvery until ctx ends.
func (s *Server) healLoop(ctx context.Context) {
	t := time.NewTicker(healEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rctx, cancel := context.WithTimeout(ctx, redisTimeout)
			_ = s.registerQueue(rctx) // Redis away: the next tick tries again
			cancel()
		}
	}
}

// taskInfo reads a job, healing what a lost or damaged Redis left: a
// missing queue registration (re-registered, then read again), and an
// orphan task hash (deleted: the job does not exist).
func (s *Server) taskInfo(ctx context.Context, id string) (*asynq.TaskInfo, error) {
	info, err := s.inspector.GetTaskInfo(tasks.Queue, id)
	switch {
	case err == nil || errors.Is(err, asynq.ErrTaskNotFound):
		return info, err
	case errors.Is(err, asynq.ErrQueueNotFound):
		if err := s.registerQueue(ctx); err != nil {
			return nil, redisErr(err)
		}
		return s.inspector.GetTaskInfo(tasks.Queue, id)
	}
	n, oerr := orphanScript.Run(ctx, s.rdb, []string{jobstore.TaskKey(id)}).Int64()
	if oerr == nil && n == 1 {
		s.log.Warn("deleted an orphan task hash (a result written for a job that was gone)", "job", id)
		return nil, asynq.ErrTaskNotFound
	}
	return nil, err
}
