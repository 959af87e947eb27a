package api

import (
	"context"
	"net/http"
	"strconv"

	"github.com/keyq/keyq/internal/jobstore"
	"github.com/keyq/keyq/tasks"
)

// Bounds of GET /api/jobs.
const (
	defaultListLimit = 20
	maxListLimit     = 100
	// maxListScan bounds the index entries one page reads when a status
	// filter skips most of them; the cursor then resumes after them.
	maxListScan = 1000
)

// listJobs answers GET /api/jobs?status=&limit=&cursor=: the caller's jobs,
// newest first, from its owner's index (a sorted set written at submission).
func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, err := listLimit(q.Get("limit"))
	if err != nil {
		return err
	}
	want := tasks.Status(q.Get("status"))
	if want != "" && !knownStatus(want) {
		return &Error{Code: CodeInvalidRequest, Field: "status", Message: "status must be queued, running, retrying, succeeded, failed or cancelled"}
	}
	var after *jobstore.Cursor
	if c := q.Get("cursor"); c != "" {
		cur, err := jobstore.ParseCursor(c)
		if err != nil {
			return &Error{Code: CodeInvalidRequest, Field: "cursor", Message: err.Error()}
		}
		after = &cur
	}
	list, err := s.listPage(r.Context(), r, want, after, limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

func listLimit(v string) (int, error) {
	if v == "" {
		return defaultListLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxListLimit {
		return 0, &Error{Code: CodeInvalidRequest, Field: "limit", Message: "limit must be 1 to 100"}
	}
	return n, nil
}

func knownStatus(s tasks.Status) bool {
	switch s {
	case tasks.StatusQueued, tasks.StatusRunning, tasks.StatusRetrying,
		tasks.StatusSucceeded, tasks.StatusFailed, tasks.StatusCancelled:
		return true
	}
	return false
}

// listPage reads the owner's index page by page, keeping the jobs that
// still exist and have the wanted status, until limit are found, the index
// ends, or maxListScan entries were read.
func (s *Server) listPage(ctx context.Context, r *http.Request, want tasks.Status, after *jobstore.Cursor, limit int) (tasks.JobList, error) {
	out := tasks.JobList{Jobs: []tasks.Job{}}
	for scanned := 0; scanned < maxListScan; {
		entries, err := s.cl.store.Page(ctx, ownerOf(r), after, limit)
		if err != nil {
			return out, redisErr(err)
		}
		for _, e := range entries {
			scanned++
			after = &jobstore.Cursor{Score: e.Score, ID: e.ID}
			j, _, err := s.readJob(ctx, r, e.ID)
			switch {
			case isNotFound(err):
				continue // past its retention
			case err != nil:
				return out, err
			case want != "" && j.Status != want:
				continue
			}
			j.Result = nil // lists are light: GET the job for its result
			if out.Jobs = append(out.Jobs, j); len(out.Jobs) == limit {
				out.NextCursor = after.String()
				return out, nil
			}
		}
		if len(entries) < limit {
			return out, nil // the index ends here
		}
	}
	out.NextCursor = after.String()
	return out, nil
}
