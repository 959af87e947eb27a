package worker

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/internal/jobstore"
	"github.com/keyq/keyq/keyring"
	"github.com/keyq/keyq/metrics"
	"github.com/keyq/keyq/tasks"
	"github.com/keyq/keyq/webhook"
)

// Defaults for Options.
const (
	DefaultConcurrency   = 20
	DefaultJobRetryDelay = 15 * time.Second
	// DefaultTaskCheckInterval is how often an idle worker asks for a new
	// job. asynq's 1s left a new job queued ~600 ms (p50) on an idle
	// fleet; 100ms makes it ~55 ms for ~55 more Redis commands/s per idle
	// worker process (bench/RESULTS-clients.md).
	DefaultTaskCheckInterval = 100 * time.Millisecond
	maxJobRetryDelay         = 10 * time.Minute
)

// Options configure a Worker.
type Options struct {
	// Concurrency is how many jobs run at once. Default 20: the calls are
	// slow and I/O bound.
	Concurrency int
	// JobRetryDelay is the wait before a job's first retry after a whole
	// run failed; it doubles on each retry, up to 10 minutes, with jitter.
	// Default 15s.
	JobRetryDelay time.Duration
	// ShutdownTimeout is how long Shutdown lets running jobs finish before
	// putting them back in the queue. Give it more than one upstream call
	// plus the retry delay, or a slow call is cut and run again.
	// Default 8s (asynq's).
	ShutdownTimeout time.Duration
	// PollInterval is how often due retries are moved back to the queue.
	// Default 5s (asynq's); tests shorten it.
	PollInterval time.Duration
	// ProbeInterval is how often the worker looks for disabled keys due
	// for a probe. Default 30s.
	ProbeInterval time.Duration
	// Alerts, if not nil, receives key and pool events (NewAlerts).
	Alerts *Alerts
	// Logger gets asynq's own messages and failed runs. Default slog.Default().
	Logger *slog.Logger
	// TaskCheckInterval is how often an idle worker asks Redis for a new
	// job or webhook delivery (asynq's TaskCheckInterval; it waits half to
	// one and a half of it). Default DefaultTaskCheckInterval (100ms).
	TaskCheckInterval time.Duration
	// WebhookSecrets sign webhook deliveries (WEBHOOK_SECRET). None: this
	// worker delivers no webhooks; they wait for a worker that can.
	WebhookSecrets []webhook.Secret
	// WebhookAllowPrivate lets callbacks reach loopback and private
	// addresses. Default false.
	WebhookAllowPrivate bool
	// WebhookConcurrency is how many deliveries run at once, apart from
	// the jobs' slots. Default 10.
	WebhookConcurrency int
	// WebhookRetryDelay is the wait before a delivery's first retry; it
	// doubles up to an hour, for 24 hours. Default 5s; tests shorten it.
	WebhookRetryDelay time.Duration
}

func (o Options) taskCheckInterval() time.Duration {
	return cmp.Or(o.TaskCheckInterval, DefaultTaskCheckInterval)
}

func (o Options) webhookConcurrency() int {
	return cmp.Or(o.WebhookConcurrency, DefaultWebhookConcurrency)
}

// asynqRedis is the Redis client asynq servers share.
type asynqRedis = redis.UniversalClient

// Worker takes jobs from Redis and runs them with a Handler.
type Worker struct {
	srv        *asynq.Server
	hooks      *asynq.Server // webhook deliveries; nil without secrets
	deliverer  *deliverer
	life       *lifecycle
	handler    *Handler
	probeEvery time.Duration
	stopProbes context.CancelFunc
}

// New makes a worker on rdb; Start starts it. rdb stays the caller's to close.
func New(rdb redis.UniversalClient, h *Handler, opts Options) (*Worker, error) {
	if rdb == nil || h == nil {
		return nil, errors.New("worker: New needs a Redis client and a Handler")
	}
	if opts.Concurrency < 0 || opts.JobRetryDelay < 0 || opts.ShutdownTimeout < 0 || opts.ProbeInterval < 0 ||
		opts.TaskCheckInterval < 0 || opts.WebhookConcurrency < 0 {
		return nil, errors.New("worker: Concurrency, JobRetryDelay, ShutdownTimeout, ProbeInterval, TaskCheckInterval and WebhookConcurrency must not be negative")
	}
	log := cmp.Or(opts.Logger, slog.Default())
	h.results = results{rdb: rdb}
	h.alerts = opts.Alerts
	for _, m := range h.Models() {
		metrics.InitKeyEvents(m.Ring.Pool(), EventDisabled, EventLeaked, EventCooled, EventPaused)
	}
	base := cmp.Or(opts.JobRetryDelay, DefaultJobRetryDelay)
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:    cmp.Or(opts.Concurrency, DefaultConcurrency),
		Queues:         map[string]int{tasks.Queue: 1},
		RetryDelayFunc: func(n int, err error, _ *asynq.Task) time.Duration { return retryDelay(base, n, err) },
		// Waiting for a key to come back is not a failure of the job: it
		// does not spend a retry.
		// Neither is a lease that expired under a worker that died: the
		// job runs again at once (retryDelay) without spending a retry.
		IsFailure:                isFailure,
		TaskCheckInterval:        opts.taskCheckInterval(),
		ShutdownTimeout:          opts.ShutdownTimeout,
		DelayedTaskCheckInterval: opts.PollInterval,
		Logger:                   asynqLogger{log},
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			id, _ := asynq.GetTaskID(ctx)
			retried, _ := asynq.GetRetryCount(ctx)
			maxRetry, _ := asynq.GetMaxRetry(ctx)
			log.Warn("job run failed", "job", id, "run", retried+1, "max_runs", tasks.MaxRuns(maxRetry), "err", err)
		}),
	})
	w := &Worker{srv: srv, handler: h, probeEvery: cmp.Or(opts.ProbeInterval, DefaultProbeInterval)}
	store := jobstore.New(rdb)
	w.life = &lifecycle{store: store, client: asynq.NewClientFromRedisClient(rdb), log: log}
	if len(opts.WebhookSecrets) > 0 {
		w.hooks = newWebhookServer(rdb, opts, log)
		w.deliverer = &deliverer{store: store, secrets: opts.WebhookSecrets, log: log, now: time.Now,
			client: webhook.NewClient(webhook.ClientOptions{AllowPrivate: opts.WebhookAllowPrivate})}
	}
	return w, nil
}

// isFailure: waiting for a key, a lease that lapsed under a dead worker and
// a cancel of the running task (which the next run refuses) spend no retry.
func isFailure(err error) bool {
	return !waitingForKey(err) && !errors.Is(err, asynq.ErrLeaseExpired) && !isCancel(err)
}

// Start begins taking jobs and probing disabled keys; it returns once the
// worker runs.
func (w *Worker) Start() error {
	mux := asynq.NewServeMux()
	mux.Use(metrics.JobMiddleware, w.life.middleware)
	for _, k := range tasks.Kinds() { // every registered task type
		mux.Handle(k.Type, w.handler)
	}
	if err := w.srv.Start(mux); err != nil {
		return err
	}
	if w.hooks != nil {
		hooks := asynq.NewServeMux()
		hooks.Handle(tasks.TypeDeliverWebhook, w.deliverer)
		if err := w.hooks.Start(hooks); err != nil {
			w.srv.Shutdown()
			return err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.stopProbes = cancel
	go w.handler.probeLoop(ctx, w.probeEvery)
	go w.watchMembership(ctx, w.probeEvery)
	return nil
}

// Shutdown stops taking jobs and waits up to ShutdownTimeout for running
// ones; those still running then go back to the queue.
func (w *Worker) Shutdown() {
	if w.stopProbes != nil {
		w.stopProbes()
	}
	w.srv.Shutdown()
	if w.hooks != nil {
		w.hooks.Shutdown()
	}
}

// retryDelay is when a job runs again: at once after its worker died (the
// lease expired), when the first key is back if it
// waits for one, else after a backoff.
func retryDelay(base time.Duration, n int, err error) time.Duration {
	if errors.Is(err, asynq.ErrLeaseExpired) || isCancel(err) {
		return 0 // a cancelled job's next run is refused at once (cancel.go)
	}
	var nk *keyring.NoKeyError
	if errors.As(err, &nk) && nk.RetryAfter >= 0 {
		// Spread the jobs that wait for the same moment over a second.
		return nk.RetryAfter + time.Duration(rand.Int64N(int64(time.Second)))
	}
	return backoff(base, n)
}

func waitingForKey(err error) bool {
	var nk *keyring.NoKeyError
	return errors.As(err, &nk) && nk.RetryAfter >= 0
}

// backoff is base x 2^(n) up to maxJobRetryDelay, minus up to a quarter at
// random so that jobs failed together do not come back together.
func backoff(base time.Duration, n int) time.Duration {
	d := base << min(n, 20)
	if d <= 0 || d > maxJobRetryDelay {
		d = maxJobRetryDelay
	}
	return d - time.Duration(rand.Int64N(int64(d)/4+1))
}
