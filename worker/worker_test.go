package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/gemini"
	"github.com/keyq/keyq/gemini/geminifake"
	"github.com/keyq/keyq/internal/faketest"
	"github.com/keyq/keyq/internal/redistest"
	"github.com/keyq/keyq/internal/testutil"
	"github.com/keyq/keyq/keyring"
	"github.com/keyq/keyq/tasks"
	"github.com/keyq/keyq/usage"
	"github.com/keyq/keyq/worker"
)

// Placeholder keys shaped like real ones.
var secrets = []string{
	"AIzaSyEXAMPLE-test-key-number-one-0001",
	"AIzaSyEXAMPLE-test-key-number-two-0002",
	"AQ.EXAMPLE-test-key-number-three-00003",
}

type env struct {
	t        *testing.T
	rdb      *redis.Client
	up       *geminifake.Upstream
	logs     *testutil.Logs
	client   *asynq.Client
	inspect  *asynq.Inspector
	handler  *worker.Handler
	ring     *keyring.Ring
	usage    *usage.Store // with setup.usage
	keys     []keyring.Key
	maxRetry int
}

type setup struct {
	retries    int
	retryDelay time.Duration
	maxRetry   int
	workers    int
	latency    time.Duration
	ring       keyring.Options
	keys       []string     // default: secrets, each a project of its own
	alertURL   string       // ALERT_WEBHOOK_URL
	workerKeys [][]string   // worker i holds workerKeys[i] instead of keys
	usage      bool         // the handler sums usage (env.usage)
	hooks      []redis.Hook // added to each worker's Redis client before it starts
}

func start(t *testing.T, s setup) *env {
	t.Helper()
	rdb, url := redistest.Open(t)
	up, base := faketest.Start(t, geminifake.Options{Latency: s.latency})
	logs := &testutil.Logs{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	list := strings.Join(secrets, ",")
	if s.keys != nil {
		list = strings.Join(s.keys, ",")
	}
	keys, _, err := keyring.ParseKeys(list)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, rdb: rdb, up: up, logs: logs, keys: keys, maxRetry: s.maxRetry,
		client: asynq.NewClientFromRedisClient(rdb), inspect: asynq.NewInspectorFromRedisClient(rdb)}
	for i := range max(s.workers, 1) {
		// Each worker its own Redis client, as separate processes would.
		opt, _ := redis.ParseURL(url)
		wrdb := redis.NewClient(opt)
		held := keys
		if i < len(s.workerKeys) {
			if held, _, err = keyring.ParseKeys(strings.Join(s.workerKeys[i], ",")); err != nil {
				t.Fatal(err)
			}
		}
		ring, err := keyring.New(wrdb, held, s.ring)
		if err != nil {
			t.Fatal(err)
		}
		gem, err := gemini.New(gemini.Options{BaseURL: base, Model: "gemini-2.5-flash", Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		opts := worker.HandlerOptions{Retries: s.retries, RetryDelay: s.retryDelay, Logger: log.With("worker", fmt.Sprint(i))}
		if s.usage {
			e.usage = usage.NewStore(wrdb, "")
			opts.Usage = e.usage
		}
		h, err := worker.NewHandler(gem, ring, opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := ring.Announce(context.Background()); err != nil {
			t.Fatal(err)
		}
		for _, hook := range s.hooks {
			wrdb.AddHook(hook)
		}
		e.ring = ring
		w, err := worker.New(wrdb, h, worker.Options{Concurrency: 4, JobRetryDelay: 20 * time.Millisecond, ProbeInterval: 50 * time.Millisecond,
			PollInterval: 50 * time.Millisecond, ShutdownTimeout: 5 * time.Second, Logger: log,
			Alerts: worker.NewAlerts(s.alertURL, wrdb, log)})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Shutdown(); wrdb.Close() })
		e.handler = h
	}
	return e
}

func (e *env) enqueue(name string) string {
	e.t.Helper()
	id := fmt.Sprintf("%032x", time.Now().UnixNano())
	task, err := tasks.NewAnalyzeCharacterTask(tasks.AnalyzeCharacter{Name: name}, asynq.TaskID(id),
		asynq.Queue(tasks.Queue), asynq.MaxRetry(tasks.AsynqMaxRetry(e.maxRetry)), asynq.Retention(time.Hour))
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.client.Enqueue(task); err != nil {
		e.t.Fatal(err)
	}
	return id
}

// await waits until the job reaches state and returns its info.
func (e *env) await(id string, state asynq.TaskState) *asynq.TaskInfo {
	e.t.Helper()
	var info *asynq.TaskInfo
	testutil.Eventually(e.t, 20*time.Second, fmt.Sprintf("job %s to be %v (now %v)", id, state, func() any {
		if info == nil {
			return "unknown"
		}
		return info.State
	}()), func() bool {
		var err error
		info, err = e.inspect.GetTaskInfo(tasks.Queue, id)
		return err == nil && info.State == state
	})
	return info
}

func (e *env) callKeys() []string {
	var out []string
	for _, c := range e.up.Calls() {
		for i, s := range secrets {
			if c.Key == s {
				out = append(out, fmt.Sprintf("#%d", i+1))
			}
		}
	}
	return out
}

func result(t *testing.T, info *asynq.TaskInfo) tasks.Result {
	t.Helper()
	var r tasks.Result
	if err := json.Unmarshal(info.Result, &r); err != nil {
		t.Fatalf("result %q: %v", info.Result, err)
	}
	return r
}

func TestFailoverLogsTheSeedsLines(t *testing.T) {
	e := start(t, setup{retryDelay: time.Second}) // the seed's 1000ms, as operators know it
	e.up.Always(secrets[0], geminifake.FixtureReply("503_deadline_expired"))
	id := e.enqueue("Sherlock Holmes")
	info := e.await(id, asynq.TaskStateCompleted)

	r := result(t, info)
	if r.Key != "#2" || r.Attempts != 2 || r.KeyFingerprint != e.keys[1].Fingerprint || r.Analysis.Summary == "" {
		t.Errorf("result = %+v, want key #2 after 2 attempts", r)
	}
	want := []string{
		"[Gemini] Using API Key #1 (attempt 1/6)",
		"[Gemini] API Key #1 failed (503): Deadline expired before operation could complete.",
		"[Gemini] Retrying with next key in 1000ms...",
		"[Gemini] Using API Key #2 (attempt 2/6)",
	}
	logs := e.logs.String()
	at := 0
	for _, line := range want {
		i := strings.Index(logs[at:], line)
		if i < 0 {
			t.Fatalf("log lacks %q after position %d:\n%s", line, at, logs)
		}
		at += i + len(line)
	}
	if !strings.Contains(logs, "job="+id) {
		t.Errorf("log lines do not carry the job id")
	}
	if got := fmt.Sprint(e.callKeys()); got != "[#1 #2]" {
		t.Errorf("upstream saw keys %s, want [#1 #2]", got)
	}
}

func TestEveryAttemptFailsThenRetryingThenFailed(t *testing.T) {
	e := start(t, setup{retryDelay: time.Millisecond, maxRetry: 1})
	for _, s := range secrets {
		e.up.Always(s, geminifake.FixtureReply("503_overloaded"))
	}
	id := e.enqueue("Watson")
	info := e.await(id, asynq.TaskStateArchived)
	if info.Retried != 1 {
		t.Errorf("Retried = %d, want 1 (JOB_MAX_RETRY)", info.Retried)
	}
	if tasks.MaxRuns(info.MaxRetry) != 2 {
		t.Errorf("MaxRuns = %d, want 2", tasks.MaxRuns(info.MaxRetry))
	}
	je := tasks.ParseJobError(info.LastErr)
	if je.Class != "unavailable" || !strings.Contains(je.Message, "all 6 attempts failed") {
		t.Errorf("last error = %+v", je)
	}
	keys := e.callKeys()
	if len(keys) != 12 {
		t.Fatalf("upstream calls = %d (%v), want 2 runs x 6 attempts", len(keys), keys)
	}
	for run := range 2 {
		for half := range 2 {
			seen := map[string]bool{}
			for _, k := range keys[run*6+half*3 : run*6+half*3+3] {
				seen[k] = true
			}
			if len(seen) != 3 {
				t.Errorf("run %d repeated a key before trying all: %v", run+1, keys[run*6:run*6+6])
			}
		}
	}
	// Between the runs the job was visibly retrying.
	if !strings.Contains(e.logs.String(), `msg="job run failed" job=`+id+" run=1 max_runs=2") {
		t.Errorf("no log of the failed first run:\n%s", e.logs.String())
	}
}

func TestRetryingIsVisibleBetweenRuns(t *testing.T) {
	e := start(t, setup{retryDelay: time.Millisecond, maxRetry: 3})
	for _, s := range secrets {
		// First run: every key fails; then all succeed.
		e.up.Script(s, geminifake.FixtureReply("500_internal"), geminifake.FixtureReply("500_internal"))
	}
	id := e.enqueue("Moriarty")
	// With JobRetryDelay 20ms the retry state is brief; the run count and
	// the final result prove it went through it.
	info := e.await(id, asynq.TaskStateCompleted)
	if info.Retried != 1 {
		t.Errorf("Retried = %d, want 1", info.Retried)
	}
	if r := result(t, info); r.Attempts != 1 {
		t.Errorf("second run attempts = %d, want 1", r.Attempts)
	}
}

func TestRequestErrorsFailAtOnce(t *testing.T) {
	for _, tc := range []struct{ fixture, class string }{
		{"200_prompt_blocked", "blocked"},
		{"200_finish_safety", "blocked"},
		{"200_max_tokens", "max_tokens"},
		{"400_invalid_argument", "bad_request"},
		{"404_model_not_found", "not_found"},
		{"400_location_unsupported", "location_unsupported"},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			e := start(t, setup{retryDelay: time.Millisecond, maxRetry: 3})
			for _, s := range secrets {
				e.up.Always(s, geminifake.FixtureReply(tc.fixture))
			}
			info := e.await(e.enqueue("Mallory"), asynq.TaskStateArchived)
			if je := tasks.ParseJobError(info.LastErr); string(je.Class) != tc.class || info.Retried != 0 {
				t.Errorf("class %q retried %d (%s), want %s at once", je.Class, info.Retried, info.LastErr, tc.class)
			}
			if n := len(e.up.Calls()); n != 1 {
				t.Errorf("%d upstream calls, want 1", n)
			}
		})
	}
}

func TestBadKeysArePassedOver(t *testing.T) {
	e := start(t, setup{retryDelay: time.Millisecond})
	e.up.Always(secrets[0], geminifake.FixtureReply("401_unauthenticated"))
	e.up.Always(secrets[1], geminifake.FixtureReply("400_api_key_invalid"))
	info := e.await(e.enqueue("Irene"), asynq.TaskStateCompleted)
	if r := result(t, info); r.Key != "#3" || r.Attempts != 3 {
		t.Errorf("result = %+v, want key #3 on attempt 3", r)
	}
}

func TestUnusableAnswerGetsOneMoreAttempt(t *testing.T) {
	e := start(t, setup{retryDelay: time.Millisecond, maxRetry: 2})
	for _, s := range secrets {
		e.up.Always(s, geminifake.OK(`{"summary": "no traits"}`))
	}
	info := e.await(e.enqueue("Lestrade"), asynq.TaskStateArchived)
	if je := tasks.ParseJobError(info.LastErr); je.Class != "unusable" || info.Retried != 0 {
		t.Errorf("error %+v retried %d, want unusable without job retries", je, info.Retried)
	}
	if n := len(e.up.Calls()); n != 2 {
		t.Errorf("%d upstream calls, want 2", n)
	}
}

func TestAttemptBudgetIsTheSeeds(t *testing.T) {
	for _, tc := range []struct{ retries, want int }{{5, 6}, {1, 2}, {worker.NoRetries, 1}, {0, 6}, {100, 6}} {
		e := start(t, setup{retries: tc.retries})
		if got := e.handler.MaxAttempts(); got != tc.want {
			t.Errorf("retries %d with 3 keys: %d attempts, want min(retries+1, 2x3) = %d", tc.retries, got, tc.want)
		}
	}
}

// Two workers with their own Redis clients share one rotation: with every
// call succeeding, 3 keys x 10 each.
func TestWorkersShareOneRotation(t *testing.T) {
	// Calls take a while, so that both workers have jobs in flight.
	e := start(t, setup{workers: 2, latency: 20 * time.Millisecond})
	var ids []string
	for i := range 30 {
		ids = append(ids, e.enqueue(fmt.Sprintf("Character %d", i)))
	}
	for _, id := range ids {
		e.await(id, asynq.TaskStateCompleted)
	}
	count := map[string]int{}
	for _, k := range e.callKeys() {
		count[k]++
	}
	if count["#1"] != 10 || count["#2"] != 10 || count["#3"] != 10 {
		t.Errorf("calls per key = %v, want 10 each", count)
	}
}

func TestNoKeyInLogsResultsOrRedis(t *testing.T) {
	e := start(t, setup{retryDelay: time.Millisecond, maxRetry: 0})
	ctx := context.Background()
	fixtures := geminifake.FixtureNames()
	for _, f := range fixtures {
		// Each fixture meets a fresh pool: a leaked key from the last one
		// must not keep this one from calling.
		names, err := e.rdb.Keys(ctx, "keyq:{*").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			e.rdb.Del(ctx, n)
		}
		for _, s := range secrets {
			e.up.Script(s, geminifake.FixtureReply(f))
		}
		id := e.enqueue("Fixture " + f)
		testutil.Eventually(t, 20*time.Second, "job "+id+" ("+f+") to finish or wait", func() bool {
			info, err := e.inspect.GetTaskInfo(tasks.Queue, id)
			return err == nil && (info.State == asynq.TaskStateCompleted || info.State == asynq.TaskStateArchived || info.State == asynq.TaskStateRetry)
		})
	}
	for _, where := range []struct{ name, text string }{
		{"logs", e.logs.String()},
		{"redis", testutil.DumpRedis(t, e.rdb)},
	} {
		if hits := testutil.FindSecrets(where.text, secrets...); len(hits) > 0 {
			t.Errorf("keys found in %s: %v", where.name, hits)
		}
	}
	if len(e.up.Calls()) < len(fixtures) {
		t.Errorf("only %d upstream calls for %d fixtures", len(e.up.Calls()), len(fixtures))
	}
}
