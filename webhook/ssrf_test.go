package webhook

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

func TestBlocked(t *testing.T) {
	for _, a := range []string{"127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
		"100.64.0.1", "0.0.0.0", "::1", "::", "fc00::1", "fd12::1", "fe80::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "224.0.0.1"} {
		if !Blocked(netip.MustParseAddr(a)) {
			t.Errorf("%s is not blocked", a)
		}
	}
	for _, a := range []string{"8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "100.128.0.1"} {
		if Blocked(netip.MustParseAddr(a)) {
			t.Errorf("%s is blocked", a)
		}
	}
}

func TestCheckURL(t *testing.T) {
	ctx := context.Background()
	for _, u := range []string{"http://127.0.0.1/x", "http://[::1]:80/", "http://169.254.169.254/latest/meta-data",
		"https://localhost/hook", "http://10.0.0.1/", "http://[fd00::1]/"} {
		if err := CheckURL(ctx, u, false); !errors.Is(err, ErrBlockedAddress) {
			t.Errorf("%s: %v, want ErrBlockedAddress", u, err)
		}
		if err := CheckURL(ctx, u, true); err != nil {
			t.Errorf("%s with private allowed: %v", u, err)
		}
	}
	for _, u := range []string{"ftp://example.com/", "/relative", "http://user:pw@8.8.8.8/", "https://"} {
		if err := CheckURL(ctx, u, true); err == nil {
			t.Errorf("%s: accepted", u)
		}
	}
	if err := CheckURL(ctx, "https://8.8.8.8/hook", false); err != nil {
		t.Errorf("a public address: %v", err)
	}
}

// The dial is checked after DNS: a safe client cannot reach a loopback
// receiver even when the URL passed no check, and follows no redirect.
func TestClientRefusesInternalDialsAndRedirects(t *testing.T) {
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/other", http.StatusFound)
		}
	}))
	defer srv.Close()
	secrets, _ := ParseSecrets("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	ctx := context.Background()
	if _, err := NewClient(ClientOptions{}).Send(ctx, srv.URL, secrets, "msg_1", time.Now(), []byte(`{}`)); !errors.Is(err, ErrBlockedAddress) {
		t.Errorf("safe client to %s: %v, want ErrBlockedAddress", srv.URL, err)
	}
	if hits != 0 {
		t.Fatalf("the receiver was reached %d times", hits)
	}
	c := NewClient(ClientOptions{AllowPrivate: true})
	code, err := c.Send(ctx, srv.URL+"/redirect", secrets, "msg_1", time.Now(), []byte(`{}`))
	if code != http.StatusFound || err == nil || hits != 1 {
		t.Errorf("redirect: %d %v after %d hits; want 302, an error, 1 hit", code, err, hits)
	}
	if _, err := c.Send(ctx, srv.URL, secrets, "msg_1", time.Now(), make([]byte, MaxBody+1)); !errors.Is(err, ErrBodyTooLarge) {
		t.Errorf("oversize body: %v", err)
	}
}

func TestVerifyRejects(t *testing.T) {
	s, _ := ParseSecrets("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	old := time.Now().Add(-time.Hour)
	h := http.Header{}
	Sign(h, s, "msg_1", old, []byte("x"))
	if err := Verify(s, h, []byte("x"), 0); !errors.Is(err, ErrTimestamp) {
		t.Errorf("an hour old: %v", err)
	}
	if err := verifyAt(old, s, h, []byte("x"), 0); err != nil {
		t.Errorf("at its own time: %v", err)
	}
	if err := Verify(s, http.Header{}, nil, 0); !errors.Is(err, ErrMissingHeaders) {
		t.Errorf("no headers: %v", err)
	}
	for _, bad := range []string{"secret", "whsec_", "whsec_!!!", "whsec_c2hvcnQ="} {
		if _, err := ParseSecret(bad); err == nil {
			t.Errorf("ParseSecret(%q) accepted", bad)
		}
	}
}
