package keyring_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/keyq/keyq/internal/testutil"
	"github.com/keyq/keyq/keyring"
)

var hex12 = regexp.MustCompile(`^[0-9a-f]{12}$`)

// parseKeysText is the fixed text of ParseKeys's error messages: a piece of
// an entry that is also a piece of this text is not a leak.
const parseKeysText = "entry : a project label is 1-64 letters, digits, '.', '_' or '-' before the ':'" +
	"project label has no key after the ':'" +
	"a key holds only printable ASCII without spaces or quotes (found at offset )" +
	keyringNoKeys

const keyringNoKeys = "no API key configured"

// FuzzParseKeys feeds arbitrary key lists to ParseKeys: it never panics,
// numbers the keys 1..n in order with 12-hex fingerprints, never echoes a
// key (or a 12-character piece of an entry) in an error, and parsing the
// keys joined again gives the same keys.
func FuzzParseKeys(f *testing.F) {
	for _, s := range []string{
		"",
		",,, ,",
		"k1",
		"k1,k2,k3",
		" AIzaSyEXAMPLE-test-key-number-one-0001 , AIzaSyEXAMPLE-test-key-number-two-0002 ",
		"team-a:KEY1,team-a:KEY2,team-b:KEY3",
		"k1,k1,k2,k1",
		"team a:KEY",
		"team-a:",
		"team-a: ",
		"a:b:c",
		`"AIzaSyEXAMPLE-quoted-key-0001"`,
		"AIzaSy\u00e9EXAMPLE-test-key-0001",
		"AIzaSy EXAMPLE-test-key-0001",
		"key\tone",
		"\x00\xff,\xc3",
		"key-0123456789ab:secret",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, list string) {
		keys, dropped, err := keyring.ParseKeys(list)
		if err != nil {
			if keys != nil || dropped != nil {
				t.Fatalf("error %v with keys %v dropped %v", err, keys, dropped)
			}
			checkNoEntryInError(t, list, err)
			if errors.Is(err, keyring.ErrNoKeys) && strings.TrimSpace(strings.ReplaceAll(list, ",", "")) != "" {
				// Only blank entries may give "no keys".
				for _, e := range strings.Split(list, ",") {
					if strings.TrimSpace(e) != "" {
						t.Fatalf("ErrNoKeys for %q, which has entry %q", list, e)
					}
				}
			}
			return
		}
		if len(keys) == 0 {
			t.Fatalf("no keys and no error for %q", list)
		}
		seen := map[string]bool{}
		for i, k := range keys {
			if k.Index != i+1 {
				t.Fatalf("key %d has Index %d", i, k.Index)
			}
			if !hex12.MatchString(k.Fingerprint) || k.Fingerprint != keyring.Fingerprint(k.Secret()) {
				t.Fatalf("key %d: fingerprint %q", k.Index, k.Fingerprint)
			}
			if k.Secret() == "" || k.Project == "" {
				t.Fatalf("key %d: empty secret or project %q", k.Index, k.Project)
			}
			if seen[k.Secret()] {
				t.Fatalf("key %d repeats an earlier key", k.Index)
			}
			seen[k.Secret()] = true
			if strings.Contains(k.String(), k.Secret()) && len(k.Secret()) >= 12 {
				t.Fatalf("String() shows the key")
			}
		}
		for i, d := range dropped {
			if d < 2 || (i > 0 && d <= dropped[i-1]) {
				t.Fatalf("dropped = %v: positions must grow and the first entry is never a duplicate", dropped)
			}
		}
		// The keys joined again parse to the same keys.
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k.Secret()
			if k.Project != "key-"+k.Fingerprint {
				parts[i] = k.Project + ":" + k.Secret()
			}
		}
		again, dropped2, err := keyring.ParseKeys(strings.Join(parts, ","))
		if err != nil || len(dropped2) != 0 || len(again) != len(keys) {
			t.Fatalf("re-parse of %q: %d keys, dropped %v, err %v; want %d keys", strings.Join(parts, ","), len(again), dropped2, err, len(keys))
		}
		for i := range keys {
			if again[i].Fingerprint != keys[i].Fingerprint || again[i].Project != keys[i].Project || again[i].Index != keys[i].Index {
				t.Fatalf("re-parse: key %d is %v/%s, was %v/%s", i+1, again[i], again[i].Project, keys[i], keys[i].Project)
			}
		}
	})
}

// checkNoEntryInError fails if err's text holds an entry of list, or (for
// entries longer than 12 bytes) any 12-byte piece of one that is not part
// of the message's own fixed text.
func checkNoEntryInError(t *testing.T, list string, err error) {
	t.Helper()
	msg := err.Error()
	for _, raw := range strings.Split(list, ",") {
		entry := strings.TrimSpace(raw)
		if len(entry) < 12 {
			// Too short to tell a key from the message's own words.
			continue
		}
		for _, p := range testutil.Pieces(entry, 12) {
			if strings.Contains(msg, p) && !strings.Contains(parseKeysText, p) {
				t.Fatalf("error %q holds %q, a piece of entry %q", msg, p, entry)
			}
		}
	}
}
