package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/keyq/keyq/internal/jobstore"
	"github.com/keyq/keyq/tasks"
)

// enqueuers is how many enqueues of a batch run at once: asynq's Client
// enqueues one task per round trip.
const enqueuers = 16

// postBatch answers POST /api/batches: every item is checked first, then
// the batch is stored and its jobs enqueued; one 202 with the batch's id.
func (s *Server) postBatch(w http.ResponseWriter, r *http.Request) error {
	items, err := decodeBatch(w, r)
	if err != nil {
		return err
	}
	cb, err := s.cl.callbackFor(r.Context(), r, r.URL.Query().Get("callback_url"))
	if err != nil {
		return err
	}
	ts, entries, err := s.batchTasks(r, items)
	if err != nil {
		return err
	}
	id := newJobID()
	for i, t := range ts {
		ts[i] = asynq.NewTaskWithHeaders(t.Type(), t.Payload(), withHeader(t.Headers(), tasks.HeaderBatch, id), s.jobOptions(entries[i].JobID)...)
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	now := time.Now()
	rec := jobstore.BatchRecord{ID: id, Owner: ownerOf(r), Callback: cb, Created: now, TTL: jobstore.TTL(s.retention)}
	if err := s.cl.store.CreateBatch(ctx, rec, entries); err != nil {
		return redisErr(err)
	}
	idx := make([]jobstore.Indexed, len(entries))
	for i, e := range entries {
		idx[i] = jobstore.Indexed{ID: e.JobID, Score: now.UnixMicro() + int64(i)}
	}
	if err := s.cl.store.Index(ctx, ownerOf(r), idx, s.retention); err != nil {
		return redisErr(err)
	}
	if err := s.enqueueAll(ctx, ts); err != nil {
		s.abandonBatch(entries)
		return redisErr(err)
	}
	w.Header().Set("Location", "/api/batches/"+id)
	writeJSON(w, http.StatusAccepted, tasks.BatchAccepted{ID: id, Total: len(ts), StatusURL: "/api/batches/" + id})
	return nil
}

func withHeader(h map[string]string, k, v string) map[string]string {
	h[k] = v
	return h
}

// jobOptions are the asynq options of a new job.
func (s *Server) jobOptions(id string) []asynq.Option {
	return []asynq.Option{asynq.TaskID(id), asynq.Queue(tasks.Queue),
		asynq.MaxRetry(tasks.AsynqMaxRetry(s.maxRetry)), asynq.Timeout(s.timeout), asynq.Retention(s.retention)}
}

// batchTasks checks every item and makes its task; the first bad item is
// the answer, by position and custom_id.
func (s *Server) batchTasks(r *http.Request, items []tasks.BatchItem) ([]*asynq.Task, []jobstore.BatchEntry, error) {
	ts := make([]*asynq.Task, len(items))
	entries := make([]jobstore.BatchEntry, len(items))
	seen := make(map[string]bool, len(items))
	checked := map[string]error{} // callback URL -> its check, once per URL
	now := time.Now()
	for i, it := range items {
		if it.CustomID != "" && (seen[it.CustomID] || len(it.CustomID) > 255 || !printableASCII(it.CustomID)) {
			return nil, nil, itemError(i, it.CustomID, &Error{Field: "custom_id", Message: "custom_id must be unique in the batch, 1 to 255 printable ASCII characters"})
		}
		seen[it.CustomID] = true
		cb := it.CallbackURL
		if cb != "" {
			if _, ok := checked[cb]; !ok {
				_, checked[cb] = s.cl.callbackFor(r.Context(), r, cb)
			}
			if err := checked[cb]; err != nil {
				return nil, nil, itemError(i, it.CustomID, err)
			}
		}
		t, err := tasks.NewAnalyzeCharacterTask(it.AnalyzeCharacter)
		if err != nil {
			return nil, nil, itemError(i, it.CustomID, err)
		}
		ts[i] = asynq.NewTaskWithHeaders(t.Type(), t.Payload(), s.jobHeaders(r, cb, "", now))
		entries[i] = jobstore.BatchEntry{JobID: newJobID(), CustomID: it.CustomID}
	}
	return ts, entries, nil
}

// enqueueAll enqueues the tasks from enqueuers goroutines.
func (s *Server) enqueueAll(ctx context.Context, ts []*asynq.Task) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan *asynq.Task)
	)
	for range enqueuers {
		wg.Go(func() {
			for t := range next {
				if _, err := s.client.EnqueueContext(ctx, t); err != nil {
					mu.Lock()
					first = cmpErr(first, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, t := range ts {
		next <- t
	}
	close(next)
	wg.Wait()
	return first
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// abandonBatch deletes what a batch that could not be wholly enqueued did
// enqueue, best effort: Redis is failing already.
func (s *Server) abandonBatch(entries []jobstore.BatchEntry) {
	for _, e := range entries {
		if err := s.inspector.DeleteTask(tasks.Queue, e.JobID); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			s.log.Warn("could not delete a job of a batch that failed to enqueue", "job", e.JobID, "err", err)
		}
	}
}

// batchRoute answers /api/batches/{id}: GET counts, DELETE cancels.
func (s *Server) batchRoute(w http.ResponseWriter, r *http.Request) error {
	rec, err := s.batchOf(r)
	if err != nil {
		return err
	}
	if r.Method == http.MethodDelete {
		if err := s.cancelBatch(r.Context(), rec.ID); err != nil {
			return err
		}
	}
	b, _, err := s.cl.store.BatchStatus(r.Context(), rec.ID)
	if err != nil {
		return redisErr(err)
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

// batchOf reads the request's batch; another owner's batch is not found.
func (s *Server) batchOf(r *http.Request) (jobstore.BatchRecord, error) {
	id := r.PathValue("id")
	notFound := &Error{Code: CodeNotFound, Message: "no batch with that id (batches are kept as long as their jobs)"}
	if !validJobID(id) {
		return jobstore.BatchRecord{}, notFound
	}
	rec, err := s.cl.store.Batch(r.Context(), id)
	switch {
	case errors.Is(err, jobstore.ErrNoBatch):
		return rec, notFound
	case err != nil:
		return rec, redisErr(err)
	case ownerOf(r) != "" && rec.Owner != ownerOf(r):
		return rec, notFound
	}
	return rec, nil
}

// cancelBatch cancels every unfinished item.
func (s *Server) cancelBatch(ctx context.Context, id string) error {
	items, err := s.cl.store.Items(ctx, id)
	if err != nil {
		return redisErr(err)
	}
	for _, it := range items {
		if _, err := s.cancelJob(ctx, it.JobID); err != nil && !isNotFound(err) {
			return fmt.Errorf("cancel batch item %s: %w", it.JobID, err)
		}
	}
	return nil
}
