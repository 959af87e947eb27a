package worker_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/keyq/keyq/gemini/geminifake"
	"github.com/keyq/keyq/internal/testutil"
	"github.com/keyq/keyq/keyring"
	"github.com/keyq/keyq/tasks"
)

func (e *env) status(i int) keyring.Status {
	e.t.Helper()
	st, err := e.ring.Statuses(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	for _, s := range st {
		if s.Index == i {
			return s
		}
	}
	e.t.Fatalf("no status for #%d in %+v", i, st)
	return keyring.Status{}
}

// Every row of the table of Gemini's answers moves key #1 (project a, with
// #2; #3 is project b) into the state it calls for, and the job ends as it
// should.
func TestEveryAnswerDrivesItsTransition(t *testing.T) {
	for _, tc := range []struct {
		fixture      string
		state        keyring.State // of key #1 after the job
		reason       string        // in its status
		projectCools bool          // #2 shares #1's fate
		job          asynq.TaskState
		class        string // failed job's class
	}{
		{"200_ok_json", keyring.StateReady, "", false, asynq.TaskStateCompleted, ""},
		{"200_prompt_blocked", keyring.StateReady, "", false, asynq.TaskStateArchived, "blocked"},
		{"200_finish_safety", keyring.StateReady, "", false, asynq.TaskStateArchived, "blocked"},
		{"200_max_tokens", keyring.StateReady, "", false, asynq.TaskStateArchived, "max_tokens"},
		{"400_api_key_invalid", keyring.StateCooling, "400 API_KEY_INVALID", false, asynq.TaskStateCompleted, ""},
		{"400_invalid_argument", keyring.StateReady, "", false, asynq.TaskStateArchived, "bad_request"},
		{"400_location_unsupported", keyring.StateReady, "", false, asynq.TaskStateArchived, "location_unsupported"},
		{"401_unauthenticated", keyring.StateDisabled, "401 ACCESS_TOKEN_TYPE_UNSUPPORTED", false, asynq.TaskStateCompleted, ""},
		{"403_consumer_suspended", keyring.StateDisabled, "403 CONSUMER_SUSPENDED", true, asynq.TaskStateCompleted, ""},
		{"403_leaked", keyring.StateDisabled, "403 leaked", false, asynq.TaskStateCompleted, ""},
		{"403_service_disabled", keyring.StateDisabled, "403 SERVICE_DISABLED", true, asynq.TaskStateCompleted, ""},
		{"404_model_not_found", keyring.StateReady, "", false, asynq.TaskStateArchived, "not_found"},
		{"429_per_day", keyring.StateCooling, "429 PerDay", true, asynq.TaskStateCompleted, ""},
		{"429_per_minute", keyring.StateCooling, "429 PerMinute", true, asynq.TaskStateCompleted, ""},
		{"429_no_details", keyring.StateCooling, "429 RESOURCE_EXHAUSTED", true, asynq.TaskStateCompleted, ""},
		{"429_input_tpm", keyring.StateCooling, "429 PerMinute", true, asynq.TaskStateCompleted, ""},
		{"500_internal", keyring.StateReady, "", false, asynq.TaskStateCompleted, ""},
		{"503_deadline_expired", keyring.StateReady, "", false, asynq.TaskStateCompleted, ""},
		{"503_overloaded", keyring.StateReady, "", false, asynq.TaskStateCompleted, ""},
		{"504_deadline_exceeded", keyring.StateReady, "", false, asynq.TaskStateCompleted, ""},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			t.Parallel()
			e := start(t, setup{retryDelay: time.Millisecond, keys: []string{"a:" + secrets[0], "a:" + secrets[1], "b:" + secrets[2]},
				ring: keyring.Options{ProbeFirst: time.Hour}})
			e.up.Script(secrets[0], geminifake.FixtureReply(tc.fixture))
			info := e.await(e.enqueue("Holmes"), tc.job)
			if tc.class != "" {
				if je := tasks.ParseJobError(info.LastErr); string(je.Class) != tc.class || info.Retried != 0 {
					t.Errorf("job error %+v retried %d, want %s at once", je, info.Retried, tc.class)
				}
			} else if r := result(t, info); r.Key == "#1" && tc.fixture != "200_ok_json" {
				t.Errorf("job served by #1, which failed")
			}
			s := e.status(1)
			if s.State != tc.state || !strings.Contains(s.Reason, tc.reason) {
				t.Errorf("#1 = %s (%s), want %s (%s)", s.State, s.Reason, tc.state, tc.reason)
			}
			if s2 := e.status(2); (s2.State != keyring.StateReady) != tc.projectCools {
				t.Errorf("#2 (same project) = %s (%s); project-wide: %v", s2.State, s2.Reason, tc.projectCools)
			}
			if s3 := e.status(3); s3.State != keyring.StateReady {
				t.Errorf("#3 (other project) = %s (%s), want ready", s3.State, s3.Reason)
			}
			if tc.state != keyring.StateReady && !strings.Contains(e.logs.String(), "[Gemini] API Key #1 ") {
				t.Errorf("no log line for #1's change of state")
			}
		})
	}
}

// When every project answers 429, the job waits for the first to come back
// without spending a retry: with JOB_MAX_RETRY 0 it still succeeds.
func TestWaitingForAKeySpendsNoRetry(t *testing.T) {
	e := start(t, setup{retryDelay: time.Millisecond, keys: []string{"a:" + secrets[0], "b:" + secrets[1]}, maxRetry: 0,
		ring: keyring.Options{PoolPause: 3 * time.Second}})
	quota := bytes.Replace(geminifake.Fixture("429_per_minute"), []byte(`"26s"`), []byte(`"4s"`), 1)
	for _, s := range secrets[:2] {
		e.up.Script(s, geminifake.Reply{Status: 429, Body: quota})
	}
	id := e.enqueue("Poirot")
	info := e.await(id, asynq.TaskStateRetry)
	if je := tasks.ParseJobError(info.LastErr); je.Class != "waiting_for_key" || info.Retried != 0 {
		t.Errorf("waiting job: %+v retried %d", je, info.Retried)
	}
	if wait := time.Until(info.NextProcessAt); wait < time.Second || wait > 5*time.Second {
		t.Errorf("next attempt in %s, want when the pool pause ends (about 3s)", wait)
	}
	info = e.await(id, asynq.TaskStateCompleted)
	if info.Retried != 0 {
		t.Errorf("Retried = %d after waiting for a key, want 0", info.Retried)
	}
	if n := len(e.up.Calls()); n != 3 {
		t.Errorf("%d upstream calls, want 2 x 429 then 1 success: no call while both projects cooled", n)
	}
	if !strings.Contains(e.logs.String(), "[Gemini] Key pool paused for 3s (429 from 2 of 2 projects within 10s)") {
		t.Errorf("no cooling line:\n%s", e.logs.String())
	}
}

// A key disabled on suspicion comes back when its probe succeeds.
func TestDisabledKeyComesBackAfterProbe(t *testing.T) {
	e := start(t, setup{retryDelay: time.Millisecond, ring: keyring.Options{ProbeFirst: 100 * time.Millisecond}})
	e.up.Script(secrets[0], geminifake.FixtureReply("401_unauthenticated"))
	e.await(e.enqueue("Marple"), asynq.TaskStateCompleted)
	if s := e.status(1); s.State != keyring.StateDisabled {
		t.Fatalf("#1 = %+v, want disabled after a 401", s)
	}
	testutil.Eventually(t, 10*time.Second, "#1 to be probed back", func() bool {
		return e.status(1).State == keyring.StateReady
	})
	// The key is enabled in Redis just before the line is logged.
	testutil.Eventually(t, 5*time.Second, "the log of the probe", func() bool {
		return strings.Contains(e.logs.String(), "[Gemini] API Key #1 is back: probe succeeded")
	})
	var probes int
	for _, c := range e.up.Calls() {
		if c.Method == "GET" {
			probes++
		}
	}
	if probes != 1 {
		t.Errorf("%d probe calls, want 1", probes)
	}
}

// A leaked key is disabled for good: never probed.
func TestLeakedKeyIsNotProbed(t *testing.T) {
	e := start(t, setup{retryDelay: time.Millisecond, ring: keyring.Options{ProbeFirst: 50 * time.Millisecond}})
	e.up.Script(secrets[0], geminifake.FixtureReply("403_leaked"))
	e.await(e.enqueue("Moran"), asynq.TaskStateCompleted)
	// Long enough for several probe rounds to have claimed it, were it due.
	for range 3 {
		e.await(e.enqueue("Adler"), asynq.TaskStateCompleted)
	}
	if s := e.status(1); s.State != keyring.StateDisabled || s.Until != nil {
		t.Errorf("#1 = %+v, want disabled with no probe", s)
	}
	for _, c := range e.up.Calls() {
		if c.Method == "GET" {
			t.Errorf("a leaked key was probed")
		}
	}
}
