package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/keyq/keyq/api"
	"github.com/keyq/keyq/internal/redistest"
	"github.com/keyq/keyq/usage"
)

func (e *env) postGenerate(t *testing.T, body string, header map[string]string) response {
	t.Helper()
	return e.do(t, request{method: http.MethodPost, path: "/api/generate", contentType: "application/json", header: header, body: strings.NewReader(body)})
}

// Field-level 400s for generate bodies, and a good one accepted.
func TestPostGenerate(t *testing.T) {
	e := newEnv(t, api.Options{Models: []api.ModelKeys{{Name: "gemini-3.5-flash"}, {Name: "gemini-3.1-flash-lite"}}})
	png := "iVBORw0KGgowMDAw" // \x89PNG\r\n\x1a\n0000
	for _, tc := range []struct{ body, field string }{
		{`{"contents":[]}`, "contents"},
		{`{"contents":[{"parts":[{"text":"hi"},{"inlineData":{"mimeType":"image/gif","data":"` + png + `"}}]}]}`, "contents[0].parts[1].inlineData.mimeType"},
		{`{"contents":[{"parts":[{"inlineData":{"mimeType":"image/jpeg","data":"` + png + `"}}]}]}`, "contents[0].parts[0].inlineData.data"},
		{`{"contents":[{"role":"system","parts":[{"text":"hi"}]}]}`, "contents[0].role"},
		{`{"contents":[{"parts":[{}]}]}`, "contents[0].parts[0]"},
		{`{"contents":[{"parts":[{"text":"hi"}]}],"generationConfig":{"responseMimeType":"application/json","responseSchema":{"type":"object"},"responseJsonSchema":{"type":"object"}}}`, "generationConfig.responseJsonSchema"},
		{`{"contents":[{"parts":[{"text":"hi"}]}],"generationConfig":{"temperature":3}}`, "generationConfig.temperature"},
		{`{"contents":[{"parts":[{"text":"hi"}]}],"generationConfig":{"thinkingConfig":{"thinkingBudget":0}}}`, "generationConfig.thinkingConfig"},
		{`{"contents":[{"parts":[{"text":"hi"}]}],"tools":[]}`, "tools"},
		{`{"contents":[{"parts":[{"text":"hi"}]}],"safetySettings":[{"category":"HARM_CATEGORY_HARASSMENT","threshold":"SOMETIMES"}]}`, "safetySettings[0].threshold"},
		{`{"contents":[{"parts":[{"text":"hi"}]}],"model":"gemini-2.5-pro"}`, "model"},
		{`{"contents":[{"parts":[{"text":"hi"}]}],"tier":"priority"}`, "tier"},
	} {
		checkError(t, e.postGenerate(t, tc.body, nil), http.StatusBadRequest, "invalid_request", tc.field)
	}
	r := e.postGenerate(t, `{"contents":[{"parts":[{"text":"hi"}]}],"model":"gemini-2.5-pro"}`, nil)
	if !strings.Contains(string(r.body), "gemini-3.5-flash, gemini-3.1-flash-lite") {
		t.Errorf("the 400 does not name the allowed models: %s", r.body)
	}
	many := `{"contents":[` + strings.Repeat(`{"parts":[{"text":"x"}]},`, 20) + `{"parts":[{"text":"x"}]}]}`
	checkError(t, e.postGenerate(t, many, nil), http.StatusBadRequest, "invalid_request", "contents")
	accepted(t, e.postGenerate(t, `{"contents":[{"parts":[{"text":"hi"},{"inlineData":{"mimeType":"image/png","data":"`+png+`"}}]}],
		"generationConfig":{"responseMimeType":"application/json","responseJsonSchema":{"type":"object"}},"model":"gemini-3.1-flash-lite","tier":"flex"}`, nil), http.StatusAccepted)
	// analyze-character checks the same options before its own decoding.
	checkError(t, e.post(t, `{"name":"Holmes","model":"gemini-2.5-pro"}`, nil), http.StatusBadRequest, "invalid_request", "model")
}

// A token past its daily cap gets 429 quota_exceeded; another does not.
func TestTokenCap(t *testing.T) {
	rdb, _ := redistest.Open(t)
	store := usage.NewStore(rdb, "")
	capped, free := "capped-token-0123456789", "free-token-0123456789ab"
	caps, err := api.ParseCaps(api.TokenID(capped) + "=1000tok")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvOn(t, rdb, api.Options{Tokens: []string{capped, free}, Usage: store, Caps: caps})
	if err := store.Record(t.Context(), usage.Entry{Model: "m", Token: api.TokenID(capped), Prompt: 900, Total: 1000}); err != nil {
		t.Fatal(err)
	}
	r := e.postGenerate(t, `{"contents":[{"parts":[{"text":"hi"}]}]}`, map[string]string{"Authorization": "Bearer " + capped})
	checkError(t, r, http.StatusTooManyRequests, "quota_exceeded", "")
	if r.header.Get("Retry-After") == "" || !strings.Contains(string(r.body), "1000 of its 1000 tokens") {
		t.Errorf("429 %v %s", r.header, r.body)
	}
	accepted(t, e.postGenerate(t, `{"contents":[{"parts":[{"text":"hi"}]}]}`, map[string]string{"Authorization": "Bearer " + free}), http.StatusAccepted)
	u := e.do(t, request{method: http.MethodGet, path: "/api/usage?by=token", header: map[string]string{"Authorization": "Bearer " + free}})
	if u.status != 200 || !strings.Contains(string(u.body), api.TokenID(capped)) || !strings.Contains(string(u.body), `"total":1000`) {
		t.Errorf("usage %d %s", u.status, u.body)
	}
	for _, bad := range []string{"abc=10tok", api.TokenID(capped) + "=10", "*=-1usd"} {
		if _, err := api.ParseCaps(bad); err == nil {
			t.Errorf("ParseCaps(%q) accepted", bad)
		}
	}
}

// A generate job is a job like any other: it is in its token's list, and
// other tokens do not see it.
func TestGenerateJobsAreListed(t *testing.T) {
	a, b := "generate-token-a-0123456789", "generate-token-b-0123456789"
	e := newEnv(t, api.Options{Tokens: []string{a, b}})
	ha, hb := map[string]string{"Authorization": "Bearer " + a}, map[string]string{"Authorization": "Bearer " + b}
	r := e.postGenerate(t, `{"contents":[{"parts":[{"text":"hi"}]}]}`, ha)
	var acc api.JobAccepted
	if r.status != http.StatusAccepted || json.Unmarshal(r.body, &acc) != nil {
		t.Fatalf("POST /api/generate: %d %s", r.status, r.body)
	}
	if l := e.do(t, request{method: http.MethodGet, path: "/api/jobs", header: ha}); !strings.Contains(string(l.body), acc.ID) {
		t.Errorf("the generate job is not in its token's list: %s", l.body)
	}
	if l := e.do(t, request{method: http.MethodGet, path: "/api/jobs", header: hb}); strings.Contains(string(l.body), acc.ID) {
		t.Errorf("another token sees the job: %s", l.body)
	}
	if g := e.do(t, request{method: http.MethodGet, path: "/api/jobs/" + acc.ID, header: hb}); g.status != http.StatusNotFound {
		t.Errorf("another token GETs the job: %d", g.status)
	}
}
