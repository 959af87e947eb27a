package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyq/keyq/gemini/geminifake"
	"github.com/keyq/keyq/internal/faketest"
	"github.com/keyq/keyq/internal/redistest"
	"github.com/keyq/keyq/internal/testutil"
)

// An upstream that quotes a piece of the calling key, or another key of
// the pool, must not get either into a log line or a job's error: every
// run of 12+ characters of any key is redacted (issue 10, item 3).
func TestInexactKeyEchoesAreRedacted(t *testing.T) {
	_, url := redistest.Open(t)
	echo := func(quote string) geminifake.Reply {
		body := fmt.Sprintf(`{"error":{"code":500,"message":"Internal error for request with %s; please retry.","status":"INTERNAL"}}`, quote)
		return geminifake.Reply{Status: 500, Body: []byte(body)}
	}
	up, base := faketest.Start(t, geminifake.Options{})
	up.Always(e2eKeys[0], echo("key "+e2eKeys[0][:20]+"..."))     // first 20 characters of itself
	up.Always(e2eKeys[1], echo("API key not valid: "+e2eKeys[0])) // another key of the pool, whole
	t.Setenv("REDIS_URL", url)
	t.Setenv("GEMINI_API_KEY", e2eKeys[0]+","+e2eKeys[1])
	t.Setenv("GEMINI_BASE_URL", base)
	t.Setenv("GEMINI_RETRY_DELAY", "1ms")
	t.Setenv("JOB_MAX_RETRY", "0")
	t.Setenv("API_ADDR", "127.0.0.1:0")
	t.Setenv("WORKER_METRICS_ADDR", "off")
	ctx, cancel := context.WithCancel(context.Background())
	procs := []*proc{startCmd(t, ctx, "api"), startCmd(t, ctx, "worker")}
	t.Cleanup(func() {
		cancel()
		for _, p := range procs {
			<-p.done
		}
	})
	apiBase := "http://" + procs[0].addr(t)
	statusURL := postJob(t, apiBase, "Echo")
	var body string
	testutil.Eventually(t, 30*time.Second, "the job to fail", func() bool {
		resp, err := http.Get(apiBase + statusURL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var j struct{ Status string }
		_ = json.Unmarshal(b, &j)
		body = string(b)
		return j.Status == "failed"
	})
	logs := procs[1].logs.String()
	for what, text := range map[string]string{"worker logs": logs, "job JSON": body} {
		if hits := testutil.FindSecrets(text, e2eKeys...); len(hits) > 0 {
			t.Errorf("%s hold key pieces: %v", what, hits)
		}
	}
	if !strings.Contains(body, "[redacted]") || !strings.Contains(logs, "[redacted]") {
		t.Errorf("no [redacted] mark:\njob %s\nlogs %s", body, logs)
	}
}
