package worker

import (
	"strings"
	"testing"
	"time"

	"github.com/keyq/keyq/gemini"
	"github.com/keyq/keyq/keyring"
	"github.com/keyq/keyq/tasks"
)

// The judgement of every kind of answer, without Redis or network: what the
// run does next, what the key hears, and the job's error when it ends.
func TestJudge(t *testing.T) {
	now := time.Date(2026, 11, 28, 15, 4, 5, 0, time.UTC) // 07:04 in Los Angeles
	mid := attempt{n: 2, max: 6, key: "#3", requestBytes: 400}
	last := attempt{n: 6, max: 6, key: "#3", requestBytes: 400}
	for _, tc := range []struct {
		name    string
		e       *gemini.Error
		a       attempt
		step    step
		kind    keyring.Kind
		keyBad  bool
		class   tasks.ErrorClass // of the job error, "" for none
		final   bool
		reason  string
		forD    time.Duration
		until   time.Time
		grow    bool
		probe   bool
		alerted bool
	}{
		{name: "ok", a: mid, step: stepSucceed, kind: keyring.Success},
		{name: "503", e: &gemini.Error{Class: gemini.ClassUnavailable, HTTPStatus: 503, Status: "UNAVAILABLE"},
			a: mid, step: stepNextKey, kind: keyring.NoFault, reason: "503 UNAVAILABLE"},
		{name: "503 on the last attempt", e: &gemini.Error{Class: gemini.ClassUnavailable, HTTPStatus: 503, Status: "UNAVAILABLE"},
			a: last, step: stepGiveUp, kind: keyring.NoFault, class: "unavailable", reason: "503 UNAVAILABLE"},
		{name: "network", e: &gemini.Error{Class: gemini.ClassNetwork},
			a: mid, step: stepNextKey, kind: keyring.NoFault, reason: "network"},
		{name: "429 per day", e: &gemini.Error{Class: gemini.ClassRateLimited, HTTPStatus: 429, QuotaID: "GenerateRequestsPerDayPerProjectPerModel-FreeTier", RetryAfter: 36 * time.Second},
			a: mid, step: stepNextKey, kind: keyring.CoolProject, reason: "429 PerDay",
			until: time.Date(2026, 11, 29, 0, 0, 0, 0, pacific)},
		{name: "429 retry info", e: &gemini.Error{Class: gemini.ClassRateLimited, HTTPStatus: 429, QuotaID: "GenerateRequestsPerMinutePerProjectPerModel", RetryAfter: 20 * time.Second},
			a: mid, step: stepNextKey, kind: keyring.CoolProject, reason: "429 PerMinute", forD: 21 * time.Second},
		{name: "429 per minute, no retry info", e: &gemini.Error{Class: gemini.ClassRateLimited, HTTPStatus: 429, QuotaID: "GenerateRequestsPerMinutePerProjectPerModel"},
			a: mid, step: stepNextKey, kind: keyring.CoolProject, reason: "429 PerMinute", forD: coolPerMinute},
		{name: "429 no details", e: &gemini.Error{Class: gemini.ClassRateLimited, HTTPStatus: 429, Status: "RESOURCE_EXHAUSTED"},
			a: mid, step: stepNextKey, kind: keyring.CoolProject, reason: "429 RESOURCE_EXHAUSTED", forD: coolNoDetails, grow: true},
		{name: "429 input tokens, request too big", e: &gemini.Error{Class: gemini.ClassRateLimited, HTTPStatus: 429, QuotaID: "GenerateContentInputTokensPerModelPerMinute", QuotaValue: "50", RetryAfter: time.Second},
			a: mid, step: stepFail, kind: keyring.CoolProject, class: tasks.ClassTooLarge, final: true, reason: "429 PerMinute", forD: 1050 * time.Millisecond},
		{name: "invalid key", e: &gemini.Error{Class: gemini.ClassKeyInvalid, HTTPStatus: 400, Reason: "API_KEY_INVALID"},
			a: mid, step: stepNextKey, kind: keyring.Suspect, keyBad: true, reason: "400 API_KEY_INVALID", forD: coolSuspectKey, probe: true},
		{name: "401", e: &gemini.Error{Class: gemini.ClassUnauthenticated, HTTPStatus: 401, Reason: "ACCESS_TOKEN_TYPE_UNSUPPORTED"},
			a: mid, step: stepNextKey, kind: keyring.Disable, keyBad: true, reason: "401 ACCESS_TOKEN_TYPE_UNSUPPORTED", probe: true},
		{name: "403 leaked", e: &gemini.Error{Class: gemini.ClassPermissionDenied, HTTPStatus: 403, Message: "Your API key was reported as leaked."},
			a: mid, step: stepNextKey, kind: keyring.Disable, keyBad: true, reason: "403 leaked"},
		{name: "403 suspended", e: &gemini.Error{Class: gemini.ClassPermissionDenied, HTTPStatus: 403, Reason: "CONSUMER_SUSPENDED", ProjectWide: true},
			a: mid, step: stepNextKey, kind: keyring.DisableProject, keyBad: true, reason: "403 CONSUMER_SUSPENDED", probe: true},
		{name: "402", e: &gemini.Error{Class: gemini.ClassBilling, HTTPStatus: 402},
			a: mid, step: stepNextKey, kind: keyring.CoolKey, keyBad: true, reason: "402", forD: coolBilling},
		{name: "bad request", e: &gemini.Error{Class: gemini.ClassBadRequest, HTTPStatus: 400, Status: "INVALID_ARGUMENT"},
			a: mid, step: stepFail, kind: keyring.NoFault, class: "bad_request", final: true, reason: "400 INVALID_ARGUMENT"},
		{name: "location", e: &gemini.Error{Class: gemini.ClassLocation, HTTPStatus: 400, Status: "FAILED_PRECONDITION"},
			a: mid, step: stepFail, kind: keyring.NoFault, class: "location_unsupported", final: true, reason: "400 FAILED_PRECONDITION", alerted: true},
		{name: "blocked", e: &gemini.Error{Class: gemini.ClassBlocked, HTTPStatus: 200, Reason: "SAFETY"},
			a: mid, step: stepFail, kind: keyring.NoFault, class: "blocked", final: true, reason: "200 SAFETY"},
		{name: "first unusable answer", e: &gemini.Error{Class: gemini.ClassUnusable, HTTPStatus: 200},
			a: mid, step: stepNextKey, kind: keyring.NoFault, reason: "200"},
		{name: "second unusable answer", e: &gemini.Error{Class: gemini.ClassUnusable, HTTPStatus: 200},
			a: attempt{n: 3, max: 6, unusable: 1}, step: stepFail, kind: keyring.NoFault, class: "unusable", final: true, reason: "200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := judge(tc.e, tc.a, now, 0.5)
			o := v.outcome
			if v.step != tc.step || o.Kind != tc.kind || v.keyBad != tc.keyBad || o.Reason != tc.reason ||
				o.For != tc.forD || !o.Until.Equal(tc.until) || o.Grow != tc.grow || o.Probe != tc.probe || (v.alert != "") != tc.alerted {
				t.Errorf("verdict %+v, outcome %+v", v, o)
			}
			switch {
			case tc.class == "" && v.err != nil:
				t.Errorf("job error %v, want none", v.err)
			case tc.class != "" && (v.err == nil || v.err.Class != tc.class || v.err.Final != tc.final):
				t.Errorf("job error %+v, want class %s final %v", v.err, tc.class, tc.final)
			}
		})
	}
	if v := judge(&gemini.Error{Class: gemini.ClassInternal, HTTPStatus: 500}, last, now, 0); !strings.Contains(v.err.Message, "all 6 attempts failed; the last, with key #3") {
		t.Errorf("give-up message %q", v.err.Message)
	}
}

func TestTooBigForQuota(t *testing.T) {
	input := func(v string) *gemini.Error {
		return &gemini.Error{Class: gemini.ClassRateLimited, QuotaID: "GenerateContentInputTokensPerModelPerMinute-FreeTier", QuotaValue: v}
	}
	for _, tc := range []struct {
		e     *gemini.Error
		bytes int
		want  bool
	}{
		{input("250000"), 4 * 250001, true},
		{input("250000"), 4 * 250000, false},
		{input("not a number"), 1 << 30, false},
		{input("0"), 1 << 30, false},
		{&gemini.Error{Class: gemini.ClassRateLimited, QuotaID: "GenerateRequestsPerMinutePerProjectPerModel", QuotaValue: "1"}, 1 << 30, false},
		{&gemini.Error{Class: gemini.ClassUnavailable, QuotaID: "InputTokens", QuotaValue: "1"}, 1 << 30, false},
	} {
		if got := tooBigForQuota(tc.e, tc.bytes); got != tc.want {
			t.Errorf("tooBigForQuota(%s=%s, %d bytes) = %v", tc.e.QuotaID, tc.e.QuotaValue, tc.bytes, got)
		}
	}
}

func TestBackoff(t *testing.T) {
	for n, want := range []time.Duration{15 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute} {
		for range 50 {
			if d := backoff(15*time.Second, n); d > want || d < want*3/4 {
				t.Fatalf("backoff(15s, %d) = %s, want within [%s, %s]", n, d, want*3/4, want)
			}
		}
	}
	if d := backoff(15*time.Second, 40); d > maxJobRetryDelay || d < maxJobRetryDelay*3/4 {
		t.Errorf("backoff(15s, 40) = %s, want at most %s", d, maxJobRetryDelay)
	}
}

func TestRoundsStartAgainOverTheGoodKeys(t *testing.T) {
	keys := []keyring.Key{keyring.NewKey(1, "k1"), keyring.NewKey(2, "k2"), keyring.NewKey(3, "k3")}
	var r rounds
	r.add(keys[0], true) // bad in itself
	r.add(keys[1], false)
	if s := r.skip(3); s.Len() != 2 {
		t.Fatalf("mid-round skip has %d keys, want 2", s.Len())
	}
	r.add(keys[2], false)
	if s := r.skip(3); s.Len() != 1 || !s.Has(keys[0]) {
		t.Errorf("new round skips %d keys, want only the bad #1", s.Len())
	}
	var all rounds
	for _, k := range keys {
		all.add(k, true)
	}
	if s := all.skip(3); s.Len() != 0 {
		t.Errorf("every key bad: the new round skips %d, want none", s.Len())
	}
}

// The steps this issue added: a gone model passes the job on when the
// chain has more; a spend cap cools the project for the whole window.
func TestJudgeModelsAndSpend(t *testing.T) {
	now := time.Date(2026, 11, 28, 15, 4, 5, 0, time.UTC)
	notFound := &gemini.Error{Class: gemini.ClassNotFound, HTTPStatus: 404, Status: "NOT_FOUND"}
	if v := judge(notFound, attempt{n: 1, max: 6, nextModel: true}, now, 0); v.step != stepNextModel || v.outcome.Kind != keyring.NoFault {
		t.Errorf("404 with a next model: %+v", v)
	}
	if v := judge(notFound, attempt{n: 1, max: 6}, now, 0); v.step != stepFail || v.err.Class != "not_found" {
		t.Errorf("404 on the last model: %+v", v)
	}
	spend := &gemini.Error{Class: gemini.ClassRateLimited, HTTPStatus: 429, QuotaID: "GenerateContentSpendPerProjectPer10Minutes-PaidTier1", RetryAfter: 41 * time.Second}
	v := judge(spend, attempt{n: 1, max: 6}, now, 0.5)
	if v.step != stepNextKey || v.outcome.Kind != keyring.CoolProject || v.outcome.For != coolSpendCap || v.outcome.Reason != "429 spend cap" {
		t.Errorf("spend cap: %+v", v)
	}
	shed := &gemini.Error{Class: gemini.ClassShed, HTTPStatus: 503}
	if v := judge(shed, attempt{n: 1, max: 6}, now, 0); v.step != stepNextKey || v.outcome.Kind != keyring.NoFault || v.keyBad {
		t.Errorf("flex shed: %+v", v)
	}
	if v := judge(shed, attempt{n: 6, max: 6}, now, 0); v.step != stepGiveUp || v.err.Final {
		t.Errorf("flex shed on the last attempt must leave the job to its retries: %+v", v)
	}
}

func TestJudgeNoKey(t *testing.T) {
	now := time.Date(2026, 11, 28, 15, 4, 5, 0, time.UTC) // 07:04 Pacific: midnight is 16h56m away
	toMidnight := nextPacificMidnight(now).Sub(now)
	for _, tc := range []struct {
		nk   keyring.NoKeyError
		next bool
	}{
		{keyring.NoKeyError{RetryAfter: toMidnight, Reason: "projects cooling down"}, true},
		{keyring.NoKeyError{RetryAfter: toMidnight - 10*time.Second, Reason: "projects at their daily budget (GEMINI_RPD)"}, true},
		{keyring.NoKeyError{RetryAfter: 26 * time.Second, Reason: "projects cooling down"}, false},
		{keyring.NoKeyError{RetryAfter: toMidnight, Reason: "keys cooling down"}, false},
		{keyring.NoKeyError{RetryAfter: -1, Reason: "every key is disabled"}, false},
	} {
		if got := judgeNoKey(&tc.nk, now); got != tc.next {
			t.Errorf("%+v: next model %v, want %v", tc.nk, got, tc.next)
		}
	}
}
