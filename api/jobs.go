package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/keyq/keyq/internal/jobstore"
	"github.com/keyq/keyq/tasks"
)

// maxWait caps GET /api/jobs/{id}?wait=.
const maxWait = 60 * time.Second

// jobRoute answers /api/jobs/{id}: GET (and HEAD) reads, DELETE cancels.
func (s *Server) jobRoute(w http.ResponseWriter, r *http.Request) error {
	if r.Method == http.MethodDelete {
		return s.deleteJob(w, r)
	}
	return s.getJob(w, r)
}

// getJob answers GET /api/jobs/{id}, at once or, with ?wait=30s, as soon
// as the job is final or when the wait ends, whichever is first.
func (s *Server) getJob(w http.ResponseWriter, r *http.Request) error {
	id, err := jobIDOf(r)
	if err != nil {
		return err
	}
	wait, err := waitOf(r)
	if err != nil {
		return err
	}
	var j Job
	if wait == 0 {
		j, _, err = s.readJob(r.Context(), r, id)
	} else {
		j, err = s.waitFinal(r.Context(), r, id, wait)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, j)
	return nil
}

func jobIDOf(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if !validJobID(id) {
		return "", &Error{Code: CodeNotFound, Message: "no job with that id: ids are 32 lowercase hex digits"}
	}
	return id, nil
}

// waitOf reads ?wait=: a duration ("30s") or seconds ("30"), 0 to 60 s.
func waitOf(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if n, nerr := strconv.Atoi(v); nerr == nil {
		d, err = time.Duration(n)*time.Second, nil
	}
	if err != nil || d < 0 {
		return 0, &Error{Code: CodeInvalidRequest, Field: "wait", Message: "wait must be a duration like 30s (or seconds, like 30), at most 60s"}
	}
	return min(d, maxWait), nil
}

// readJob reads a job as its owner sees it, with keyq's own state (cancel,
// webhook) and the sequence number of its last published event. Another
// owner's job is not found.
func (s *Server) readJob(ctx context.Context, r *http.Request, id string) (Job, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	info, err := s.taskInfo(ctx, id)
	if err != nil {
		return Job{}, 0, redisErr(err)
	}
	if !ownedBy(r, info) {
		return Job{}, 0, errNoJob
	}
	st, err := s.cl.store.State(ctx, id)
	if err != nil {
		return Job{}, 0, redisErr(err)
	}
	j := withState(jobOf(info), st)
	if j.Status == tasks.StatusSucceeded && j.Result == nil {
		// Succeeded, and asynq finishes a retry of it (see Overlay).
		if b, err := s.cl.store.Result(ctx, id); err == nil && json.Valid(b) {
			raw := json.RawMessage(b)
			j.Result = &raw
		}
	}
	return j, st.Seq, nil
}

// withState adds keyq's own state of the job to asynq's view of it.
func withState(j Job, st jobstore.State) Job {
	if s := jobstore.Overlay(j.Status, st); s != j.Status {
		j.Status, j.NextAttemptAt, j.Result = s, nil, nil
	}
	if j.Status == tasks.StatusCancelled && (j.Error == nil || j.Error.Class != tasks.ClassCancelled) {
		j.Error = &tasks.JobStatusError{Class: tasks.ClassCancelled, Message: "the job was cancelled"}
	}
	j.Webhook = st.Webhook
	return j
}

// waitFinal answers the job once it is final, or its state when d ends.
// It is woken by the hub, and re-reads the job every fallback in case an
// event was lost.
func (s *Server) waitFinal(ctx context.Context, r *http.Request, id string, d time.Duration) (Job, error) {
	wt, err := s.cl.hub.watch(ctx, id)
	if err != nil {
		return Job{}, err
	}
	defer s.cl.hub.forget(wt)
	j, _, err := s.readJob(ctx, r, id)
	if err != nil || j.Status.Final() {
		return j, err
	}
	end := time.NewTimer(d)
	defer end.Stop()
	again := time.NewTicker(s.cl.fallback)
	defer again.Stop()
	for {
		select {
		case ev := <-wt.ch:
			var ej Job
			if json.Unmarshal(ev.Job, &ej) == nil && ej.Status.Final() {
				return ej, nil
			}
		case <-again.C:
			if j, _, err = s.readJob(ctx, r, id); err != nil || j.Status.Final() {
				return j, err
			}
		case <-end.C:
			j, _, err = s.readJob(ctx, r, id)
			return j, err
		case <-ctx.Done():
			return j, ctx.Err()
		}
	}
}

// deleteJob cancels a job: 200 with the job once it is cancelled (it was
// queued or retrying), 202 with the job while a running one is being cut,
// 409 if it already ended.
func (s *Server) deleteJob(w http.ResponseWriter, r *http.Request) error {
	id, err := jobIDOf(r)
	if err != nil {
		return err
	}
	j, _, err := s.readJob(r.Context(), r, id) // 404 for another owner's job
	if err != nil {
		return err
	}
	code, err := s.cancelJob(r.Context(), id)
	if err != nil {
		return err
	}
	if code == 0 {
		return errConflict(j.Status)
	}
	if j, _, err = s.readJob(r.Context(), r, id); err != nil {
		return err
	}
	writeJSON(w, code, j)
	return nil
}

// cancelJob marks the job cancelled and stops it: a waiting job is
// archived at once (and its cancel published, its webhook enqueued); a
// running one is cut through asynq, and its worker ends it as cancelled.
// It returns 200 (cancelled), 202 (being cut) or 0 (it had ended).
func (s *Server) cancelJob(ctx context.Context, id string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	state, marked, err := s.cl.store.Cancel(ctx, id, jobstore.TTL(s.retention))
	switch {
	case err != nil:
		return 0, redisErr(err)
	case state == "":
		return 0, errNoJob
	case !marked:
		return 0, nil
	case state == "completed" || state == "archived":
		return http.StatusOK, nil // cancelled before: the same answer again
	case state == "active":
		return s.cutRunning(id)
	}
	if err := s.inspector.ArchiveTask(tasks.Queue, id); err != nil {
		// A worker took it meanwhile: the mark makes it refuse the run.
		return s.cutRunning(id)
	}
	s.cancelled(ctx, id)
	return http.StatusOK, nil
}

func (s *Server) cutRunning(id string) (int, error) {
	if err := s.inspector.CancelProcessing(id); err != nil {
		return 0, redisErr(err)
	}
	return http.StatusAccepted, nil
}

// cancelled publishes the final state of a job the API cancelled, and
// enqueues its webhook and its batch's, as a worker does for a job that
// ends in its hands.
func (s *Server) cancelled(ctx context.Context, id string) {
	info, err := s.inspector.GetTaskInfo(tasks.Queue, id)
	if err != nil {
		s.log.Warn("could not read a cancelled job to announce it", "job", id, "err", err)
		return
	}
	st, _ := s.cl.store.State(ctx, id)
	j := withState(jobOf(info), st)
	j.Webhook = nil
	ttl := jobstore.TTL(info.Retention)
	batch := info.Headers[tasks.HeaderBatch]
	_, complete, err := s.cl.store.Publish(ctx, j, batch, ttl)
	if err != nil {
		s.log.Warn("could not publish a cancelled job", "job", id, "err", err)
	}
	if cb := info.Headers[tasks.HeaderCallbackURL]; cb != "" {
		s.enqueueWebhook(ctx, j, cb, ttl)
	}
	if complete {
		if err := s.cl.store.BatchComplete(ctx, s.client, batch); err != nil {
			s.log.Error("could not enqueue the batch's webhook", "batch", batch, "err", err)
		}
	}
}

func (s *Server) enqueueWebhook(ctx context.Context, j Job, url string, ttl time.Duration) {
	d, err := jobstore.JobWebhook(j, url)
	if err == nil {
		err = s.cl.store.EnqueueWebhook(ctx, s.client, d, ttl)
	}
	if err != nil {
		s.log.Error("could not enqueue the job's webhook", "job", j.ID, "err", err)
	}
}
