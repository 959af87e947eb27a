package keyring

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// FingerprintLen is how many hex digits of a key's SHA-256 name it.
const FingerprintLen = 12

// ErrNoKeys is returned when a key list holds no key at all.
var ErrNoKeys = errors.New("no API key configured")

// Key is one configured API key. Every way of printing it (%v, %+v, %#v,
// slog) shows its index and fingerprint; only Secret gives the key itself.
type Key struct {
	// Index is the key's 1-based position in the configured list.
	Index int
	// Fingerprint is the first FingerprintLen hex digits of the key's SHA-256.
	Fingerprint string
	// Project is the Google Cloud project the key draws quota from: the
	// label given with it ("team-a:KEY"), or "key-<fingerprint>" for an
	// unlabeled key, which is a project of its own.
	Project string

	secret string
	lease  string // set by Pick: the call's entry in the per-minute log
}

// NewKey makes the key at the 1-based index from its secret, in a project
// of its own.
func NewKey(index int, secret string) Key {
	fp := Fingerprint(secret)
	return Key{Index: index, Fingerprint: fp, Project: "key-" + fp, secret: secret}
}

// Fingerprint names a key without revealing it.
func Fingerprint(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])[:FingerprintLen]
}

// Secret returns the key itself, for the one header that carries it.
func (k Key) Secret() string { return k.secret }

// Name is the key as operators know it from the logs: "#2".
func (k Key) Name() string { return "#" + strconv.Itoa(k.Index) }

// String shows the index and fingerprint, never the key.
func (k Key) String() string { return k.Name() + " (" + k.Fingerprint + ")" }

// GoString keeps %#v from printing the secret field.
func (k Key) GoString() string { return "keyring.Key{" + k.String() + "}" }

// Format makes every fmt verb print String, so %+v cannot reach the secret.
func (k Key) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(k.String())) }

// LogValue makes slog print the index and fingerprint, never the key.
func (k Key) LogValue() slog.Value {
	return slog.GroupValue(slog.Int("index", k.Index), slog.String("fingerprint", k.Fingerprint), slog.String("project", k.Project))
}

// ParseKeys reads the seed's format: keys separated by commas, spaces around
// them trimmed, empty entries dropped. A key may carry the label of its
// project, "team-a:KEY"; keys of one project share its quota. A repeated key
// is dropped too, and its 1-based position among the non-empty entries is
// returned in dropped so the caller can warn without printing it.
func ParseKeys(list string) (keys []Key, dropped []int, err error) {
	seen := make(map[string]int)
	pos := 0
	for _, raw := range strings.Split(list, ",") {
		secret := strings.TrimSpace(raw)
		if secret == "" {
			continue
		}
		pos++
		project := ""
		if label, rest, ok := strings.Cut(secret, ":"); ok {
			if !projectLabel.MatchString(label) {
				return nil, nil, fmt.Errorf("entry %d: a project label is 1-64 letters, digits, '.', '_' or '-' before the ':'", pos)
			}
			project, secret = label, strings.TrimSpace(rest)
			if secret == "" {
				// Not quoting the "label": it may be a key with a stray colon.
				return nil, nil, fmt.Errorf("entry %d: no key after the ':' (project:KEY)", pos)
			}
		}
		if i := strings.IndexFunc(secret, badKeyRune); i >= 0 {
			return nil, nil, fmt.Errorf("entry %d: a key holds only printable ASCII without spaces or quotes (found %q at offset %d)", pos, secret[i:i+1], i)
		}
		if _, dup := seen[secret]; dup {
			dropped = append(dropped, pos)
			continue
		}
		seen[secret] = len(keys)
		k := NewKey(len(keys)+1, secret)
		if project != "" {
			k.Project = project
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, nil, ErrNoKeys
	}
	return keys, dropped, nil
}

var projectLabel = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// badKeyRune rejects what a misquoted .env line leaves in a key; naming the
// offending rune does not reveal the key.
func badKeyRune(r rune) bool {
	return r > unicode.MaxASCII || !unicode.IsPrint(r) || unicode.IsSpace(r) || r == '"' || r == '\''
}
