package api

import (
	"bufio"
	"encoding/json"
	"net/http"

	"github.com/keyq/keyq/tasks"
)

// getBatchResults streams a batch's items as JSON Lines, in the order they
// were sent: custom_id and the job (id, status, result or error).
func (s *Server) getBatchResults(w http.ResponseWriter, r *http.Request) error {
	rec, err := s.batchOf(r)
	if err != nil {
		return err
	}
	items, err := s.cl.store.Items(r.Context(), rec.ID)
	if err != nil {
		return redisErr(err)
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	defer bw.Flush()
	enc := json.NewEncoder(bw)
	for _, it := range items {
		j, _, err := s.readJob(r.Context(), r, it.JobID)
		switch {
		case isNotFound(err):
			j = Job{ID: it.JobID, Type: tasks.TypeAnalyzeCharacter, Status: "expired"}
		case err != nil:
			// The status is sent: the stream ends with a line that says why.
			_ = enc.Encode(map[string]*Error{"error": {Code: CodeUnavailable, Message: errRedis.Error()}})
			return nil
		}
		if enc.Encode(tasks.BatchResult{CustomID: it.CustomID, Job: j}) != nil {
			return nil
		}
	}
	return nil
}
