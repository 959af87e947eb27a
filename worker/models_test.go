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

// fleet is a worker over a chain of two models, each with its own pool of
// the same three keys (projects a, b, c), against one fake upstream.
type fleet struct {
	t      *testing.T
	up     *geminifake.Upstream
	client *asynq.Client
	insp   *asynq.Inspector
	usage  *usage.Store
	logs   *testutil.Logs
}

const (
	model1 = "gemini-3.5-flash"
	model2 = "gemini-2.5-flash"
)

func startFleet(t *testing.T, respond func(string, []byte) geminifake.Reply) *fleet {
	t.Helper()
	rdb, _ := redistest.Open(t)
	up, base := faketest.Start(t, geminifake.Options{Respond: respond})
	keys, _, err := keyring.ParseKeys("a:" + secrets[0] + ",b:" + secrets[1] + ",c:" + secrets[2])
	if err != nil {
		t.Fatal(err)
	}
	policy, _ := gemini.ParseThinking(gemini.DefaultThinking)
	var models []worker.Model
	for _, name := range []string{model1, model2} {
		ring, err := keyring.New(rdb, keys, keyring.Options{Pool: name})
		if err != nil {
			t.Fatal(err)
		}
		gem, err := gemini.New(gemini.Options{BaseURL: base, Model: name, Timeout: 5 * time.Second, Thinking: policy})
		if err != nil {
			t.Fatal(err)
		}
		models = append(models, worker.Model{Client: gem, Ring: ring})
	}
	logs := &testutil.Logs{}
	f := &fleet{t: t, up: up, client: asynq.NewClientFromRedisClient(rdb), insp: asynq.NewInspectorFromRedisClient(rdb),
		usage: usage.NewStore(rdb, ""), logs: logs}
	h, err := worker.NewHandler(models[0].Client, models[0].Ring, worker.HandlerOptions{RetryDelay: time.Millisecond,
		Fallbacks: models[1:], Usage: f.usage, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(rdb, h, worker.Options{Concurrency: 4, JobRetryDelay: 20 * time.Millisecond, PollInterval: 50 * time.Millisecond,
		ShutdownTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	return f
}

func (f *fleet) submit(task *asynq.Task, err error) string {
	f.t.Helper()
	if err != nil {
		f.t.Fatal(err)
	}
	id := fmt.Sprintf("%032x", time.Now().UnixNano())
	_, err = f.client.Enqueue(asynq.NewTaskWithHeaders(task.Type(), task.Payload(), map[string]string{tasks.HeaderOwner: "tok-owner-1"}),
		asynq.TaskID(id), asynq.Queue(tasks.Queue), asynq.MaxRetry(2), asynq.Retention(time.Hour))
	if err != nil {
		f.t.Fatal(err)
	}
	return id
}

func (f *fleet) result(id string) tasks.Result {
	f.t.Helper()
	var info *asynq.TaskInfo
	testutil.Eventually(f.t, 20*time.Second, "job "+id+" to succeed", func() bool {
		info, _ = f.insp.GetTaskInfo(tasks.Queue, id)
		return info != nil && info.State == asynq.TaskStateCompleted
	})
	var r tasks.Result
	if err := json.Unmarshal(info.Result, &r); err != nil {
		f.t.Fatal(err)
	}
	return r
}

func callsTo(up *geminifake.Upstream, model string) (n int) {
	for _, c := range up.Calls() {
		if c.Model == model && c.Method == "POST" {
			n++
		}
	}
	return n
}

func okAnalysis(string, []byte) geminifake.Reply {
	return geminifake.OK(`{"summary":"A detective.","traits":["observant"]}`)
}

// The first model is retired: every key gets a 404; the job moves on.
func TestModelGoneFallsBack(t *testing.T) {
	f := startFleet(t, okAnalysis)
	f.up.AlwaysModel(model1, geminifake.FixtureReply("404_model_not_found"))
	r := f.result(f.submit(tasks.NewAnalyzeCharacterTask(tasks.AnalyzeCharacter{Name: "Holmes"})))
	if r.Model != model2 || r.ChainPosition != 2 || r.Analysis.Summary == "" {
		t.Errorf("result %+v, want %s at position 2", r, model2)
	}
	if n := callsTo(f.up, model1); n != 1 {
		t.Errorf("%d calls to the retired model, want 1 (a 404 is no key's fault)", n)
	}
	// Each family gets its own thinking field, never the other.
	for _, c := range f.up.Calls() {
		level, budget := strings.Contains(string(c.Body), `"thinkingLevel":"low"`), strings.Contains(string(c.Body), `"thinkingBudget":0`)
		if c.Model == model1 && (!level || budget) || c.Model == model2 && (level || !budget) {
			t.Errorf("%s got %s", c.Model, c.Body)
		}
	}
	if !strings.Contains(f.logs.String(), "[Gemini] Model "+model1+" cannot answer") {
		t.Errorf("no line about the move:\n%s", f.logs.String())
	}
}

// A PerDay 429 on every project of model 1 moves jobs to model 2.
func TestPerDayOnEveryProjectFallsBack(t *testing.T) {
	f := startFleet(t, okAnalysis)
	f.up.AlwaysModel(model1, geminifake.FixtureReply("429_per_day"))
	for i := range 3 {
		r := f.result(f.submit(tasks.NewAnalyzeCharacterTask(tasks.AnalyzeCharacter{Name: fmt.Sprint("Holmes ", i)})))
		if r.Model != model2 {
			t.Fatalf("job %d answered by %s", i, r.Model)
		}
	}
	// Three projects cool until midnight after one 429 each; later jobs
	// go straight to model 2.
	if n := callsTo(f.up, model1); n != 3 {
		t.Errorf("%d calls to the exhausted model, want 3 (one per project)", n)
	}
}

// A generate job with a JSON schema, an image and flex: what was sent,
// what came back, and the usage summed from the fake's own record.
func TestGenerateJob(t *testing.T) {
	f := startFleet(t, func(string, []byte) geminifake.Reply { return geminifake.OK(`{"color": "red"}`) })
	png := []byte("\x89PNG\r\n\x1a\n0000")
	text := "What color is it?"
	max := 512
	p := tasks.Generate{JobOptions: tasks.JobOptions{Tier: tasks.TierFlex},
		Contents: []tasks.Content{{Role: "user", Parts: []tasks.Part{{Text: &text}, {InlineData: &tasks.Blob{MIMEType: "image/png", Data: png}}}}},
		GenerationConfig: &tasks.GenerationConfig{ResponseMIMEType: "application/json", MaxOutputTokens: &max,
			ResponseJSONSchema: json.RawMessage(`{"type":"object","properties":{"color":{"type":"string"}}}`)}}
	r := f.result(f.submit(tasks.NewGenerateTask(p)))
	if string(r.JSON) != `{"color":"red"}` || r.FinishReason != "STOP" || r.Model != model1 || r.Tier != "flex" ||
		!strings.Contains(string(r.SafetyRatings), "HARM_CATEGORY") {
		t.Errorf("result %+v", r)
	}
	calls := f.up.Calls()
	var sent map[string]any
	if err := json.Unmarshal(calls[0].Body, &sent); err != nil {
		t.Fatal(err)
	}
	gc := sent["generationConfig"].(map[string]any)
	if sent["service_tier"] != "flex" || gc["thinkingConfig"].(map[string]any)["thinkingLevel"] != "low" ||
		gc["responseJsonSchema"] == nil || gc["maxOutputTokens"] != 512.0 || sent["model"] != nil || sent["tier"] != nil {
		t.Errorf("sent %s", calls[0].Body)
	}
	if !strings.Contains(string(calls[0].Body), `"mimeType":"image/png"`) {
		t.Errorf("no image in %s", calls[0].Body)
	}
	// The usage store holds exactly what the fake says it answered.
	var want geminifake.Usage
	for _, c := range calls {
		want.Prompt, want.Thoughts, want.Cached, want.Total = want.Prompt+c.Usage.Prompt, want.Thoughts+c.Usage.Thoughts, want.Cached+c.Usage.Cached, want.Total+c.Usage.Total
	}
	day := f.usage.Today()
	rows, err := f.usage.Query(context.Background(), day, day, usage.ByToken, nil, nil)
	if err != nil || len(rows) != 1 || rows[0].Group != "tok-owner-1" {
		t.Fatalf("rows %+v, %v", rows, err)
	}
	got := rows[0].Counts
	if got[usage.KindPrompt] != int64(want.Prompt) || got[usage.KindThoughts] != int64(want.Thoughts) ||
		got[usage.KindCached] != int64(want.Cached) || got[usage.KindTotal] != int64(want.Total) || want.Thoughts == 0 || want.Cached == 0 {
		t.Errorf("usage %v, fake answered %+v", got, want)
	}
	if r.Usage.ThoughtsTokens != 3 || r.Usage.CachedTokens != 4 {
		t.Errorf("result usage %+v", r.Usage)
	}
}
