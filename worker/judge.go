package worker

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/keyq/keyq/gemini"
	"github.com/keyq/keyq/keyring"
	"github.com/keyq/keyq/tasks"
)

// This file is where an upstream answer is judged: judge is one pure
// function from an answer and the run's state to what the run does next and
// what the answer means for the key. It touches no Redis, no network and no
// clock; the attempt loop (handler.go) carries the verdict out.

// step is what a run does after an answer.
type step int

const (
	stepSucceed   step = iota // the answer is the job's result
	stepNextKey               // try again with the next key, after the retry delay
	stepGiveUp                // the run is over, the job runs again later (asynq's retry)
	stepFail                  // the job fails for good: no attempt or run can mend it
	stepNextModel             // this model cannot answer: the run goes on with the next of the chain
)

// attempt is what the run knows when it judges an answer.
type attempt struct {
	n, max       int    // this attempt, 1-based, of at most max
	key          string // the key's name, "#2", for messages
	unusable     int    // earlier answers of this run that could not be used
	requestBytes int    // size of the request's text, for a token estimate
	nextModel    bool   // the job's chain has a model after this one
}

// verdict is the judgement on one answer.
type verdict struct {
	step    step
	outcome keyring.Outcome // what the answer means for the key
	keyBad  bool            // the key itself failed: pass over it for the rest of the run
	err     *tasks.JobError // with stepGiveUp and stepFail: why
	alert   string          // a problem of the whole pool, for an ERROR line ("" if none)
}

// How long each kind of trouble rests a key or its project. Gemini counts
// quota per project, so quota answers cool the project; answers about the
// key itself cool or disable the key; the model's own trouble (503, 500,
// timeouts) and bad requests are never held against a key.
const (
	coolPerMinute      = 60 * time.Second // 429 PerMinute without RetryInfo
	coolNoDetails      = 30 * time.Second // 429 without details; doubles on repeats
	coolSuspectKey     = 10 * time.Minute // first API_KEY_INVALID
	coolBilling        = 3 * time.Hour    // 402, prepayment depleted
	coolSpendCap       = 10 * time.Minute // 429 spend cap: the window Google sums spend over
	retryInfoJitterMax = 0.1              // share of RetryInfo's delay added at random
	maxUnusable        = 2                // answers we could not use before the job fails
)

// alertLocation is logged when Google refuses the egress IP: every key of
// the pool gets the same answer.
const alertLocation = "[Gemini] Google refuses this host's location (egress IP) for every key: jobs fail until keyq runs from a supported region"

// judge decides what an answer means. e is the upstream's failure, or nil
// for a usable answer (the caller turns an answer that breaks the schema
// into a ClassUnusable error). now and jitter (0..1) make cooldowns.
func judge(e *gemini.Error, a attempt, now time.Time, jitter float64) verdict {
	if e == nil {
		return verdict{step: stepSucceed, outcome: keyring.Outcome{Kind: keyring.Success}}
	}
	v := verdict{step: stepNextKey, outcome: outcomeOf(e, now, jitter), keyBad: e.KeyFault()}
	if e.Class == gemini.ClassLocation {
		v.alert = alertLocation
	}
	switch {
	case e.Class == gemini.ClassNotFound && a.nextModel:
		// The model is gone (retired, renamed): the next of the chain may
		// answer. A job that named its model, or the chain's last, fails.
		v.step, v.err = stepNextModel, &tasks.JobError{Class: tasks.ErrorClass(e.Class), Message: e.Error()}
	case tooBigForQuota(e, a.requestBytes):
		v.step, v.err = stepFail, &tasks.JobError{Class: tasks.ClassTooLarge, Final: true,
			Message: fmt.Sprintf("the request alone exceeds the project's input tokens per minute (%s): %s", e.QuotaValue, e.Error())}
	case !e.Retryable():
		v.step, v.err = stepFail, &tasks.JobError{Class: tasks.ErrorClass(e.Class), Message: e.Error(), Final: true}
	case e.Class == gemini.ClassUnusable && a.unusable+1 >= maxUnusable:
		// One more attempt for an answer we could not use, then give up:
		// asking again rarely changes what the model says.
		v.step, v.err = stepFail, &tasks.JobError{Class: tasks.ErrorClass(e.Class), Message: e.Error(), Final: true}
	case a.n >= a.max:
		v.step, v.err = stepGiveUp, &tasks.JobError{Class: tasks.ErrorClass(e.Class),
			Message: fmt.Sprintf("all %d attempts failed; the last, with key %s: %s", a.max, a.key, e.Error())}
	}
	return v
}

// outcomeOf tells the keyring what an upstream failure means for the key.
func outcomeOf(e *gemini.Error, now time.Time, jitter float64) keyring.Outcome {
	o := keyring.Outcome{Kind: keyring.NoFault, Class: string(e.Class), Reason: reasonOf(e)}
	switch e.Class {
	case gemini.ClassRateLimited:
		o.Kind = keyring.CoolProject
		switch {
		case e.SpendCap():
			// The project spent its tier's cap within the rolling 10
			// minutes: every model of it is refused until spend rolls out;
			// retryDelay and per-minute waits are both too short.
			o.For = coolSpendCap
		case e.PerDay():
			// RPD resets at midnight Pacific; retryDelay means nothing here.
			o.Until = nextPacificMidnight(now)
		case e.RetryAfter > 0:
			o.For = e.RetryAfter + time.Duration(float64(e.RetryAfter)*retryInfoJitterMax*jitter)
		case strings.Contains(e.QuotaID, "PerMinute"):
			o.For = coolPerMinute
		default:
			o.For, o.Grow = coolNoDetails, true
		}
	case gemini.ClassKeyInvalid:
		o.Kind, o.For, o.Probe = keyring.Suspect, coolSuspectKey, true
	case gemini.ClassUnauthenticated:
		o.Kind, o.Probe = keyring.Disable, true
	case gemini.ClassPermissionDenied:
		switch {
		case leaked(e):
			o.Kind = keyring.Disable // for good: the key must be replaced
		case e.ProjectWide:
			o.Kind, o.Probe = keyring.DisableProject, true // suspended, API disabled
		default:
			o.Kind, o.Probe = keyring.Disable, true
		}
	case gemini.ClassBilling:
		o.Kind, o.For = keyring.CoolKey, coolBilling
	}
	return o
}

func leaked(e *gemini.Error) bool { return strings.Contains(strings.ToLower(e.Message), "leaked") }

// reasonOf is the short reason operators see: "429 PerMinute", "403 leaked".
func reasonOf(e *gemini.Error) string {
	code := statusOrClass(e)
	switch {
	case e.SpendCap():
		return code + " spend cap"
	case e.PerDay():
		return code + " PerDay"
	case strings.Contains(e.QuotaID, "PerMinute"):
		return code + " PerMinute"
	case leaked(e):
		return code + " leaked"
	case e.Reason != "":
		return code + " " + e.Reason
	case e.Status != "":
		return code + " " + e.Status
	}
	return code
}

// statusOrClass is what the operators' log line shows in parentheses: the
// HTTP status, or the class of a failure that had none ("network").
func statusOrClass(e *gemini.Error) string {
	if e.HTTPStatus != 0 {
		return strconv.Itoa(e.HTTPStatus)
	}
	return string(e.Class)
}

// tooBigForQuota reports a 429 that no wait can cure: the request alone
// holds more input tokens than the project may send in a minute.
func tooBigForQuota(e *gemini.Error, requestBytes int) bool {
	if e.Class != gemini.ClassRateLimited || !strings.Contains(e.QuotaID, "InputTokens") {
		return false
	}
	limit, err := strconv.Atoi(e.QuotaValue)
	// About 4 bytes a token for text; images count far less per byte, so
	// this errs on the side of waiting.
	return err == nil && limit > 0 && requestBytes/4 > limit
}

// pacific is where Gemini's per-day quotas reset at midnight.
var pacific, _ = time.LoadLocation("America/Los_Angeles") // keyring embeds tzdata

func nextPacificMidnight(now time.Time) time.Time {
	t := now.In(pacific)
	return time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, pacific)
}

// perDayReasons are the keyring's reasons for a pool with no usable key
// that can mean a per-day limit: projects cooled by a PerDay 429, or at
// their GEMINI_RPD budget.
var perDayReasons = []string{"projects cooling down", "projects at their daily budget"}

// judgeNoKey decides whether a model's pool with no usable key should pass
// the job to the next model of its chain: when the first key is back only
// at (about) the next Pacific midnight and projects, not keys, are what
// rest, every project is out of the model's daily quota. Anything shorter
// is waited for on the same model.
func judgeNoKey(nk *keyring.NoKeyError, now time.Time) bool {
	if nk.RetryAfter < 0 {
		return false
	}
	perDay := false
	for _, r := range perDayReasons {
		perDay = perDay || strings.HasPrefix(nk.Reason, r)
	}
	return perDay && !now.Add(nk.RetryAfter).Before(nextPacificMidnight(now).Add(-time.Minute))
}
