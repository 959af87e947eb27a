package api_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/keyq/keyq/api"
	"github.com/keyq/keyq/tasks"
)

// An Idempotency-Key sent again with another request is refused with 422,
// rather than answered with the first job while the new body is dropped;
// the same request again, however it is spelled, still gets the job.
func TestIdempotencyKeyReusedWithAnotherBody(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Options{})
	key := map[string]string{"Idempotency-Key": "order-7"}
	img := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

	first := accepted(t, e.post(t, `{"name":"Moriarty","description":"A professor.","image":{"mime_type":"image/png","data":"`+img(pngBytes)+`"}}`, key), http.StatusAccepted)
	// The same request: other whitespace, key order, padding of the name.
	same := accepted(t, e.post(t, "{ \"image\" : {\"data\":\""+img(pngBytes)+"\", \"mime_type\":\"image/png\"},\n \"description\":\" A professor. \", \"name\":\"  Moriarty\" ,\"language\":\"en\"}", key), http.StatusOK)
	if same.ID != first.ID {
		t.Errorf("the same request gave job %s, want %s", same.ID, first.ID)
	}
	for name, body := range map[string]string{
		"other name":        `{"name":"Irene Adler","description":"A professor.","image":{"mime_type":"image/png","data":"` + img(pngBytes) + `"}}`,
		"other image":       `{"name":"Moriarty","description":"A professor.","image":{"mime_type":"image/png","data":"` + img(append(pngBytes, 0)) + `"}}`,
		"no image":          `{"name":"Moriarty","description":"A professor."}`,
		"other language":    `{"name":"Moriarty","description":"A professor.","language":"fr","image":{"mime_type":"image/png","data":"` + img(pngBytes) + `"}}`,
		"other description": `{"name":"Moriarty","image":{"mime_type":"image/png","data":"` + img(pngBytes) + `"}}`,
	} {
		r := e.post(t, body, key)
		checkError(t, r, http.StatusUnprocessableEntity, api.CodeIdempotencyKeyReused, "Idempotency-Key")
		if t.Failed() {
			t.Fatalf("%s: see above", name)
		}
	}
	if n := queueSize(t, e.rdb); n != 1 {
		t.Errorf("%d tasks in the queue, want 1", n)
	}
	info, err := asynq.NewInspectorFromRedisClient(e.rdb).GetTaskInfo(tasks.Queue, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := tasks.ParseAnalyzeCharacter(info.Payload); err != nil || p.Name != "Moriarty" {
		t.Errorf("the job's payload changed: %+v, %v", p, err)
	}
}

// With API tokens, Idempotency-Keys are per token: another token using the
// same key gets a job of its own, not the first token's job (and its
// result), and never a 422 for the other token's body.
func TestIdempotencyKeyScopedPerToken(t *testing.T) {
	t.Parallel()
	const tokA, tokB = "token-a-0123456789abcdef", "token-b-0123456789abcdef"
	e := newEnv(t, api.Options{Tokens: []string{tokA, tokB}})
	with := func(tok string) map[string]string {
		return map[string]string{"Authorization": "Bearer " + tok, "Idempotency-Key": "order-1"}
	}

	a := accepted(t, e.post(t, `{"name":"Moriarty"}`, with(tokA)), http.StatusAccepted)
	b := accepted(t, e.post(t, `{"name":"Moriarty"}`, with(tokB)), http.StatusAccepted)
	if a.ID == b.ID {
		t.Fatalf("two tokens with one Idempotency-Key got the same job %s", a.ID)
	}
	if again := accepted(t, e.post(t, `{"name":"Moriarty"}`, with(tokA)), http.StatusOK); again.ID != a.ID {
		t.Errorf("token A's repeat gave %s, want %s", again.ID, a.ID)
	}
	if again := accepted(t, e.post(t, `{"name":"Moriarty"}`, with(tokB)), http.StatusOK); again.ID != b.ID {
		t.Errorf("token B's repeat gave %s, want %s", again.ID, b.ID)
	}
	r := e.post(t, `{"name":"Adler"}`, with(tokB))
	checkError(t, r, http.StatusUnprocessableEntity, api.CodeIdempotencyKeyReused, "Idempotency-Key")
	for _, tok := range []string{tokA, tokB} {
		for _, piece := range []string{tok, tok[8:20]} {
			if strings.Contains(string(r.body), piece) || strings.Contains(e.logs.String(), piece) {
				t.Errorf("a token shows in the answer or the log")
			}
		}
		sum := sha256.Sum256([]byte(tok))
		if strings.Contains(string(r.body), hex.EncodeToString(sum[:])[:12]) {
			t.Errorf("a token's digest shows in the answer")
		}
	}
	if n := queueSize(t, e.rdb); n != 2 {
		t.Errorf("%d tasks in the queue, want 2", n)
	}
}

// The open API (no tokens) derives ids from the key alone, as it always
// has: a job submitted before an upgrade is still found by its key after.
func TestIdempotencyKeyOpenAPIIDsUnchanged(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Options{})
	a := accepted(t, e.post(t, `{"name":"x"}`, map[string]string{"Idempotency-Key": "k-1", "Authorization": "Bearer ignored"}), http.StatusAccepted)
	sum := sha256.Sum256([]byte(tasks.TypeAnalyzeCharacter + "\x00k-1"))
	if want := hex.EncodeToString(sum[:16]); a.ID != want {
		t.Errorf("id %s, want %s (the id keyq has always given this key)", a.ID, want)
	}
}
