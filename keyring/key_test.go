package keyring_test

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/keyq/keyq/keyring"
)

func TestParseKeys(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []string
		dropped []int
		err     string
	}{
		{in: "k1", want: []string{"k1"}},
		{in: " k1 , k2,k3 ", want: []string{"k1", "k2", "k3"}},
		{in: "k1,,k2,", want: []string{"k1", "k2"}},
		{in: "k1,k2,k1,k2,k3", want: []string{"k1", "k2", "k3"}, dropped: []int{3, 4}},
		{in: "", err: keyring.ErrNoKeys.Error()},
		{in: " , ,", err: keyring.ErrNoKeys.Error()},
		{in: "k1,\"k2\"", err: "entry 2"},
		{in: "k1,k 2", err: "entry 2"},
		{in: "kä", err: "entry 1"},
	} {
		keys, dropped, err := keyring.ParseKeys(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseKeys(%q) error = %v, want one containing %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("ParseKeys(%q): %v", tc.in, err)
		}
		var got []string
		for i, k := range keys {
			if k.Index != i+1 {
				t.Errorf("ParseKeys(%q)[%d].Index = %d", tc.in, i, k.Index)
			}
			if k.Fingerprint != keyring.Fingerprint(k.Secret()) || len(k.Fingerprint) != keyring.FingerprintLen {
				t.Errorf("bad fingerprint %q", k.Fingerprint)
			}
			got = append(got, k.Secret())
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) || fmt.Sprint(dropped) != fmt.Sprint(tc.dropped) {
			t.Errorf("ParseKeys(%q) = %v dropped %v, want %v dropped %v", tc.in, got, dropped, tc.want, tc.dropped)
		}
	}
	if _, _, err := keyring.ParseKeys(""); !errors.Is(err, keyring.ErrNoKeys) {
		t.Errorf("empty list: %v, want ErrNoKeys", err)
	}
}

func TestKeyNeverPrintsItsSecret(t *testing.T) {
	const secret = "AIzaSy-EXAMPLE-secret-value-0123456789"
	k := keyring.NewKey(2, secret)
	var logs strings.Builder
	slog.New(slog.NewTextHandler(&logs, nil)).Info("picked", "key", k)
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("picked", "key", k)
	for _, s := range []string{
		fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s %q %d", k, k, k, k, k, k),
		fmt.Sprintf("%+v", struct{ K keyring.Key }{k}), fmt.Sprintf("%v", []keyring.Key{k}),
		logs.String(),
	} {
		if strings.Contains(s, secret) || strings.Contains(s, secret[:12]) {
			t.Errorf("printed the key: %s", s)
		}
		if !strings.Contains(s, k.Fingerprint) {
			t.Errorf("printed without the fingerprint: %s", s)
		}
	}
	if k.Name() != "#2" {
		t.Errorf("Name = %q, want #2", k.Name())
	}
}
