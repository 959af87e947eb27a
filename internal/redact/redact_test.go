package redact_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/keyq/keyq/internal/redact"
)

const (
	keyA = "AIzaSyEXAMPLE-redact-key-number-one-01"
	keyB = "AQ.EXAMPLEauthkeytwo0123456789abcdefXYZ"
)

func TestStringRedactsEveryRunOfAnyKey(t *testing.T) {
	var p redact.Pool
	if got := p.String("before Set: " + keyA); got != "before Set: "+keyA {
		t.Errorf("the zero Pool changed %q", got)
	}
	p.Set([]string{keyA, keyB, "short"})
	for _, tc := range []struct{ in, want string }{
		{"API key not valid: " + keyA + ". Please pass a valid key.", "API key not valid: [redacted]. Please pass a valid key."},
		{"first 20: " + keyA[:20] + "...", "first 20: [redacted]..."},
		{"exactly 12: " + keyB[5:17] + "|", "exactly 12: [redacted]|"},
		{"11 only: " + keyB[5:16] + "|", "11 only: " + keyB[5:16] + "|"},
		{keyA + keyB, "[redacted]"},
		{keyA + " and " + keyB[10:30], "[redacted] and [redacted]"},
		{"a short secret stays: short", "a short secret stays: short"},
		{"", ""},
	} {
		if got := p.String(tc.in); got != tc.want {
			t.Errorf("String(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	p.Set([]string{keyB}) // a reload that dropped keyA
	if got := p.String(keyA); got != keyA {
		t.Errorf("after a reload without it, keyA still redacted: %q", got)
	}
}

func TestHandlerCleansMessageAndAttrs(t *testing.T) {
	var p redact.Pool
	p.Set([]string{keyA})
	var b strings.Builder
	log := slog.New(p.Handler(slog.NewTextHandler(&b, nil))).With("bound", keyA[2:18])
	log.Warn("failed: "+keyA, "err", errors.New("echo "+keyA[:15]), "n", 3, slog.Group("g", "s", keyA))
	out := b.String()
	for i := 0; i+redact.MinRun <= len(keyA); i++ {
		if strings.Contains(out, keyA[i:i+redact.MinRun]) {
			t.Fatalf("a piece of the key is in %s", out)
		}
	}
	if !strings.Contains(out, "n=3") || strings.Count(out, redact.Mark) != 4 {
		t.Errorf("log line %s", out)
	}
}

func BenchmarkString(b *testing.B) {
	var p redact.Pool
	keys := make([]string, 10000)
	for i := range keys {
		keys[i] = strings.Repeat("x", 10) + string(rune('a'+i%26)) + strings.Repeat("EXAMPLE", 4) + string(rune('A'+i%26))
	}
	p.Set(keys)
	line := strings.Repeat("The model is overloaded. Please try again later. ", 4)
	b.ReportAllocs()
	for b.Loop() {
		_ = p.String(line)
	}
}
