package deploytest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// tool returns the path of Debian's prometheus package binary name, or
// skips the test saying how to get it.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed, so this is not checked: apt-get install -y --no-install-recommends prometheus (scripts/test.sh installs it)", name)
	}
	return p
}

// promtool runs promtool with args in the repository's top directory.
func promtool(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, tool(t, "promtool"), args...)
	c.Dir = root(t)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Run(); err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

func TestPrometheusConfigChecks(t *testing.T) {
	out := promtool(t, "check", "config", "deploy/prometheus/prometheus.yml")
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool check config:\n%s", out)
	}
	cfg := read(t, "deploy/prometheus/prometheus.yml")
	for _, want := range []string{"job_name: keyq-api", `targets: ["api:8080"]`, "job_name: keyq-worker",
		"dns_sd_configs:", `names: ["worker"]`, "type: A", "port: 9090", "- alerts.yml"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("deploy/prometheus/prometheus.yml lacks %q", want)
		}
	}
}

// The alerts parse, and their unit tests (deploy/prometheus/alerts_test.yml)
// pass; each alert the deployment promises exists and is tested.
func TestAlertRules(t *testing.T) {
	promtool(t, "check", "rules", "deploy/prometheus/alerts.yml")
	promtool(t, "test", "rules", "deploy/prometheus/alerts_test.yml")
	rules, tests := read(t, "deploy/prometheus/alerts.yml"), read(t, "deploy/prometheus/alerts_test.yml")
	for _, name := range []string{"KeyqKeyDisabled", "KeyqKeyLeaked", "KeyqPoolPaused", "KeyqAllKeysCooling",
		"KeyqAllKeysDisabled", "KeyqQueueLatencyHigh", "KeyqJobFailureRateHigh", "KeyqTargetDown"} {
		if !strings.Contains(rules, "- alert: "+name+"\n") {
			t.Errorf("alerts.yml has no alert %s", name)
		}
		// A test that expects it to fire, not only one that expects silence.
		if !regexp.MustCompile(`alertname: ` + name + `\n\s+exp_alerts:\s*(&\w+)?\n\s+- exp_labels`).MatchString(tests) {
			t.Errorf("alerts_test.yml never expects %s to fire", name)
		}
	}
}

type dashboard struct {
	UID    string `json:"uid"`
	Panels []struct {
		Title      string `json:"title"`
		Type       string `json:"type"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// The Grafana dashboard has the panels the issue asks for, uses the
// provisioned datasource, and every query parses as PromQL (promtool checks
// them as recording rules, with Grafana's variables filled in).
func TestGrafanaDashboard(t *testing.T) {
	var d dashboard
	if err := json.Unmarshal([]byte(read(t, "deploy/grafana/dashboards/keyq.json")), &d); err != nil {
		t.Fatalf("deploy/grafana/dashboards/keyq.json: %v", err)
	}
	ds := read(t, "deploy/grafana/provisioning/datasources/prometheus.yml")
	uid := regexp.MustCompile(`(?m)^\s+uid: (\S+)$`).FindStringSubmatch(ds)
	if uid == nil || !strings.Contains(ds, "url: http://prometheus:9090") {
		t.Fatalf("the provisioned datasource has no uid or does not point at http://prometheus:9090:\n%s", ds)
	}
	var titles []string
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	vars := strings.NewReplacer("$__rate_interval", "1m", "$__interval", "1m", "$pool", ".*")
	n := 0
	for _, p := range d.Panels {
		titles = append(titles, p.Title)
		if p.Type == "row" {
			continue
		}
		if p.Datasource.UID != uid[1] {
			t.Errorf("panel %q uses datasource %q, want the provisioned %q", p.Title, p.Datasource.UID, uid[1])
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			n++
			b, _ := json.Marshal(vars.Replace(q.Expr))
			fmt.Fprintf(&rules, "      - record: dashboard:query_%d\n        expr: %s\n", n, b)
		}
	}
	for _, want := range []string{"Jobs finished by status", "Queue latency", "Upstream latency by class",
		"Upstream errors by class", "Keys by state", "Quota used per project"} {
		if !slices.Contains(titles, want) {
			t.Errorf("dashboard has no panel %q (panels: %q)", want, titles)
		}
	}
	file := filepath.Join(t.TempDir(), "dashboard-queries.yml")
	if err := os.WriteFile(file, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	promtool(t, "check", "rules", file)
}
