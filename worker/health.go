package worker

import (
	"strconv"
	"strings"
	"time"

	"github.com/keyq/keyq/gemini"
	"github.com/keyq/keyq/keyring"
)

// How long each kind of trouble rests a key or its project. Gemini counts
// quota per project, so quota answers cool the project; answers about the
// key itself cool or disable the key; the model's own trouble (503, 500,
// timeouts) and bad requests are never held against a key.
const (
	coolPerMinute      = 60 * time.Second // 429 PerMinute without RetryInfo
	coolNoDetails      = 30 * time.Second // 429 without details; doubles on repeats
	coolSuspectKey     = 10 * time.Minute // first API_KEY_INVALID
	coolBilling        = 3 * time.Hour    // 402, prepayment depleted
	retryInfoJitterMax = 0.1              // share of RetryInfo's delay added at random
)

var pacific, _ = time.LoadLocation("America/Los_Angeles") // keyring embeds tzdata

// outcomeOf tells the keyring what an upstream answer means for the key.
func outcomeOf(e *gemini.Error, now time.Time, jitter float64) keyring.Outcome {
	o := keyring.Outcome{Kind: keyring.NoFault, Class: string(e.Class), Reason: reasonOf(e)}
	switch e.Class {
	case gemini.ClassRateLimited:
		o.Kind = keyring.CoolProject
		switch {
		case e.PerDay():
			// RPD resets at midnight Pacific; retryDelay means nothing here.
			t := now.In(pacific)
			o.Until = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, pacific)
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
		case strings.Contains(strings.ToLower(e.Message), "leaked"):
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

// reasonOf is the short reason operators see: "429 PerMinute", "403 leaked".
func reasonOf(e *gemini.Error) string {
	code := string(e.Class)
	if e.HTTPStatus != 0 {
		code = strconv.Itoa(e.HTTPStatus)
	}
	switch {
	case e.PerDay():
		return code + " PerDay"
	case strings.Contains(e.QuotaID, "PerMinute"):
		return code + " PerMinute"
	case strings.Contains(strings.ToLower(e.Message), "leaked"):
		return code + " leaked"
	case e.Reason != "":
		return code + " " + e.Reason
	case e.Status != "":
		return code + " " + e.Status
	}
	return code
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
