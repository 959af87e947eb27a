package api_test

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/keyq/keyq/api"
	"github.com/keyq/keyq/tasks"
)

// JSON that encoding/json accepts quietly is refused with a 400 naming the
// problem and the field: an escaped lone surrogate (which it would turn
// into U+FFFD, where raw invalid UTF-8 is refused), a key given twice
// (of which it would keep the last, also across case: it matches keys to
// fields without regard to case), and an unknown nested field is named
// with its parent.
func TestJSONRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Options{})
	png := base64.StdEncoding.EncodeToString(pngBytes)
	img := func(members string) string {
		return `{"name":"x","image":{"mime_type":"image/png","data":"` + png + `"` + members + `}}`
	}
	for _, c := range []struct {
		name, body, field, says string
	}{
		{"lone high surrogate", `{"name":"\ud800"}`, "name", `\ud800`},
		{"lone low surrogate", `{"name":"a\udc00b"}`, "name", `\udc00`},
		{"high surrogate then a letter", `{"name":"\ud83d\u0041"}`, "name", `\ud83d`},
		{"high surrogate at the end", `{"name":"x","description":"ok \uDBFF"}`, "description", `\uDBFF`},
		{"two high surrogates", `{"name":"\ud83d\ud83d\ude00"}`, "name", `\ud83d`},
		{"lone surrogate in image data", `{"name":"x","image":{"mime_type":"image/png","data":"\ud800"}}`, "image.data", `\ud800`},
		{"lone surrogate in language", `{"name":"x","language":"e\udfffn"}`, "language", `\udfff`},
		{"duplicate name", `{"name":"x","name":"y"}`, "name", "twice"},
		{"duplicate name, other case", `{"name":"x","NAME":"y"}`, "name", "twice"},
		{"duplicate name, escaped", `{"n\u0061me":"x","name":"y"}`, "name", "twice"},
		{"duplicate image", `{"image":null,"name":"x","image":{"mime_type":"image/png","data":"` + png + `"}}`, "image", "twice"},
		{"duplicate nested field", img(`,"mime_type":"image/jpeg"`), "image.mime_type", "twice"},
		{"unknown nested field", img(`,"foo":1`), "image.foo", "image.foo"},
		{"unknown top-level field", `{"name":"x","evil":true}`, "evil", "evil"},
	} {
		r := e.post(t, c.body, nil)
		checkError(t, r, http.StatusBadRequest, api.CodeInvalidRequest, c.field)
		if !strings.Contains(string(r.body), strings.ReplaceAll(c.says, `\`, `\\`)) {
			t.Errorf("%s: the message does not say %s: %s", c.name, c.says, r.body)
		}
		if t.Failed() {
			t.Fatalf("%s: body %s", c.name, c.body)
		}
	}

	inspect := asynq.NewInspectorFromRedisClient(e.rdb)
	good := []struct{ body, name string }{
		{`{"name":"\ud83d\ude00 x"}`, "\U0001F600 x"},                                // a surrogate pair is one character
		{`{"name":"\uD83D\uDE00"}`, "\U0001F600"},                                    // in either case
		{`{"name":"a\\ud800"}`, `a\ud800`},                                           // an escaped backslash, then text
		{`{"name":"\ufffd"}`, "\ufffd"},                                              // U+FFFD itself is a character
		{`{"Name":"x","image":{"MIME_TYPE":"image/png","data":"` + png + `"}}`, "x"}, // keys match fields without regard to case
		{`{"name":"x","image":{"mime_type":"image/png","data":"` + png + `"},"description":"{\"name\":1,\"name\":2}"}`, "x"},
	}
	for _, c := range good {
		a := accepted(t, e.post(t, c.body, nil), http.StatusAccepted)
		info, err := inspect.GetTaskInfo(tasks.Queue, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if p, err := tasks.ParseAnalyzeCharacter(info.Payload); err != nil || p.Name != c.name {
			t.Errorf("body %s: name %q (%v), want %q", c.body, p.Name, err, c.name)
		}
	}
	if n := queueSize(t, e.rdb); n != len(good) {
		t.Errorf("%d jobs queued, want %d: a refused body made a job", n, len(good))
	}
}
