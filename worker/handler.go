package worker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/hibiken/asynq"

	"github.com/keyq/keyq/gemini"
	"github.com/keyq/keyq/keyring"
	"github.com/keyq/keyq/metrics"
	"github.com/keyq/keyq/tasks"
	"github.com/keyq/keyq/usage"
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
	// Retries bounds a job run to min(Retries+1, 2 x keys) attempts per
	// model, as the original in-process fix did. 0 means DefaultRetries
	// (5); NoRetries means a single attempt.
	Retries int
	// RetryDelay is the wait before switching to the next key. 0 means
	// DefaultRetryDelay (1s).
	RetryDelay time.Duration
	// Logger receives the [Gemini] lines operators know. Default slog.Default().
	Logger *slog.Logger
	// Fallbacks are the models after the first (NewHandler's) in the
	// fallback chain (GEMINI_MODEL), in order. None: one model.
	Fallbacks []Model
	// Extra are models a job may name ("model") besides those of the
	// chain (GEMINI_MODELS_ALLOWED).
	Extra []Model
	// Usage, if set, sums every billed answer's tokens. It, and each
	// model's Ring, must use the Redis client given to New: a success's
	// report and usage go on that client's pipeline with the result.
	Usage *usage.Store
}

// Model is one model a Handler calls: its client and its own key pool
// (a keyring.Ring whose Pool is the model's name).
type Model struct {
	Client *gemini.Client
	Ring   *keyring.Ring
}

// Name is the model's name.
func (m Model) Name() string { return m.Client.Model() }

func (o HandlerOptions) validate() error {
	if o.Retries < NoRetries || o.RetryDelay < 0 {
		return fmt.Errorf("worker: Retries must be 0 (default %d) or more, or NoRetries, and RetryDelay must not be negative", DefaultRetries)
	}
	for _, m := range append(slices.Clone(o.Fallbacks), o.Extra...) {
		if m.Client == nil || m.Ring == nil {
			return errors.New("worker: every fallback and extra model needs a Gemini client and a keyring")
		}
	}
	return nil
}

// Handler runs the jobs of every task type of tasks.Kinds. It is an
// asynq.Handler.
type Handler struct {
	results    results // set by New: where a run finds an earlier run's result
	alerts     *Alerts // set by New: the operator's alert webhook, or nil
	chain      []Model // the fallback chain; chain[0] is the default model
	extra      []Model
	usage      *usage.Store
	retries    int
	retryDelay time.Duration
	log        *slog.Logger
}

// NewHandler makes a Handler that calls gem with keys from ring, then the
// fallbacks of opts.
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
		chain:      append([]Model{{Client: gem, Ring: ring}}, opts.Fallbacks...),
		extra:      opts.Extra,
		usage:      opts.Usage,
		retries:    retries,
		retryDelay: cmp.Or(opts.RetryDelay, DefaultRetryDelay),
		log:        cmp.Or(opts.Logger, slog.Default()),
	}, nil
}

// MaxAttempts is how many upstream calls one job run may make now on the
// first model: the original fix's min(retries+1, 2 x keys), following
// reloads of the keys.
func (h *Handler) MaxAttempts() int { return h.maxAttempts(h.chain[0]) }

func (h *Handler) maxAttempts(m Model) int { return min(h.retries+1, 2*m.Ring.Len()) }

// Models returns every model the handler may call: the chain, then the extras.
func (h *Handler) Models() []Model { return append(slices.Clone(h.chain), h.extra...) }

// Allowed is the names of the models a job may name.
func (h *Handler) Allowed() []string {
	var out []string
	for _, m := range h.Models() {
		out = append(out, m.Name())
	}
	return out
}

// modelsFor is the chain a job runs along: the whole fallback chain, or
// only the model the job named.
func (h *Handler) modelsFor(o tasks.JobOptions) ([]Model, error) {
	if o.Model == "" {
		return h.chain, nil
	}
	if err := o.CheckModel(h.Allowed()); err != nil {
		return nil, err
	}
	for _, m := range h.Models() {
		if m.Name() == o.Model {
			return []Model{m}, nil
		}
	}
	return nil, errors.New("unreachable")
}

// ProcessTask runs one job run of a task of any registered type.
func (h *Handler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	id, _ := asynq.GetTaskID(ctx)
	log := h.log.With("job", id)
	job, models, err := h.parse(t)
	if err != nil {
		return &tasks.JobError{Class: tasks.ClassBadPayload, Message: err.Error(), Final: true}
	}
	res, paid, err := h.run(ctx, log, runOf{job: job, models: models, owner: t.Headers()[tasks.HeaderOwner], pinned: job.Options().Model != ""})
	if err != nil {
		return finalIfLastRun(ctx, err)
	}
	b, err := json.Marshal(res)
	if err != nil { // the call was paid for all the same
		h.settle(ctx, log, paid)
		return err
	}
	return h.storeResult(ctx, log, t.ResultWriter(), b, paid)
}

// parse reads a task's payload with its registered kind and finds the
// models it may run on.
func (h *Handler) parse(t *asynq.Task) (tasks.Runnable, []Model, error) {
	kind, ok := tasks.KindOf(t.Type())
	if !ok {
		return nil, nil, fmt.Errorf("no task type %q", t.Type())
	}
	job, err := kind.Parse(t.Payload())
	if err != nil {
		return nil, nil, err
	}
	models, err := h.modelsFor(job.Options())
	return job, models, err
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

// runOf is one job run: the job, the models it may use in order, the API
// token that made it ("" = open API), and whether it named its model.
type runOf struct {
	job    tasks.Runnable
	models []Model
	owner  string
	pinned bool
}

// run tries the models of the run in order: a model that is gone (404) or
// out of its daily quota on every project passes the job to the next.
func (h *Handler) run(ctx context.Context, log *slog.Logger, r runOf) (*tasks.Result, *paidCall, error) {
	req, err := r.job.Request()
	if err != nil {
		return nil, nil, &tasks.JobError{Class: tasks.ClassBadPayload, Message: err.Error(), Final: true}
	}
	start := time.Now()
	for i, m := range r.models {
		next := i+1 < len(r.models)
		res, paid, err := h.runModel(ctx, log, r, m, req, next)
		if errors.Is(err, errNextModel) {
			log.Warn(fmt.Sprintf("[Gemini] Model %s cannot answer (%s); moving to %s", m.Name(), errors.Unwrap(err), r.models[i+1].Name()),
				"model", m.Name())
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		res.Model, res.DurationMS = m.Name(), time.Since(start).Milliseconds()
		if !r.pinned {
			res.ChainPosition = i + 1
		}
		return res, paid, nil
	}
	return nil, nil, errors.New("unreachable: the last model never passes the job on")
}

// errNextModel wraps why a model passes the job to the next of the chain.
var errNextModel = errors.New("next model")

type nextModelError struct{ why string }

func (e *nextModelError) Error() string        { return e.why }
func (e *nextModelError) Is(target error) bool { return target == errNextModel }
func (e *nextModelError) Unwrap() error        { return errors.New(e.why) }

// runModel is one model's share of a run: up to maxAttempts calls over
// its rotation, each answer judged by judge (judge.go). The successful
// call's report and usage are left to the result's write (paidCall).
func (h *Handler) runModel(ctx context.Context, log *slog.Logger, r runOf, m Model, req *gemini.Request, next bool) (*tasks.Result, *paidCall, error) {
	a := attempt{max: h.maxAttempts(m), requestBytes: requestSize(req), nextModel: next}
	var passed rounds
	for a.n = 1; ; a.n++ {
		if a.n > 1 {
			log.Info(fmt.Sprintf("[Gemini] Retrying with next key in %dms...", h.retryDelay.Milliseconds()))
			if err := sleep(ctx, h.retryDelay); err != nil {
				return nil, nil, err
			}
		}
		key, err := h.pick(ctx, log, m.Ring, passed.skip(m.Ring.Len()), next)
		if err != nil {
			return nil, nil, err
		}
		a.key = key.Name()
		log.Info(fmt.Sprintf("[Gemini] Using API Key %s (attempt %d/%d)", key.Name(), a.n, a.max), "key", key)
		res, ge, err := h.call(ctx, log, r, m, key, req)
		if err != nil {
			// Shutdown, JOB_TIMEOUT or a failure that is not an answer:
			// not the key's doing, and asynq decides what happens next.
			return nil, nil, err
		}
		if ge != nil {
			log.Warn(fmt.Sprintf("[Gemini] API Key %s failed (%s): %s", key.Name(), statusOrClass(ge), ge.Message),
				"key", key, "class", string(ge.Class))
		}
		v := judge(ge, a, time.Now(), rand.Float64())
		if v.step != stepSucceed {
			h.report(ctx, log, m.Ring, key, v.outcome)
		}
		if v.alert != "" {
			log.Error(v.alert, "key", key)
		}
		switch v.step {
		case stepSucceed:
			log.Info(fmt.Sprintf("[Gemini] API Key %s succeeded (attempt %d/%d)", key.Name(), a.n, a.max),
				"key", key, "tokens", res.Usage.TotalTokens)
			res.Attempts = a.n
			return res, &paidCall{ring: m.Ring, key: key, outcome: v.outcome, usage: h.usageEntry(m, key, r, gemini.Usage(res.Usage))}, nil
		case stepNextModel:
			return nil, nil, &nextModelError{why: v.err.Error()}
		case stepGiveUp, stepFail:
			return nil, nil, v.err
		}
		passed.add(key, v.keyBad)
		if ge.Class == gemini.ClassUnusable {
			a.unusable++
		}
	}
}

// call makes one upstream call with key, records its usage, and reads the
// answer with the job's task type. An answer that is not usable comes back
// as ge; err is set only when there is no answer to judge (the run's
// context is done).
func (h *Handler) call(ctx context.Context, log *slog.Logger, r runOf, m Model, key keyring.Key, req *gemini.Request) (res *tasks.Result, ge *gemini.Error, err error) {
	called := time.Now()
	resp, err := m.Client.Generate(ctx, key.Secret(), req)
	var used *gemini.Usage
	if err == nil {
		used = &resp.Usage
		res = &tasks.Result{Usage: tasks.Usage(resp.Usage), Key: key.Name(), KeyFingerprint: key.Fingerprint,
			ModelVersion: resp.ModelVersion, Tier: r.job.Options().Tier}
		if res.Tier == tasks.TierStandard {
			res.Tier = ""
		}
		if rerr := r.job.Read(resp, res); rerr != nil {
			err = &gemini.Error{Class: gemini.ClassUnusable, HTTPStatus: 200, Message: rerr.Error()}
		}
	} else if errors.As(err, &ge) {
		used = ge.Usage
	}
	metrics.ObserveUpstream(upstreamClass(err), time.Since(called))
	metrics.ObserveCall(m.Name(), upstreamClass(err))
	if used != nil {
		metrics.ObserveTokens(m.Name(), used.PromptTokens, used.CandidatesTokens, used.ThoughtsTokens, used.CachedTokens)
	}
	if used != nil && err != nil {
		h.record(ctx, log, h.usageEntry(m, key, r, *used)) // a success's goes with its result
	}
	switch {
	case err == nil:
		return res, nil, nil
	case ctx.Err() != nil:
		return nil, nil, ctx.Err()
	case errors.As(err, &ge):
		return nil, ge, nil
	}
	return nil, nil, err
}

// record sums a billed answer's tokens in Redis, per key, project, model,
// day and API token.
func (h *Handler) record(ctx context.Context, log *slog.Logger, e *usage.Entry) {
	if e == nil {
		return
	}
	if err := h.usage.Record(ctx, *e); err != nil {
		log.Warn("could not record the answer's token usage", "err", err)
	}
}

// usageEntry is what record sums for one answer; nil without a usage store.
func (h *Handler) usageEntry(m Model, key keyring.Key, r runOf, u gemini.Usage) *usage.Entry {
	if h.usage == nil {
		return nil
	}
	tier := r.job.Options().Tier
	if tier == tasks.TierStandard {
		tier = ""
	}
	return &usage.Entry{Model: m.Name(), Tier: tier, Project: key.Project, Key: key.Fingerprint, Token: r.owner,
		Prompt: u.PromptTokens, Candidates: u.CandidatesTokens, Thoughts: u.ThoughtsTokens, Cached: u.CachedTokens, Total: u.TotalTokens}
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
// With next, a pool whose every project is out of its daily quota passes
// the job to the next model (judgeNoKey).
func (h *Handler) pick(ctx context.Context, log *slog.Logger, ring *keyring.Ring, tried *keyring.Skip, next bool) (keyring.Key, error) {
	for {
		key, err := ring.Pick(ctx, tried)
		var nk *keyring.NoKeyError
		if !errors.As(err, &nk) {
			return key, err
		}
		if next && judgeNoKey(nk, time.Now()) {
			return key, &nextModelError{why: "every project is out of its daily quota: " + nk.Error()}
		}
		if nk.RetryAfter < 0 {
			return key, &tasks.JobError{Class: tasks.ClassNoKey, Message: nk.Error()}
		}
		if nk.RetryAfter > maxInlineWait {
			h.noKey(ring, nk)
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
func (h *Handler) report(ctx context.Context, log *slog.Logger, ring *keyring.Ring, key keyring.Key, o keyring.Outcome) {
	c, err := ring.Report(ctx, key, o)
	h.reported(log, ring, key, o, c, err)
}

// reported logs a report's failure or the change of state it caused.
func (h *Handler) reported(log *slog.Logger, ring *keyring.Ring, key keyring.Key, o keyring.Outcome, c keyring.Change, err error) {
	if err != nil {
		log.Warn("could not record the key's outcome", "key", key, "err", err)
		return
	}
	if c.State == "" {
		return
	}
	h.event(ring, key, c, o)
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

// requestSize is the request's text size in bytes, for a token estimate;
// 0 for a raw body (its size is mostly inline data), which never counts
// as too large for a per-minute quota.
func requestSize(req *gemini.Request) int {
	if req.Raw != nil {
		return 0
	}
	n := len(req.SystemInstruction)
	for _, t := range req.Text {
		n += len(t)
	}
	return n
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
