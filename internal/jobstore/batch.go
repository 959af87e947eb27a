package jobstore

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/tasks"
)

// ErrNoBatch is returned for a batch that does not exist (or expired).
var ErrNoBatch = errors.New("no such batch")

// BatchRecord is what keyq keeps of a batch besides its items.
type BatchRecord struct {
	ID, Owner, Callback string
	Total               int
	Created             time.Time
	TTL                 time.Duration
	Webhook             *tasks.WebhookState
}

// BatchEntry is one item of a batch.
type BatchEntry struct{ JobID, CustomID string }

// CreateBatch stores a batch and its items; it must come before any of its
// jobs is enqueued, so that the last job to finish finds the total.
func (s *Store) CreateBatch(ctx context.Context, b BatchRecord, items []BatchEntry) error {
	p := s.rdb.TxPipeline()
	p.HSet(ctx, BatchKey(b.ID), "owner", b.Owner, "total", len(items), "created", b.Created.UnixMilli(),
		"callback", b.Callback, "ttl", int64(b.TTL/time.Second))
	for i := 0; i < len(items); i += 1000 {
		vals := make([]any, 0, 1000)
		for _, it := range items[i:min(i+1000, len(items))] {
			vals = append(vals, it.JobID+" "+it.CustomID)
		}
		p.RPush(ctx, BatchItemsKey(b.ID), vals...)
	}
	for _, k := range []string{BatchKey(b.ID), BatchItemsKey(b.ID)} {
		p.Expire(ctx, k, b.TTL)
	}
	_, err := p.Exec(ctx)
	return err
}

// Batch reads a batch's record.
func (s *Store) Batch(ctx context.Context, id string) (BatchRecord, error) {
	m, err := s.rdb.HGetAll(ctx, BatchKey(id)).Result()
	if err != nil {
		return BatchRecord{}, err
	}
	if _, ok := m["total"]; !ok {
		return BatchRecord{}, ErrNoBatch
	}
	total, _ := strconv.Atoi(m["total"])
	ms, _ := strconv.ParseInt(m["created"], 10, 64)
	ttl, _ := strconv.ParseInt(m["ttl"], 10, 64)
	return BatchRecord{ID: id, Owner: m["owner"], Callback: m["callback"], Total: total,
		Created: time.UnixMilli(ms).UTC(), TTL: time.Duration(ttl) * time.Second, Webhook: webhookOf(m)}, nil
}

// Items lists a batch's items in order.
func (s *Store) Items(ctx context.Context, id string) ([]BatchEntry, error) {
	vals, err := s.rdb.LRange(ctx, BatchItemsKey(id), 0, -1).Result()
	if err != nil {
		return nil, err
	}
	out := make([]BatchEntry, len(vals))
	for i, v := range vals {
		out[i].JobID, out[i].CustomID, _ = strings.Cut(v, " ")
	}
	return out, nil
}

// Statuses reads the status of many jobs in one pipeline ("" for a job
// that is gone); see asynqStatus for what it cannot tell apart.
func (s *Store) Statuses(ctx context.Context, ids []string) ([]tasks.Status, error) {
	p := s.rdb.Pipeline()
	states := make([]*redis.StringCmd, len(ids))
	mine := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		states[i] = p.HGet(ctx, TaskKey(id), "state")
		mine[i] = p.HGetAll(ctx, JobKey(id))
	}
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make([]tasks.Status, len(ids))
	for i := range ids {
		st := asynqStatus(states[i].Val())
		if st != "" {
			st = Overlay(st, stateOf(mine[i].Val()))
		}
		out[i] = st
	}
	return out, nil
}

// BatchStatus counts a batch's items by status.
func (s *Store) BatchStatus(ctx context.Context, id string) (tasks.Batch, BatchRecord, error) {
	rec, err := s.Batch(ctx, id)
	if err != nil {
		return tasks.Batch{}, rec, err
	}
	items, err := s.Items(ctx, id)
	if err != nil {
		return tasks.Batch{}, rec, err
	}
	b := tasks.Batch{ID: id, Total: rec.Total, Done: true, Counts: map[tasks.Status]int{}, Webhook: rec.Webhook}
	for i := 0; i < len(items); i += 1000 {
		ids := make([]string, 0, 1000)
		for _, it := range items[i:min(i+1000, len(items))] {
			ids = append(ids, it.JobID)
		}
		sts, err := s.Statuses(ctx, ids)
		if err != nil {
			return b, rec, err
		}
		for _, st := range sts {
			b.Counts[cmpStatus(st)]++
			b.Done = b.Done && st.Final()
		}
	}
	return b, rec, nil
}

func cmpStatus(s tasks.Status) tasks.Status {
	if s == "" {
		return "expired"
	}
	return s
}

// BatchComplete enqueues the batch's webhook, if it has a callback.
func (s *Store) BatchComplete(ctx context.Context, c *asynq.Client, id string) error {
	b, rec, err := s.BatchStatus(ctx, id)
	if err != nil || rec.Callback == "" {
		return err
	}
	b.Done = true // every item reached a final state once, whatever it shows now
	d, err := BatchWebhook(b, rec.Callback)
	if err != nil {
		return err
	}
	return s.EnqueueWebhook(ctx, c, d, rec.TTL)
}

// Result reads the result a job's run stored in asynq's task hash.
func (s *Store) Result(ctx context.Context, id string) ([]byte, error) {
	return s.rdb.HGet(ctx, TaskKey(id), "result").Bytes()
}
