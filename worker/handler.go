package worker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"

	"github.com/keyq/keyq/gemini"
	"github.com/keyq/keyq/keyring"
	"github.com/keyq/keyq/metrics"
	"github.com/keyq/keyq/tasks"
)

// Defaults for HandlerOptions.
const (
	DefaultRetries    = 5
	DefaultRetryDelay = time.Second
	// NoRetries as HandlerOptions.Retries makes one attempt per run.
	NoRetries = -1
)

// HandlerOptions configure a Handler. The zero value uses the defaults.
type HandlerOptions struct {
	// Retries bounds a job run to min(Retries+1, 2 x keys) attempts, as
	// the original in-process fix did. 0 means DefaultRetries (5);
	// NoRetries means a single attempt.
	Retries int
	// RetryDelay is the wait before switching to the next key. 0 means
	// DefaultRetryDelay (1s).
	RetryDelay time.Duration
	// Logger receives the [Gemini] lines operators know. Default slog.Default().
	Logger *slog.Logger
}

func (o HandlerOptions) validate() error {
	if o.Retries < NoRetries || o.RetryDelay < 0 {
		return fmt.Errorf("worker: Retries must be 0 (default %d) or more, or NoRetries, and RetryDelay must not be negative", DefaultRetries)
	}
	return nil
}

// Handler runs analyze-character tasks. It is an asynq.Handler.
type Handler struct {
	results    results // set by New: where a run finds an earlier run's result
	alerts     *Alerts // set by New: the operator's alert webhook, or nil
	gem        *gemini.Client
	ring       *keyring.Ring
	retries    int
	retryDelay time.Duration
	log        *slog.Logger
}

// NewHandler makes a Handler that calls gem with keys from ring.
func NewHandler(gem *gemini.Client, ring *keyring.Ring, opts HandlerOptions) (*Handler, error) {
	if gem == nil || ring == nil {
		return nil, errors.New("worker: NewHandler needs a Gemini client and a keyring")
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	retries := cmp.Or(opts.Retries, DefaultRetries)
	if opts.Retries == NoRetries {
		retries = 0
	}
	return &Handler{
		gem:        gem,
		ring:       ring,
		retries:    retries,
		retryDelay: cmp.Or(opts.RetryDelay, DefaultRetryDelay),
		log:        cmp.Or(opts.Logger, slog.Default()),
	}, nil
}

// MaxAttempts is how many upstream calls one job run may make now: the
// original fix's min(retries+1, 2 x keys), following reloads of the keys.
func (h *Handler) MaxAttempts() int { return min(h.retries+1, 2*h.ring.Len()) }

// ProcessTask runs one job run of an analyze-character task.
func (h *Handler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	id, _ := asynq.GetTaskID(ctx)
	log := h.log.With("job", id)
	p, err := tasks.ParseAnalyzeCharacter(t.Payload())
	if err != nil {
		return &tasks.JobError{Class: tasks.ClassBadPayload, Message: err.Error(), Final: true}
	}
	if h.results.rdb != nil {
		if prev, err := h.results.stored(ctx, id); err != nil {
			return fmt.Errorf("look for an earlier run's result: %w", err)
		} else if prev != nil {
			log.Info("an earlier run of this job stored its result; finishing with it without calling Gemini again")
			return nil
		}
	}
	res, err := h.analyze(ctx, log, p)
	if err != nil {
		return finalIfLastRun(ctx, err)
	}
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	return h.storeResult(ctx, log, id, t.ResultWriter(), b)
}

// storeResult writes the result, retrying while Redis is briefly away and
// the job has time: the answer is paid for, and a failed write would have
// asynq run the job, and bill the call, again. A job that is gone from
// Redis gets no result (an orphan hash would answer polls forever).
func (h *Handler) storeResult(ctx context.Context, log *slog.Logger, id string, w *asynq.ResultWriter, b []byte) error {
	wait := 100 * time.Millisecond
	for {
		var err error
		if h.results.rdb != nil {
			err = h.results.store(ctx, id, b)
		} else {
			_, err = w.Write(b)
		}
		switch {
		case err == nil:
			return nil
		case errors.Is(err, errTaskGone):
			log.Warn(err.Error())
			return nil
		}
		log.Warn("could not store the result; trying again", "err", err, "in", wait)
		if err := sleep(ctx, wait); err != nil {
			return fmt.Errorf("store result: %w", err)
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// finalIfLastRun makes the failure of a job's last run final (see
// tasks.LastRun); waiting for a key is never a failure.
func finalIfLastRun(ctx context.Context, err error) error {
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	// Cancelled means shutdown: asynq puts the job back, it did not fail.
	if waitingForKey(err) || errors.Is(err, context.Canceled) || !tasks.LastRun(retried, maxRetry) {
		return err
	}
	var je *tasks.JobError
	if errors.As(err, &je) {
		je.Final = true
		return je
	}
	class := tasks.ClassWorker
	if errors.Is(err, context.DeadlineExceeded) {
		class = tasks.ClassTimeout
	}
	return &tasks.JobError{Class: class, Message: err.Error(), Final: true}
}

// analyze is one job run: up to MaxAttempts calls over the rotation, each
// answer judged by judge (judge.go).
func (h *Handler) analyze(ctx context.Context, log *slog.Logger, p tasks.AnalyzeCharacter) (*tasks.Result, error) {
	req, err := request(p)
	if err != nil {
		return nil, &tasks.JobError{Class: tasks.ClassBadPayload, Message: err.Error(), Final: true}
	}
	start := time.Now()
	a := attempt{max: h.MaxAttempts(), requestBytes: requestSize(req)}
	var passed rounds
	for a.n = 1; ; a.n++ {
		if a.n > 1 {
			log.Info(fmt.Sprintf("[Gemini] Retrying with next key in %dms...", h.retryDelay.Milliseconds()))
			if err := sleep(ctx, h.retryDelay); err != nil {
				return nil, err
			}
		}
		key, err := h.pick(ctx, log, passed.skip(h.ring.Len()))
		if err != nil {
			return nil, err
		}
		a.key = key.Name()
		log.Info(fmt.Sprintf("[Gemini] Using API Key %s (attempt %d/%d)", key.Name(), a.n, a.max), "key", key)
		resp, analysis, ge, err := h.call(ctx, key, req)
		if err != nil {
			// Shutdown, JOB_TIMEOUT or a failure that is not an answer:
			// not the key's doing, and asynq decides what happens next.
			return nil, err
		}
		if ge != nil {
			log.Warn(fmt.Sprintf("[Gemini] API Key %s failed (%s): %s", key.Name(), statusOrClass(ge), ge.Message),
				"key", key, "class", string(ge.Class))
		}
		v := judge(ge, a, time.Now(), rand.Float64())
		h.report(ctx, log, key, v.outcome)
		if v.alert != "" {
			log.Error(v.alert, "key", key)
		}
		switch v.step {
		case stepSucceed:
			log.Info(fmt.Sprintf("[Gemini] API Key %s succeeded (attempt %d/%d)", key.Name(), a.n, a.max),
				"key", key, "tokens", resp.Usage.TotalTokens)
			return &tasks.Result{
				Analysis:       analysis,
				Model:          cmp.Or(resp.ModelVersion, h.gem.Model()),
				Usage:          tasks.Usage(resp.Usage),
				Key:            key.Name(),
				KeyFingerprint: key.Fingerprint,
				Attempts:       a.n,
				DurationMS:     time.Since(start).Milliseconds(),
			}, nil
		case stepGiveUp, stepFail:
			return nil, v.err
		}
		passed.add(key, v.keyBad)
		if ge.Class == gemini.ClassUnusable {
			a.unusable++
		}
	}
}

// call makes one upstream call with key and checks the answer against the
// analysis schema. An answer that is not usable comes back as ge; err is
// set only when there is no answer to judge (the run's context is done).
func (h *Handler) call(ctx context.Context, key keyring.Key, req *gemini.Request) (resp *gemini.Response, a tasks.CharacterAnalysis, ge *gemini.Error, err error) {
	called := time.Now()
	resp, err = h.gem.Generate(ctx, key.Secret(), req)
	if err == nil {
		if a, err = tasks.ParseAnalysis(resp.Text); err != nil {
			err = &gemini.Error{Class: gemini.ClassUnusable, HTTPStatus: 200, Message: err.Error()}
		}
	}
	metrics.ObserveUpstream(upstreamClass(err), time.Since(called))
	switch {
	case err == nil:
		return resp, a, nil, nil
	case ctx.Err() != nil:
		return nil, a, nil, ctx.Err()
	case errors.As(err, &ge):
		return nil, a, ge, nil
	}
	return nil, a, nil, err
}

// upstreamClass labels a call's latency: "ok" or the failure's class.
func upstreamClass(err error) string {
	var ge *gemini.Error
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &ge):
		return string(ge.Class)
	}
	return "error"
}

// maxInlineWait is the longest a job run waits in place for a key to come
// back; longer waits go back to asynq, freeing the worker.
const maxInlineWait = 2 * time.Second

// pick takes the next key for this run. When none is usable it waits in
// place for a short while, or else hands the job back to asynq to run again
// when the first key is back, without spending a retry (see Worker).
func (h *Handler) pick(ctx context.Context, log *slog.Logger, tried *keyring.Skip) (keyring.Key, error) {
	for {
		key, err := h.ring.Pick(ctx, tried)
		var nk *keyring.NoKeyError
		if !errors.As(err, &nk) {
			return key, err
		}
		if nk.RetryAfter < 0 {
			return key, &tasks.JobError{Class: tasks.ClassNoKey, Message: nk.Error()}
		}
		if nk.RetryAfter > maxInlineWait {
			h.noKey(nk)
			log.Info("[Gemini] No key can be used now: the job waits", "retry_after", nk.RetryAfter.Round(time.Millisecond), "reason", nk.Reason)
			return key, &tasks.JobError{Class: tasks.ClassWaitingForKey, Message: nk.Error(), Cause: nk}
		}
		if err := sleep(ctx, nk.RetryAfter); err != nil {
			return key, err
		}
	}
}

// report tells the keyring how a call went and logs any change of state.
// A failure to record is logged, not fatal: the job's answer matters more.
func (h *Handler) report(ctx context.Context, log *slog.Logger, key keyring.Key, o keyring.Outcome) {
	c, err := h.ring.Report(ctx, key, o)
	if err != nil {
		log.Warn("could not record the key's outcome", "key", key, "err", err)
		return
	}
	if c.State == "" {
		return
	}
	h.event(key, c, o)
	left := time.Until(c.Until).Round(time.Second)
	switch c.State {
	case keyring.StateCooling:
		who := ""
		if o.Kind == keyring.CoolProject {
			who = ", project " + key.Project
		}
		log.Warn(fmt.Sprintf("[Gemini] API Key %s cooling down for %s (%s%s)", key.Name(), left, c.Reason, who), "key", key, "until", c.Until)
	case keyring.StateDisabled:
		next := " until an operator enables it"
		if !c.Until.IsZero() {
			next = "; probed again in " + left.String()
		}
		log.Warn(fmt.Sprintf("[Gemini] API Key %s disabled (%s)%s", key.Name(), c.Reason, next), "key", key)
	case "paused":
		log.Warn(fmt.Sprintf("[Gemini] Key pool paused for %s (%s)", left, c.Reason))
	}
}

// requestSize is the request's size in bytes, for a token estimate.
func requestSize(req *gemini.Request) int {
	n := len(req.SystemInstruction)
	for _, t := range req.Text {
		n += len(t)
	}
	return n
}

func request(p tasks.AnalyzeCharacter) (*gemini.Request, error) {
	system, user, err := tasks.Prompt(p)
	if err != nil {
		return nil, err
	}
	req := &gemini.Request{SystemInstruction: system, Text: []string{user}, ResponseSchema: tasks.AnalysisSchema}
	if p.Image != nil {
		req.Images = []gemini.InlineData{{MIMEType: p.Image.MIMEType, Data: p.Image.Data}}
	}
	return req, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
