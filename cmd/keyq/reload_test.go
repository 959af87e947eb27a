package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyq/keyq/gemini"
	"github.com/keyq/keyq/gemini/geminifake"
	"github.com/keyq/keyq/internal/faketest"
	"github.com/keyq/keyq/internal/redistest"
	"github.com/keyq/keyq/internal/testutil"
	"github.com/keyq/keyq/keyring"
)

// GEMINI_API_KEY_FILE changes take effect without a restart, on SIGHUP or
// when the file changes, and a key keeps its state across the reload.
func TestKeyFileReload(t *testing.T) {
	rdb, url := redistest.Open(t)
	_, base := faketest.Start(t, geminifake.Options{})
	file := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(file, []byte("a:"+e2eKeys[0]+"\nb:"+e2eKeys[1]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("REDIS_URL", url)
	t.Setenv("GEMINI_API_KEY", "")
	t.Setenv("GEMINI_API_KEY_FILE", file)
	t.Setenv("GEMINI_BASE_URL", base)
	t.Setenv("WORKER_METRICS_ADDR", "off")
	ctx, cancel := context.WithCancel(context.Background())
	p := startCmd(t, ctx, "worker")
	t.Cleanup(func() { cancel(); <-p.done })
	admin := keyring.NewAdmin(rdb, keyringOptions(GeminiEnv{}, gemini.DefaultModel))
	statuses := func() []keyring.Status {
		st, err := admin.Statuses(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	testutil.Eventually(t, 10*time.Second, "the worker to announce 2 keys", func() bool { return len(statuses()) == 2 })
	second := statuses()[1].Fingerprint
	if err := admin.Disable(context.Background(), second, "by hand"); err != nil {
		t.Fatal(err)
	}

	// Reorder and add a key; signal at once rather than wait for the poll.
	if err := os.WriteFile(file, []byte("b:"+e2eKeys[1]+", c:"+e2eKeys[2]), 0o600); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	testutil.Eventually(t, 10*time.Second, "the reload", func() bool {
		return strings.Contains(p.logs.String(), "Reloaded 2 Gemini API keys")
	})
	st := statuses()
	if len(st) != 2 || st[0].Fingerprint != second || st[0].Index != 1 || st[0].State != keyring.StateDisabled || st[1].Project != "c" {
		t.Errorf("after reload: %+v; want the disabled key first, still disabled, then project c", st)
	}
	if hits := testutil.FindSecrets(p.logs.String(), e2eKeys...); len(hits) > 0 {
		t.Errorf("keys in logs: %v", hits)
	}
}
