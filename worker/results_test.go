package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/keyq/keyq/tasks"
)

// A job whose earlier run stored its result, but whose completion asynq
// never recorded (Redis away at that moment), is run again by asynq. The
// second run must finish with the stored result and not call (and bill)
// Gemini again (issue 10, item 8).
func TestARunFinishesWithAnEarlierRunsResult(t *testing.T) {
	e := start(t, setup{})
	id := fmt.Sprintf("%032x", time.Now().UnixNano())
	task, err := tasks.NewAnalyzeCharacterTask(tasks.AnalyzeCharacter{Name: "Paid once"}, asynq.TaskID(id),
		asynq.Queue(tasks.Queue), asynq.MaxRetry(tasks.AsynqMaxRetry(0)), asynq.Retention(time.Hour), asynq.ProcessIn(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.Enqueue(task); err != nil {
		t.Fatal(err)
	}
	const earlier = `{"analysis":{"summary":"stored by an earlier run","traits":["paid"]},"model":"m","usage":{},"key":"#1","key_fingerprint":"x","attempts":1,"duration_ms":1}`
	if err := e.rdb.HSet(context.Background(), "asynq:{"+tasks.Queue+"}:t:"+id, "result", earlier).Err(); err != nil {
		t.Fatal(err)
	}
	info := e.await(id, asynq.TaskStateCompleted)
	if string(info.Result) != earlier {
		t.Errorf("result %s, want the earlier run's", info.Result)
	}
	if n := len(e.up.Calls()); n != 0 {
		t.Errorf("%d upstream calls for a job whose result was stored: billed twice", n)
	}
}
