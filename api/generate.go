package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/keyq/keyq/tasks"
)

// postGenerate answers POST /api/generate: a Gemini generateContent body
// (plus "model" and "tier") becomes a generate job.
func (s *Server) postGenerate(w http.ResponseWriter, r *http.Request) error {
	var p tasks.Generate
	if err := decodeJSON(w, r, &p); err != nil {
		return generateDecodeError(err)
	}
	timeout := s.timeout
	if p.Flex() {
		timeout = s.models.flexTimeout
	}
	id := newJobID()
	// The body is Google's request shape: the callback rides in the query.
	cb, err := s.cl.callbackFor(r.Context(), r, r.URL.Query().Get("callback_url"))
	if err != nil {
		return err
	}
	headers := s.jobHeaders(r, cb, "", time.Now())
	task, err := tasks.NewGenerateTask(p)
	if err != nil {
		return err
	}
	task = asynq.NewTaskWithHeaders(task.Type(), task.Payload(), headers,
		asynq.TaskID(id), asynq.Queue(tasks.Queue),
		asynq.MaxRetry(tasks.AsynqMaxRetry(s.maxRetry)), asynq.Timeout(timeout), asynq.Retention(s.retention))
	ctx, cancel := context.WithTimeout(r.Context(), redisTimeout)
	defer cancel()
	if _, err := s.client.EnqueueContext(ctx, task); err != nil {
		return redisErr(err)
	}
	s.indexJob(ctx, r, id, time.Now())
	w.Header().Set("Location", "/api/jobs/"+id)
	writeJSON(w, http.StatusAccepted, JobAccepted{ID: id, Status: tasks.StatusQueued, StatusURL: "/api/jobs/" + id})
	return nil
}

// generateDecodeError names the generate body's fields in decode errors,
// which otherwise speak of analyze-character's.
func generateDecodeError(err error) error {
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	switch {
	case e.Field == "generationConfig.thinkingConfig" || e.Field == "thinkingConfig":
		e.Field = "generationConfig.thinkingConfig"
		e.Message = "generationConfig.thinkingConfig is set by keyq per model family (GEMINI_THINKING): a fallback may change the family, and Google refuses the other family's field"
	case e.Field == "tools" || e.Field == "toolConfig" || e.Field == "cachedContent":
		e.Message = e.Field + " is not supported: a job cannot answer function calls or hold a cache"
	case strings.HasPrefix(e.Message, "unknown field") && !strings.Contains(e.Field, "."):
		e.Message = strings.SplitN(e.Message, ";", 2)[0] + "; the fields are contents, systemInstruction, generationConfig, safetySettings, model and tier"
	case e.Field == "image.data":
		e.Field, e.Message = "", "an inlineData.data is not standard base64; send the raw base64, without a data: URL prefix"
	}
	return e
}
