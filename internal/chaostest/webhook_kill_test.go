package chaostest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyq/keyq/gemini/geminifake"
	"github.com/keyq/keyq/internal/faketest"
	"github.com/keyq/keyq/internal/redistest"
	"github.com/keyq/keyq/internal/testutil"
	"github.com/keyq/keyq/webhook"
)

const chaosWebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// hookLog is a webhook receiver that holds its first delivery open until
// released, and keeps every delivery it gets (a receiver counting
// duplicates, as Standard Webhooks receivers must).
type hookLog struct {
	mu      sync.Mutex
	got     []delivery
	hold    chan struct{}
	holding chan struct{}
}

type delivery struct {
	id, body string
	verified bool
}

func (h *hookLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	secrets, _ := webhook.ParseSecrets(chaosWebhookSecret)
	h.mu.Lock()
	first := len(h.got) == 0
	h.got = append(h.got, delivery{r.Header.Get(webhook.HeaderID), string(b), webhook.Verify(secrets, r.Header, b, 0) == nil})
	h.mu.Unlock()
	if first {
		close(h.holding)
		<-h.hold
	}
}

func (h *hookLog) deliveries() []delivery {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]delivery(nil), h.got...)
}

// A worker killed with SIGKILL while its webhook delivery waits on the
// receiver: another worker delivers it again after asynq's lease recovery
// (60-120 s, see TestWorkerKilledMidJob), with the same webhook-id and the
// same body, and the job shows the webhook delivered.
func TestWorkerKilledDuringWebhook(t *testing.T) {
	bin := keyqBinary(t)
	t.Parallel()
	_, url := redistest.Open(t)
	_, base := faketest.Start(t, geminifake.Options{})
	hooks := &hookLog{hold: make(chan struct{}), holding: make(chan struct{})}
	recv := httptest.NewServer(hooks)
	t.Cleanup(recv.Close)
	t.Cleanup(func() {
		select {
		case <-hooks.hold:
		default:
			close(hooks.hold)
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	api := "http://" + addr
	env := keyqEnv(url, base, addr, "WEBHOOK_SECRET="+chaosWebhookSecret, "WEBHOOK_ALLOW_PRIVATE=true")
	startProc(t, "keyq api", env, bin, "api")
	victim := startProc(t, "keyq worker (killed)", env, bin, "worker")
	waitReady(t, api, 15*time.Second)

	resp, err := httpc.Post(api+"/api/analyze-character", "application/json",
		strings.NewReader(fmt.Sprintf(`{"name":"Hooked","callback_url":%q}`, recv.URL+"/hook")))
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST: %v %v", resp, err)
	}
	var acc struct{ ID string }
	_ = json.NewDecoder(resp.Body).Decode(&acc)
	resp.Body.Close()
	select {
	case <-hooks.holding:
	case <-time.After(30 * time.Second):
		t.Fatal("no webhook delivery began")
	}
	victim.kill()
	close(hooks.hold) // the killed worker never reads this answer
	startProc(t, "keyq worker (survivor)", env, bin, "worker")

	testutil.Eventually(t, 150*time.Second, "the webhook to be delivered again", func() bool {
		return len(hooks.deliveries()) >= 2
	})
	ds := hooks.deliveries()
	for _, d := range ds {
		if d.id != "msg_"+acc.ID || d.body != ds[0].body || !d.verified {
			t.Errorf("delivery %+v differs from the first (id msg_%s, body %s) or does not verify", d, acc.ID, ds[0].body)
		}
	}
	var j struct {
		Status  string
		Webhook struct {
			State    string
			Attempts int
		}
	}
	testutil.Eventually(t, 10*time.Second, "the job to show its webhook delivered", func() bool {
		r, err := httpc.Get(api + "/api/jobs/" + acc.ID)
		if err != nil {
			return false
		}
		defer r.Body.Close()
		return json.NewDecoder(r.Body).Decode(&j) == nil && j.Webhook.State == "delivered"
	})
	t.Logf("%d deliveries with webhook-id msg_%s (the receiver de-duplicates); job %s, webhook %+v", len(ds), acc.ID, j.Status, j.Webhook)
}
