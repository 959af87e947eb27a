package jobstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/internal/redisconn"
	"github.com/keyq/keyq/tasks"
)

// DefaultRetention is a job's retention when its task carries none.
const DefaultRetention = 24 * time.Hour

// TTL is how long keyq keeps its hash of a job retained for retention: as
// long as asynq keeps the job, plus the webhook's window.
func TTL(retention time.Duration) time.Duration {
	if retention <= 0 {
		retention = DefaultRetention
	}
	return retention + tasks.WebhookWindow + time.Hour
}

// Store reads and writes keyq's state of jobs on one Redis.
type Store struct{ rdb redis.UniversalClient }

// New makes a Store on rdb.
func New(rdb redis.UniversalClient) *Store { return &Store{rdb: rdb} }

// Event is one published state of a job.
type Event struct {
	Seq int64
	ID  string
	Job json.RawMessage
}

// ParseEvent reads a message of EventsChannel.
func ParseEvent(payload string) (Event, error) {
	seqText, rest, ok1 := strings.Cut(payload, " ")
	id, job, ok2 := strings.Cut(rest, " ")
	seq, err := strconv.ParseInt(seqText, 10, 64)
	if !ok1 || !ok2 || err != nil {
		return Event{}, errors.New("jobstore: malformed event")
	}
	return Event{Seq: seq, ID: id, Job: json.RawMessage(job)}, nil
}

// Publish records j as the job's state and publishes it on EventsChannel.
// batchComplete is true exactly once per batch: for the final state that
// completes it.
func (s *Store) Publish(ctx context.Context, j tasks.Job, batch string, ttl time.Duration) (seq int64, batchComplete bool, err error) {
	keys, args, err := publishArgs(j, batch, ttl)
	if err != nil {
		return 0, false, err
	}
	return publishReply(publishScript.Run(ctx, s.rdb, keys, args...).Result())
}

// ErrTaskGone is a finish for a job whose task is gone from Redis
// (deleted, expired, or Redis lost its data): its result is not stored.
var ErrTaskGone = errors.New("the job is gone from Redis (deleted, expired, or Redis lost its data); its result is not stored")

// QueueFinish adds the end of a successful run to pipe, for a caller that
// sends it with its own writes (a worker, with the key's report and the
// token usage): the result stored in asynq's task hash while the task
// exists, and j, the job succeeded, published (finish.lua). Its Result is
// ready once pipe is executed. Sending it again is safe: a final state is
// published once.
func (s *Store) QueueFinish(ctx context.Context, pipe redis.Pipeliner, j tasks.Job, batch string, ttl time.Duration, result []byte) *FinishCmd {
	keys, args, err := publishArgs(j, batch, ttl)
	if err != nil {
		return &FinishCmd{err: err}
	}
	keys, args = append(keys, TaskKey(j.ID)), append(args, result)
	return &FinishCmd{q: redisconn.Queue(ctx, pipe, s.rdb, finishScript, keys, args...)}
}

// FinishCmd is a finish queued on a pipeline.
type FinishCmd struct {
	q   *redisconn.Queued
	err error
}

// Result is the published state's seq and whether it completed its batch,
// once the pipeline ran; ErrTaskGone when the task is gone. A script
// Redis did not know is run again alone, with ctx.
func (c *FinishCmd) Result(ctx context.Context) (seq int64, batchComplete bool, err error) {
	if c.err != nil {
		return 0, false, c.err
	}
	res, err := c.q.Result(ctx)
	if arr, ok := res.([]any); ok && len(arr) == 2 && arr[0] == "gone" {
		return 0, false, ErrTaskGone
	}
	return publishReply(res, err)
}

// publishArgs are publish.lua's KEYS and ARGV for job j.
func publishArgs(j tasks.Job, batch string, ttl time.Duration) ([]string, []any, error) {
	b, err := json.Marshal(j)
	if err != nil {
		return nil, nil, err
	}
	final, inBatch := "", "0"
	if j.Status.Final() {
		final = string(j.Status)
	}
	keys := []string{JobKey(j.ID), JobKey(j.ID), JobKey(j.ID)}
	if batch != "" {
		keys[1], keys[2], inBatch = BatchKey(batch), BatchDoneKey(batch), "1"
	}
	return keys, []any{EventsChannel, j.ID, b, final, int64(ttl / time.Second), inBatch}, nil
}

// publishReply reads publish.lua's reply.
func publishReply(res any, err error) (seq int64, batchComplete bool, _ error) {
	if err != nil {
		return 0, false, fmt.Errorf("publish job state: %w", err)
	}
	first, complete, err := pair(res)
	if err != nil {
		return 0, false, err
	}
	seq, ok := first.(int64)
	if !ok {
		return 0, false, fmt.Errorf("jobstore: unexpected publish reply %T", first)
	}
	return seq, complete == 1, nil
}

// Cancel marks a job cancelled unless it ended. It returns asynq's state
// of the task ("" for no such task) and whether the job is marked.
func (s *Store) Cancel(ctx context.Context, id string, ttl time.Duration) (state string, marked bool, err error) {
	res, err := cancelScript.Run(ctx, s.rdb, []string{TaskKey(id), JobKey(id)},
		time.Now().UnixMilli(), int64(ttl/time.Second)).Result()
	if err != nil {
		return "", false, fmt.Errorf("cancel: %w", err)
	}
	first, n, err := pair(res)
	if err != nil {
		return "", false, err
	}
	state, _ = first.(string)
	return state, n == 1, nil
}

// Cancelled reports whether the job is marked cancelled.
func (s *Store) Cancelled(ctx context.Context, id string) (bool, error) {
	return s.rdb.HExists(ctx, JobKey(id), "cancelled_at").Result()
}

// Start begins a run of job j (status running), in one round trip: unless
// the job is marked cancelled, or an earlier run stored its result (then
// returned), it records and publishes j.
func (s *Store) Start(ctx context.Context, j tasks.Job, ttl time.Duration) (cancelled bool, result []byte, err error) {
	keys, args, err := publishArgs(j, "", ttl) // running: not final, no batch
	if err != nil {
		return false, nil, err
	}
	res, err := startScript.Run(ctx, s.rdb, append(keys, TaskKey(j.ID)), args...).Slice()
	if err != nil {
		return false, nil, fmt.Errorf("start the job's run: %w", err)
	}
	switch first, _ := res[0].(string); {
	case first == "cancelled":
		return true, nil, nil
	case first == "result" && len(res) == 3:
		stored, _ := res[2].(string)
		return false, []byte(stored), nil
	case first != "":
		return false, nil, fmt.Errorf("jobstore: unexpected start reply %q", first)
	}
	return false, nil, nil
}

// State is keyq's state of a job.
type State struct {
	Seq            int64
	Final          tasks.Status
	Cancelled      bool
	CancelledWhile string // asynq's state of the task when it was cancelled
	Webhook        *tasks.WebhookState
}

// State reads keyq's state of a job (the zero State if it has none).
func (s *Store) State(ctx context.Context, id string) (State, error) {
	m, err := s.rdb.HGetAll(ctx, JobKey(id)).Result()
	if err != nil {
		return State{}, err
	}
	return stateOf(m), nil
}

func stateOf(m map[string]string) State {
	seq, _ := strconv.ParseInt(m["seq"], 10, 64)
	_, cancelled := m["cancelled_at"]
	return State{Seq: seq, Final: tasks.Status(m["final"]), Cancelled: cancelled,
		CancelledWhile: m["cancelled_while"], Webhook: webhookOf(m)}
}
