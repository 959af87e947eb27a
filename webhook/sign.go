package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of a Standard Webhooks message.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// DefaultTolerance is how far a message's timestamp may be from now for
// Verify: older messages may be replays.
const DefaultTolerance = 5 * time.Minute

const secretPrefix = "whsec_"

// Secret is a signing key: the bytes of a "whsec_<base64>" secret. Its
// String never shows them.
type Secret []byte

func (Secret) String() string { return "whsec_[redacted]" }

// ParseSecret reads one "whsec_<base64>" secret. Its error never echoes
// the value.
func ParseSecret(s string) (Secret, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, secretPrefix) {
		return nil, errors.New("a webhook secret must start with whsec_ followed by base64 (openssl rand -base64 32)")
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, secretPrefix))
	if err != nil || len(b) < 16 {
		return nil, errors.New("a webhook secret must be whsec_ followed by the standard base64 of 16 or more random bytes (openssl rand -base64 32)")
	}
	return b, nil
}

// ParseSecrets reads secrets separated by spaces or commas: the first signs
// new messages' first signature, and every one signs each message, so that
// receivers can move to a new secret before the old one is dropped.
func ParseSecrets(list string) ([]Secret, error) {
	var out []Secret
	for _, f := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' }) {
		s, err := ParseSecret(f)
		if err != nil {
			return nil, fmt.Errorf("secret %d: %w", len(out)+1, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// Signature is the base64 HMAC-SHA256 of "{id}.{timestamp}.{body}".
func Signature(secret Secret, id string, ts time.Time, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(id + "." + strconv.FormatInt(ts.Unix(), 10) + "."))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Sign sets the three headers of a message on h, signed with every secret.
func Sign(h http.Header, secrets []Secret, id string, ts time.Time, body []byte) {
	sigs := make([]string, len(secrets))
	for i, s := range secrets {
		sigs[i] = "v1," + Signature(s, id, ts, body)
	}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, strings.Join(sigs, " "))
}

// Verification failures.
var (
	ErrMissingHeaders = errors.New("webhook: missing webhook-id, webhook-timestamp or webhook-signature")
	ErrTimestamp      = errors.New("webhook: the timestamp is too far from now (a replay?)")
	ErrSignature      = errors.New("webhook: no signature matches")
)

// Verify checks a received message: its timestamp within tolerance of now
// (0: DefaultTolerance) and one of its v1 signatures made with one of the
// secrets. Receivers should also de-duplicate by webhook-id: delivery is
// at least once.
func Verify(secrets []Secret, h http.Header, body []byte, tolerance time.Duration) error {
	return verifyAt(time.Now(), secrets, h, body, tolerance)
}

func verifyAt(now time.Time, secrets []Secret, h http.Header, body []byte, tolerance time.Duration) error {
	id, tsText, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || tsText == "" || sigs == "" {
		return ErrMissingHeaders
	}
	sec, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return ErrTimestamp
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	ts := time.Unix(sec, 0)
	if d := now.Sub(ts); d > tolerance || d < -tolerance {
		return ErrTimestamp
	}
	for _, s := range secrets {
		want := []byte(Signature(s, id, ts, body))
		for _, sig := range strings.Fields(sigs) {
			v, b64, ok := strings.Cut(sig, ",")
			if ok && v == "v1" && hmac.Equal([]byte(b64), want) {
				return nil
			}
		}
	}
	return ErrSignature
}
