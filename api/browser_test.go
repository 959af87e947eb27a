package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyq/keyq/api"
	"github.com/keyq/keyq/internal/redistest"
	"github.com/keyq/keyq/keyring"
)

// The /keys console in a real browser (Debian's chromium, headless), with
// 3 and with 1,000 keys in several states: the page renders, its one
// script runs under the CSP (the countdowns go live), the console shows no
// error, and a screenshot is written to $KEYQ_SCREENSHOTS (or the test's
// temporary directory) for a person to look at.
func TestKeysConsoleInABrowser(t *testing.T) {
	browser, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not installed (scripts/test.sh installs Debian's chromium)")
	}
	for _, n := range []int{3, 1000} {
		t.Run(fmt.Sprint(n, " keys"), func(t *testing.T) {
			base := consoleServer(t, n)
			dir := os.Getenv("KEYQ_SCREENSHOTS")
			if dir == "" {
				dir = t.TempDir()
			}
			shot := filepath.Join(dir, fmt.Sprintf("keys-%d.png", n))
			dom, logs := runChromium(t, browser, base+"/keys", shot)
			for _, want := range []string{`data-live="1"`, `id="keys"`, `id="projects"`, "cooling", "disabled"} {
				if !strings.Contains(dom, want) {
					t.Errorf("the page lacks %s once loaded", want)
				}
			}
			for _, l := range strings.Split(logs, "\n") {
				if strings.Contains(l, "CONSOLE") || strings.Contains(l, "Uncaught") || strings.Contains(l, "Content Security Policy") {
					t.Errorf("browser console: %s", l)
				}
			}
			if fi, err := os.Stat(shot); err != nil || fi.Size() < 10_000 {
				t.Errorf("no screenshot at %s: %v", shot, err)
			}
			t.Logf("screenshot: %s", shot)
		})
	}
}

// consoleServer serves the console of a real pool of n keys (a third
// cooling, a few disabled) behind a proxy that adds the dashboard login,
// as a browser that already logged in would send it.
func consoleServer(t *testing.T, n int) string {
	t.Helper()
	rdb, _ := redistest.Open(t)
	ctx := context.Background()
	list := make([]string, n)
	for i := range list {
		list[i] = fmt.Sprintf("proj-%d:browser-EXAMPLE-key-%04d", i%max(n/4, 1), i)
	}
	keys, _, err := keyring.ParseKeys(strings.Join(list, ","))
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keyring.New(rdb, keys, keyring.Options{Pool: "m", RPM: 60, RPD: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.Announce(ctx); err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		var o keyring.Outcome
		switch {
		case i%3 == 1:
			o = keyring.Outcome{Kind: keyring.CoolKey, Class: "billing", For: time.Hour, Reason: "402"}
		case i%50 == 2:
			o = keyring.Outcome{Kind: keyring.Disable, Class: "permission_denied", Reason: "403 leaked"}
		default:
			o = keyring.Outcome{Kind: keyring.Success}
		}
		if _, err := ring.Report(ctx, k, o); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := api.New(rdb, api.Options{Keys: keyring.NewAdmin(rdb, keyring.Options{Pool: "m", RPM: 60, RPD: 1000}), Pool: "m",
		Dashboard: api.Dashboard{Password: "browser-test-password", Writable: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	h := srv.Handler()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.SetBasicAuth("admin", "browser-test-password")
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	return hs.URL
}

func tail(s string, n int) string { return s[max(0, len(s)-n):] }

// runChromium loads url headless, writes a screenshot, and returns the DOM
// after load and what the browser logged (console messages included).
func runChromium(t *testing.T, browser, url, shot string) (dom, logs string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	flags := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--enable-logging=stderr", "--v=0", "--hide-scrollbars", "--window-size=1400,1100"}
	run := func(extra ...string) (string, string) {
		cmd := exec.CommandContext(ctx, browser, append(append(flags, "--user-data-dir="+t.TempDir()), append(extra, url)...)...)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			if out.Len() == 0 && ctx.Err() == nil {
				// It did not start (a machine without what Debian's
				// chromium recommends, say): the page was never loaded.
				t.Skipf("chromium %v did not run: %v\n%s", extra, err, tail(errb.String(), 2000))
			}
			t.Fatalf("chromium %v: %v\n%s", extra, err, errb.String())
		}
		return out.String(), errb.String()
	}
	dom, l1 := run("--dump-dom")
	_, l2 := run("--screenshot=" + shot)
	return dom, l1 + l2
}
