package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/internal/jobstore"
	"github.com/keyq/keyq/metrics"
	"github.com/keyq/keyq/tasks"
	"github.com/keyq/keyq/webhook"
)

// clientSide is what spares clients from polling: waiters, webhooks,
// cancel, lists and batches (issue #12).
type clientSide struct {
	store        *jobstore.Store
	index        *indexer // new jobs into their owners' lists
	hub          *hub
	webhooks     bool              // WEBHOOK_SECRET is set: callbacks are accepted
	allowPrivate bool              // callbacks may reach private addresses
	callbacks    map[string]string // token id -> default callback URL
	fallback     time.Duration     // waiters re-read this often
}

// fallbackEvery is how often a waiter re-reads its job in case an event
// was lost (a Redis restart, a dropped pub/sub connection).
const fallbackEvery = 5 * time.Second

func newClientSide(rdb redis.UniversalClient, opts Options, log *slog.Logger) *clientSide {
	c := &clientSide{store: jobstore.New(rdb), index: &indexer{rdb: rdb, retention: cmp.Or(opts.JobRetention, DefaultJobRetention)}, hub: newHub(rdb, log), webhooks: opts.Webhooks,
		allowPrivate: opts.WebhookAllowPrivate, callbacks: map[string]string{},
		fallback: fallbackEvery}
	for tok, u := range opts.TokenCallbacks {
		c.callbacks[TokenID(tok)] = u
	}
	return c
}

// analyzeRequest is the body of POST /api/analyze-character: the job's
// payload and, apart from it (the model never sees it), where to POST the
// job when it is final.
type analyzeRequest struct {
	tasks.AnalyzeCharacter
	CallbackURL string `json:"callback_url,omitempty"`
}

// decodeAnalyzeRequest is decodeJSON for analyzeRequest: the payload's
// fields are named as clients send them ("image.data"), not by the Go
// struct that embeds them.
func decodeAnalyzeRequest(w http.ResponseWriter, r *http.Request, req *analyzeRequest) error {
	err := decodeJSON(w, r, req)
	var ae *Error
	if errors.As(err, &ae) {
		ae.Field = strings.TrimPrefix(ae.Field, embeddedPrefix)
		ae.Message = strings.ReplaceAll(ae.Message, embeddedPrefix, "")
	}
	return err
}

const embeddedPrefix = "AnalyzeCharacter."

// callbackFor is the callback URL of a new job: the request's, else the
// token's default. A URL that leads to an internal address is refused.
func (c *clientSide) callbackFor(ctx context.Context, r *http.Request, given string) (string, error) {
	if given == "" {
		return c.callbacks[ownerOf(r)], nil
	}
	if !c.webhooks {
		return "", &Error{Code: CodeInvalidRequest, Field: "callback_url",
			Message: "callback_url needs webhooks, and this server has no WEBHOOK_SECRET to sign them with"}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := webhook.CheckURL(ctx, given, c.allowPrivate); err != nil {
		return "", &Error{Code: CodeInvalidRequest, Field: "callback_url", Message: "callback_url: " + err.Error()}
	}
	return given, nil
}

// jobHeaders are the task headers of a new job made by request r.
func (s *Server) jobHeaders(r *http.Request, callback, batch string, now time.Time) map[string]string {
	h := metrics.EnqueueHeaders(now)
	if owner := ownerOf(r); owner != "" {
		h[tasks.HeaderOwner] = owner
	}
	if callback != "" {
		h[tasks.HeaderCallbackURL] = callback
	}
	if batch != "" {
		h[tasks.HeaderBatch] = batch
	}
	h[tasks.HeaderRetention] = strconv.FormatInt(int64(s.retention/time.Second), 10)
	return h
}

// submitHeaders checks the request's callback and returns the new job's
// headers (postAnalyzeCharacter).
func (s *Server) submitHeaders(r *http.Request, req analyzeRequest) (map[string]string, error) {
	cb, err := s.cl.callbackFor(r.Context(), r, req.CallbackURL)
	if err != nil {
		return nil, err
	}
	return s.jobHeaders(r, cb, "", time.Now()), nil
}

// indexJob adds a new job to its owner's list (GET /api/jobs). A failure
// is logged: the job exists, it is only missing from lists.
func (s *Server) indexJob(ctx context.Context, r *http.Request, id string, at time.Time) {
	err := s.cl.index.add(ctx, ownerOf(r), jobstore.Indexed{ID: id, Score: at.UnixMicro()})
	if err != nil && ctx.Err() == nil { // else the client left; the write goes on
		s.log.Warn("could not add the job to its owner's list", "job", id, "err", err)
	}
}

// errConflict is a cancel of a job that already ended.
func errConflict(status tasks.Status) error {
	return &Error{Code: CodeConflict, Message: fmt.Sprintf("the job already ended (%s); only unfinished jobs can be cancelled", status)}
}

// ownedBy reports whether the request's token made the job (with no
// tokens every job is everyone's).
func ownedBy(r *http.Request, info *asynq.TaskInfo) bool {
	owner := ownerOf(r)
	return owner == "" || info.Headers[tasks.HeaderOwner] == owner
}

var errNoJob = asynq.ErrTaskNotFound

func isNotFound(err error) bool { return errors.Is(err, asynq.ErrTaskNotFound) }
