package gemini

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/keyq/keyq/gemini/geminifake"
	"github.com/keyq/keyq/internal/faketest"
)

func TestThinkingPolicy(t *testing.T) {
	p, err := ParseThinking("2.5=0, 3=low, gemini-3.1-flash-lite=minimal")
	if err != nil {
		t.Fatal(err)
	}
	for model, want := range map[string]string{
		"gemini-2.5-flash":       `{"thinkingBudget":0}`,
		"gemini-2.5-flash-lite":  `{"thinkingBudget":0}`,
		"gemini-3.5-flash":       `{"thinkingLevel":"low"}`,
		"gemini-3-flash-preview": `{"thinkingLevel":"low"}`,
		"gemini-3.1-flash-lite":  `{"thinkingLevel":"minimal"}`,
		"gemini-2.0-flash":       `null`, // no family matches
		"gemini-flash-latest":    `null`, // an alias: its family is unknown
	} {
		got, _ := json.Marshal(p.For(model))
		if string(got) != want {
			t.Errorf("For(%s) = %s, want %s", model, got, want)
		}
	}
	for _, bad := range []string{"3=0", "2.5=low", "flash=low", "3", "2.5=-2", "3=extreme"} {
		if _, err := ParseThinking(bad); err == nil {
			t.Errorf("ParseThinking(%q) accepted", bad)
		}
	}
	if _, err := ParseModels("gemini-3.5-flash,,models/gemini-3.1-flash-lite,gemini-3.5-flash"); err != nil {
		t.Error(err)
	}
	if ms, _ := ParseModels(DefaultModels); len(ms) != 2 || ms[0] != DefaultModel {
		t.Errorf("DefaultModels = %v", ms)
	}
}

// The wire body per family: thinkingBudget to 2.5, thinkingLevel to 3.x,
// never both; service_tier for flex; a raw body passed through.
func TestThinkingAndTierOnTheWire(t *testing.T) {
	up, base := faketest.Start(t, geminifake.Options{Respond: func(string, []byte) geminifake.Reply { return geminifake.OK(`{"a":1}`) }})
	policy, _ := ParseThinking(DefaultThinking)
	for _, tc := range []struct {
		model, field string
		req          *Request
	}{
		{"gemini-2.5-flash", `"thinkingBudget":0`, &Request{Text: []string{"hi"}}},
		{"gemini-3.5-flash", `"thinkingLevel":"low"`, &Request{Text: []string{"hi"}, ServiceTier: TierFlex}},
		{"gemini-3.1-flash-lite", `"thinkingLevel":"low"`, &Request{WantJSON: true, ServiceTier: TierFlex,
			Raw: json.RawMessage(`{"contents":[{"parts":[{"text":"hi"}]}],"generationConfig":{"temperature":0.5}}`)}},
	} {
		c, err := New(Options{BaseURL: base, Model: tc.model, Thinking: policy, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		up.Reset()
		if _, err := c.Generate(t.Context(), testKey, tc.req); err != nil {
			t.Fatalf("%s: %v", tc.model, err)
		}
		body := string(up.Calls()[0].Body)
		other := `"thinkingLevel"`
		if strings.Contains(tc.field, "Level") {
			other = `"thinkingBudget"`
		}
		if !strings.Contains(body, tc.field) || strings.Contains(body, other) {
			t.Errorf("%s: body %s, want %s and no %s", tc.model, body, tc.field, other)
		}
		if flex := strings.Contains(body, `"service_tier":"flex"`); flex != (tc.req.ServiceTier == TierFlex) {
			t.Errorf("%s: body %s: service_tier flex %v", tc.model, body, flex)
		}
		if tc.req.Raw != nil && !strings.Contains(body, `"temperature":0.5`) {
			t.Errorf("raw body lost its generationConfig: %s", body)
		}
	}
	c, _ := New(Options{BaseURL: base, Model: "gemini-3.5-flash", Thinking: policy})
	_, err := c.Generate(t.Context(), testKey, &Request{Raw: json.RawMessage(`{"contents":[],"generationConfig":{"thinkingConfig":{"thinkingBudget":5}}}`)})
	if e := asError(t, err, testKey); e.Class != ClassBadRequest {
		t.Errorf("a raw thinkingConfig: %v, want bad_request before any call", err)
	}
}

func TestSpendCapShedAndThinkingMaxTokens(t *testing.T) {
	up, base := faketest.Start(t, geminifake.Options{})
	c := newClient(t, base, 5*time.Second)
	for name, check := range map[string]func(*Error) bool{
		"429_spend_cap":  func(e *Error) bool { return e.SpendCap() && !e.PerDay() && !e.KeyFault() },
		"429_per_minute": func(e *Error) bool { return !e.SpendCap() },
		"429_per_day":    func(e *Error) bool { return !e.SpendCap() },
		"503_flex_shed":  func(e *Error) bool { return e.Class == ClassShed && e.Retryable() && !e.KeyFault() },
		"503_overloaded": func(e *Error) bool { return e.Class == ClassUnavailable },
		"200_max_tokens_thinking": func(e *Error) bool {
			return e.Class == ClassMaxTokens && strings.Contains(e.Message, "thinking used the whole output token budget") &&
				e.Usage != nil && e.Usage.ThoughtsTokens == 256
		},
	} {
		key := testKey + "-" + name
		up.Always(key, geminifake.FixtureReply(name))
		_, err := c.Generate(t.Context(), key, simpleReq())
		if e := asError(t, err, key); !check(e) {
			t.Errorf("%s: %+v", name, e)
		}
	}
}

func TestUsageCounts(t *testing.T) {
	_, base := faketest.Start(t, geminifake.Options{Respond: func(string, []byte) geminifake.Reply { return geminifake.OK("hello") }})
	c := newClient(t, base, 5*time.Second)
	resp, err := c.Generate(t.Context(), testKey, simpleReq())
	if err != nil {
		t.Fatal(err)
	}
	if u := resp.Usage; u.PromptTokens != 10 || u.CachedTokens != 4 || u.ThoughtsTokens != 3 || u.TotalTokens != u.PromptTokens+u.CandidatesTokens+u.ThoughtsTokens {
		t.Errorf("usage %+v", u)
	}
	if !strings.Contains(string(resp.SafetyRatings), "HARM_CATEGORY") {
		t.Errorf("safety ratings %s", resp.SafetyRatings)
	}
}
