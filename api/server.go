package api

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/keyring"
	"github.com/keyq/keyq/metrics"
	"github.com/keyq/keyq/tasks"
)

// redisTimeout bounds every Redis call of a request, so that a dead Redis
// gets a quick 503 rather than a hung client.
const redisTimeout = 3 * time.Second

// KeyAdmin is the key pool as the API sees it: by fingerprint, never a key.
type KeyAdmin interface {
	Statuses(ctx context.Context) ([]keyring.Status, error)
	Page(ctx context.Context, q keyring.Query) (keyring.Page, error)
	Summary(ctx context.Context) (keyring.Summary, error)
	Disable(ctx context.Context, fingerprint, reason string) error
	Enable(ctx context.Context, fingerprint string) error
}

// Server is the HTTP API. Its Handler is safe for concurrent use.
type Server struct {
	rdb       redis.UniversalClient
	client    *asynq.Client
	inspector *asynq.Inspector
	maxRetry  int
	timeout   time.Duration
	retention time.Duration
	log       *slog.Logger
	keys      KeyAdmin
	handler   http.Handler
	maxConns  int

	tokens       secrets
	corsPolicy   corsPolicy
	dashboard    *asynqmon.HTTPHandler // nil: no /monitoring/, no /keys
	dashWritable bool
	dashUser     secrets
	dashPass     secrets
	metrics      http.Handler
	redisLogged  atomic.Int64 // when a Redis outage was last logged at ERROR (unix ns)
	pool         string       // the key pool's name (the model), for pages and metrics
	csrfKey      [32]byte     // signs the /keys console's forms (from the dashboard password)
	models       modelsExt    // models, usage and caps (models.go)
	cl           *clientSide  // waiters, webhooks, cancel, lists, batches
}

// New makes the API on rdb. rdb stays the caller's to close.
func New(rdb redis.UniversalClient, opts Options) (*Server, error) {
	if rdb == nil {
		return nil, errors.New("api: nil Redis client")
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	maxRetry := cmp.Or(opts.JobMaxRetry, DefaultJobMaxRetry)
	if opts.JobMaxRetry == NoJobRetries {
		maxRetry = 0
	}
	s := &Server{
		rdb:       rdb,
		client:    asynq.NewClientFromRedisClient(rdb),
		inspector: asynq.NewInspectorFromRedisClient(rdb),
		maxRetry:  maxRetry,
		timeout:   cmp.Or(opts.JobTimeout, DefaultJobTimeout),
		retention: cmp.Or(opts.JobRetention, DefaultJobRetention),
		log:       cmp.Or(opts.Logger, slog.Default()),
		keys:      opts.Keys,
		pool:      opts.Pool,
		models:    newModelsExt(opts),
		maxConns:  cmp.Or(opts.MaxConns, DefaultMaxConns),
	}
	s.corsPolicy, _ = newCORSPolicy(opts.CORSOrigins) // validated
	s.cl = newClientSide(rdb, opts, s.log)
	s.tokens = newSecrets(opts.Tokens)
	var err error
	if d := opts.Dashboard; d.Password != "" {
		if s.dashboard, err = newDashboard(rdb, d); err != nil {
			return nil, err
		}
		s.dashWritable = d.Writable
		s.dashUser = newSecrets([]string{cmp.Or(d.User, DefaultDashboardUser)})
		s.dashPass = newSecrets([]string{d.Password})
		s.csrfKey = sha256.Sum256([]byte("keyq /keys csrf\x00" + d.Password))
	}
	httpMetrics := metrics.NewHTTP()
	cs := append([]prometheus.Collector{httpMetrics, metrics.NewQueueCollector(s.inspector)}, opts.Collectors...)
	if s.keys != nil {
		cs = append(cs, metrics.NewPoolCollector(s.keys, opts.Pool, redisTimeout))
		if opts.PerKeyMetrics {
			cs = append(cs, metrics.NewKeyCollector(s.keys, redisTimeout))
		}
	}
	reg, err := metrics.NewRegistry(cs...)
	if err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("api: metrics: %w", err)
	}
	s.metrics = metrics.Handler(reg)
	// The route table (routes.go) is the whole HTTP surface.
	s.handler = s.accessLog(httpMetrics.Middleware(s.cors(s.mux())))
	return s, nil
}

// Handler serves the API.
func (s *Server) Handler() http.Handler { return s.handler }

// handlerFunc is a handler that returns its error for writeError to answer.
type handlerFunc func(http.ResponseWriter, *http.Request) error

// handle serves f, answering its error, or a panic, as JSON.
func (s *Server) handle(f handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.writeError(w, r, fmt.Errorf("panic: %v", v))
			}
		}()
		if err := f(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

func allow(f handlerFunc, methods ...string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		for _, m := range methods {
			if r.Method == m {
				return f(w, r)
			}
		}
		w.Header().Set("Allow", strings.Join(methods, ", "))
		return &Error{Code: CodeMethodNotAllowed, Message: fmt.Sprintf("%s is not allowed here; use %s", r.Method, strings.Join(methods, " or "))}
	}
}

// JobAccepted is the answer to a job submission.
type JobAccepted = tasks.Accepted

func (s *Server) postAnalyzeCharacter(w http.ResponseWriter, r *http.Request) error {
	idem := r.Header.Get("Idempotency-Key")
	if len(idem) > 255 || !printableASCII(idem) {
		return &Error{Code: CodeInvalidRequest, Field: "Idempotency-Key", Message: "Idempotency-Key must be 1 to 255 printable ASCII characters"}
	}
	var req analyzeRequest
	if err := decodeAnalyzeRequest(w, r, &req); err != nil {
		return err
	}
	p := req.AnalyzeCharacter
	id := newJobID()
	if idem != "" {
		id = jobIDFor(s.callerScope(r), idem)
	}
	task, err := tasks.NewAnalyzeCharacterTask(p)
	if err != nil {
		return err
	}
	// The enqueue time rides along in a header, for the worker's job
	// latency metric (metrics.JobMiddleware); owner, callback, retention too.
	headers, err := s.submitHeaders(r, req)
	if err != nil {
		return err
	}
	timeout := s.timeout
	if p.Flex() {
		timeout = s.models.flexTimeout // Google answers flex calls within 1-15 min
	}
	task = asynq.NewTaskWithHeaders(task.Type(), task.Payload(), headers,
		asynq.TaskID(id), asynq.Queue(tasks.Queue),
		asynq.MaxRetry(tasks.AsynqMaxRetry(s.maxRetry)), asynq.Timeout(timeout), asynq.Retention(s.retention))
	ctx, cancel := context.WithTimeout(r.Context(), redisTimeout)
	defer cancel()
	status, code := tasks.StatusQueued, http.StatusAccepted
	if _, err := s.client.EnqueueContext(ctx, task); errors.Is(err, asynq.ErrTaskIDConflict) {
		// The same Idempotency-Key again: the job it made, not a second
		// one, but only for the same request (as Stripe does): a key
		// reused for another body would otherwise drop that body
		// silently.
		code = http.StatusOK
		info, err := s.taskInfo(ctx, id)
		if err != nil {
			return redisErr(err)
		}
		if !samePayload(info, task) {
			return errIdempotencyKeyReused
		}
		status = statusOf(info)
	} else if err != nil {
		return redisErr(err)
	} else {
		s.indexJob(ctx, r, id, time.Now())
	}
	w.Header().Set("Location", "/api/jobs/"+id)
	writeJSON(w, code, JobAccepted{ID: id, Status: status, StatusURL: "/api/jobs/" + id})
	return nil
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("%w: %w", errRedis, err)
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}

// redisErr keeps asynq's "not found" answers and calls anything else a
// Redis that could not be reached.
func redisErr(err error) error {
	if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
		return err
	}
	return fmt.Errorf("%w: %w", errRedis, err)
}

func newJobID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// jobIDFor derives the job id from an Idempotency-Key and the caller's
// scope (callerScope), so that asynq's unique task ids turn a repeat into
// the same job, and two callers that happen to pick the same key get two
// jobs. The open API's scope is empty and keeps the ids it always had.
func jobIDFor(scope []byte, idempotencyKey string) string {
	msg := tasks.TypeAnalyzeCharacter + "\x00" + idempotencyKey
	if len(scope) > 0 {
		msg = tasks.TypeAnalyzeCharacter + "\x00token\x00" + string(scope) + "\x00" + idempotencyKey
	}
	sum := sha256.Sum256([]byte(msg))
	return hex.EncodeToString(sum[:16])
}

// callerScope names who is calling, for Idempotency-Keys: the SHA-256
// digest of the bearer token (the form the server keeps, never the token)
// when the API has tokens, and nothing when it is open. It is called
// behind the route's guard, which has checked the token.
func (s *Server) callerScope(r *http.Request) []byte {
	if len(s.tokens) == 0 {
		return nil
	}
	tok, ok := bearerToken(r)
	if !ok {
		return nil
	}
	d := sha256.Sum256([]byte(tok))
	return d[:]
}

// errIdempotencyKeyReused answers an Idempotency-Key sent again with
// another request.
var errIdempotencyKeyReused = &Error{Code: CodeIdempotencyKeyReused, Field: "Idempotency-Key",
	Message: "this Idempotency-Key was already used for a different request; send the same body to get that job, or use a new key for a new job"}

// samePayload reports whether the job already stored under an id is the
// request of task: the normalized payloads are compared (so a body that
// only differs in whitespace, key order or surrounding spaces of the name
// is the same request), not the bytes that were sent.
func samePayload(info *asynq.TaskInfo, task *asynq.Task) bool {
	if info.Type != task.Type() {
		return false
	}
	if bytes.Equal(info.Payload, task.Payload()) {
		return true
	}
	// A payload stored by another version of keyq may be encoded
	// differently: compare what it says.
	var old, cur tasks.AnalyzeCharacter
	if json.Unmarshal(info.Payload, &old) != nil || json.Unmarshal(task.Payload(), &cur) != nil {
		return false
	}
	old.Normalize()
	cur.Normalize()
	return old.Name == cur.Name && old.Description == cur.Description && old.Language == cur.Language &&
		(old.Image == nil) == (cur.Image == nil) &&
		(old.Image == nil || old.Image.MIMEType == cur.Image.MIMEType && bytes.Equal(old.Image.Data, cur.Image.Data))
}

func validJobID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for _, c := range []byte(id) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func printableASCII(s string) bool {
	for _, c := range []byte(s) {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// Close releases what the server holds of its own: the dashboard's Redis
// connections. The Redis client given to New stays the caller's.
func (s *Server) Close() error {
	err := s.cl.hub.close()
	if s.dashboard != nil {
		return errors.Join(err, s.dashboard.Close())
	}
	return err
}
