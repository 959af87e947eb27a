package deploytest

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// envAssign matches an assignment in .env.example, commented out or not:
// "NAME=value" or "# NAME=value".
var envAssign = regexp.MustCompile(`(?m)^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$`)

// composeOwn are variables compose itself reads from .env, not through a
// ${...} in the file.
var composeOwn = []string{"COMPOSE_FILE", "COMPOSE_PROFILES", "COMPOSE_PROJECT_NAME"}

var secretish = regexp.MustCompile(`TOKEN|PASSWORD|SECRET`)

// Compose reads .env only for the ${...} in docker-compose.yml: a variable
// of .env.example that the file never references would be silently ignored
// (REDIS_URL, API_ADDR, WORKER_METRICS_ADDR were, once).
func TestEnvExampleOnlyHoldsComposeVariables(t *testing.T) {
	example := read(t, ".env.example")
	compose := read(t, "docker-compose.yml")
	referenced := map[string]bool{}
	for _, m := range regexp.MustCompile(`\$\{([A-Z][A-Z0-9_]*)`).FindAllStringSubmatch(compose, -1) {
		referenced[m[1]] = true
	}
	seen := map[string]bool{}
	for _, m := range envAssign.FindAllStringSubmatch(example, -1) {
		name, commented, value := m[2], m[1] != "", m[3]
		seen[name] = true
		if !referenced[name] && !slices.Contains(composeOwn, name) {
			t.Errorf(".env.example sets %s, which docker-compose.yml never reads (no ${%s...}): it would have no effect", name, name)
		}
		// Keys come from the secrets file by default: GEMINI_API_KEY may
		// only be shown commented out, beside the GEMINI_API_KEY_FILE= that
		// must go with it.
		if !commented && (name == "GEMINI_API_KEY" || name == "GEMINI_API_KEY_FILE") {
			t.Errorf(".env.example sets %s: the quick start takes the keys from secrets/gemini_api_keys, so it must stay commented out", name)
		}
		// Secrets stay obviously placeholders (keyq refuses change-me values).
		if !commented && secretish.MatchString(name) && value != "" && !strings.HasPrefix(value, "change-me") {
			t.Errorf(".env.example: %s=%q is not a change-me placeholder", name, value)
		}
	}
	for _, want := range []string{"API_PORT", "API_TOKENS", "DASHBOARD_PASSWORD", "GEMINI_API_KEY", "GEMINI_API_KEY_FILE"} {
		if !seen[want] {
			t.Errorf(".env.example lacks %s", want)
		}
	}
}

// project copies what `docker-compose config` reads into a temporary
// directory: the compose file and deploy/ (config does not build, so no
// sources), with dummy keys in secrets/gemini_api_keys.
func project(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	copyFile(t, filepath.Join(root(t), "docker-compose.yml"), filepath.Join(dir, "docker-compose.yml"))
	src := filepath.Join(root(t), "deploy")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dir, "deploy", rel), 0o755)
		}
		copyFile(t, p, filepath.Join(dir, "deploy", rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secrets", "gemini_api_keys"), []byte("EXAMPLE-KEY-1\nEXAMPLE-KEY-2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, st.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
}

func readIn(dir, name string) string {
	b, _ := os.ReadFile(filepath.Join(dir, name))
	return string(b)
}

// composeConfig runs `<compose> args... config` in dir with no variable of
// the caller's environment but PATH, so that only dir/.env counts.
func composeConfig(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := composeCommand(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, cmd[0], append(append(cmd[1:], args...), "config")...)
	c.Dir = dir
	c.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		t.Fatalf("%s %s config, in a copy with this .env:\n%s\n%v\n%s%s", strings.Join(cmd, " "), strings.Join(args, " "),
			readIn(dir, ".env"), err, out.String(), errb.String())
	}
	return out.String()
}

// yamlBlock returns the block under the nested keys path of YAML as
// `docker-compose config` prints it (block style), dedented; "" if absent.
// Enough for compose's normalized output, not a YAML parser.
func yamlBlock(text string, path ...string) string {
	lines := strings.Split(text, "\n")
	indent := 0
	for _, key := range path {
		found := false
		for i, l := range lines {
			if strings.HasPrefix(l, strings.Repeat(" ", indent)+key+":") && depth(l) == indent {
				// The block: deeper lines, and list items at the key's own
				// indent ("ports:\n- 8080:8080").
				end := i + 1
				for end < len(lines) && (strings.TrimSpace(lines[end]) == "" || depth(lines[end]) > indent ||
					strings.HasPrefix(lines[end], strings.Repeat(" ", indent)+"- ")) {
					end++
				}
				lines = lines[i+1 : end]
				found = true
				break
			}
		}
		if !found {
			return ""
		}
		if len(lines) > 0 {
			indent = depth(lines[0])
		}
	}
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		if len(l) >= indent {
			l = l[indent:]
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

func depth(l string) int { return len(l) - len(strings.TrimLeft(l, " ")) }

// yamlMap reads the "key: scalar" lines at the top level of a block.
func yamlMap(block string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(block, "\n") {
		if l == "" || l[0] == ' ' || l[0] == '-' {
			continue
		}
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = unquote(strings.TrimSpace(v))
		}
	}
	return m
}

func unquote(v string) string {
	switch {
	case len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'':
		return strings.ReplaceAll(v[1:len(v)-1], "''", "'")
	case len(v) >= 2 && v[0] == '"':
		if s, err := strconv.Unquote(v); err == nil {
			return s
		}
	}
	return v
}

func workerEnv(t *testing.T, config string) map[string]string {
	t.Helper()
	env := yamlMap(yamlBlock(config, "services", "worker", "environment"))
	if len(env) == 0 {
		t.Fatalf("no services.worker.environment in the resolved config:\n%s", config)
	}
	return env
}

// The README's quick start, exactly: a secrets file, `cp .env.example .env`.
// The workers must not get both GEMINI_API_KEY and GEMINI_API_KEY_FILE
// (keyq exits 2 and restart: unless-stopped loops), and read the secret.
func TestQuickStartEnvResolves(t *testing.T) {
	composeCommand(t)
	dir := project(t)
	copyFile(t, filepath.Join(root(t), ".env.example"), filepath.Join(dir, ".env"))
	config := composeConfig(t, dir)
	env := workerEnv(t, config)
	if env["GEMINI_API_KEY"] != "" && env["GEMINI_API_KEY_FILE"] != "" {
		t.Fatalf("worker gets both GEMINI_API_KEY and GEMINI_API_KEY_FILE: keyq refuses that and every worker restarts in a loop\n%v", env)
	}
	if env["GEMINI_API_KEY_FILE"] != "/run/secrets/gemini_api_keys" {
		t.Errorf("worker GEMINI_API_KEY_FILE=%q, want the mounted secret /run/secrets/gemini_api_keys", env["GEMINI_API_KEY_FILE"])
	}
	for name, want := range map[string]string{
		"REDIS_URL":           "redis://redis:6379/0",
		"WORKER_METRICS_ADDR": ":9090",
		"GEMINI_BASE_URL":     "https://generativelanguage.googleapis.com",
	} {
		if env[name] != want {
			t.Errorf("worker %s=%q, want %q", name, env[name], want)
		}
	}
	if !strings.Contains(yamlBlock(config, "services", "worker", "secrets"), "gemini_api_keys") {
		t.Error("worker does not mount the gemini_api_keys secret")
	}
	api := yamlMap(yamlBlock(config, "services", "api", "environment"))
	if !strings.HasPrefix(api["API_TOKENS"], "change-me") {
		t.Errorf("api API_TOKENS=%q, want .env.example's change-me placeholder", api["API_TOKENS"])
	}
	// Short ("8080:8080") or long (published: 8080) syntax, by compose version.
	if ports := yamlBlock(config, "services", "api", "ports"); !regexp.MustCompile(`8080:8080|published: "?8080`).MatchString(ports) {
		t.Errorf("api ports from API_PORT=8080:\n%s", ports)
	}
}

// Uncommenting the two GEMINI_API_KEY lines of .env.example, as its comment
// says, gives the workers the keys from .env and no file.
func TestEnvKeysAlternativeResolves(t *testing.T) {
	composeCommand(t)
	dir := project(t)
	example := read(t, ".env.example")
	uncommented := regexp.MustCompile(`(?m)^#\s*(GEMINI_API_KEY(_FILE)?=)`).ReplaceAllString(example, "$1")
	if uncommented == example {
		t.Fatal(".env.example shows no commented-out GEMINI_API_KEY to uncomment")
	}
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte(uncommented), 0o600); err != nil {
		t.Fatal(err)
	}
	env := workerEnv(t, composeConfig(t, dir))
	if env["GEMINI_API_KEY"] == "" || env["GEMINI_API_KEY_FILE"] != "" {
		t.Errorf("with both lines uncommented: GEMINI_API_KEY=%q GEMINI_API_KEY_FILE=%q, want the keys and an empty file",
			env["GEMINI_API_KEY"], env["GEMINI_API_KEY_FILE"])
	}
}

// deploy/init-env.sh writes .env with random values for every change-me,
// and refuses to overwrite one.
func TestInitEnv(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, filepath.Join(root(t), ".env.example"), filepath.Join(dir, ".env.example"))
	if err := os.MkdirAll(filepath.Join(dir, "deploy"), 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(root(t), "deploy", "init-env.sh"), filepath.Join(dir, "deploy", "init-env.sh"))
	run := func() (string, error) {
		out, err := exec.Command("sh", filepath.Join(dir, "deploy", "init-env.sh")).CombinedOutput()
		return string(out), err
	}
	if out, err := run(); err != nil {
		t.Fatalf("init-env.sh: %v\n%s", err, out)
	}
	env := readIn(dir, ".env")
	values := map[string]string{}
	for _, m := range envAssign.FindAllStringSubmatch(env, -1) {
		if m[1] == "" {
			values[m[2]] = m[3]
			if strings.HasPrefix(m[3], "change-me") {
				t.Errorf(".env still holds a placeholder: %s", m[0])
			}
		}
	}
	for _, name := range []string{"API_TOKENS", "DASHBOARD_PASSWORD", "GRAFANA_ADMIN_PASSWORD"} {
		if !regexp.MustCompile(`^[0-9a-f]{48}$`).MatchString(values[name]) {
			t.Errorf("%s=%q, want 48 random hex digits", name, values[name])
		}
	}
	if values["API_TOKENS"] == values["DASHBOARD_PASSWORD"] {
		t.Error("two secrets got the same value")
	}
	if st, err := os.Stat(filepath.Join(dir, ".env")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf(".env: %v %v, want mode 0600", st, err)
	}
	// Everything but the placeholders is .env.example's, line for line.
	ex := strings.Split(read(t, ".env.example"), "\n")
	got := strings.Split(env, "\n")
	if len(ex) != len(got) {
		t.Fatalf(".env has %d lines, .env.example %d", len(got), len(ex))
	}
	for i := range ex {
		if ex[i] != got[i] && !strings.Contains(ex[i], "=change-me") {
			t.Errorf("line %d changed: %q -> %q", i+1, ex[i], got[i])
		}
	}
	if out, err := run(); err == nil || !strings.Contains(out, "exists") {
		t.Errorf("a second run should refuse to overwrite .env: %v\n%s", err, out)
	}
	if readIn(dir, ".env") != env {
		t.Error("the second run changed .env")
	}
}

// The demo override points the workers at the fake with the dummy keys of
// deploy/demo/, through the same secret; the fake is in profile demo.
func TestDemoOverrideResolves(t *testing.T) {
	composeCommand(t)
	dir := project(t)
	copyFile(t, filepath.Join(root(t), ".env.example"), filepath.Join(dir, ".env"))
	config := composeConfig(t, dir, "-f", "docker-compose.yml", "-f", "deploy/compose.demo.yml", "--profile", "demo")
	env := workerEnv(t, config)
	if env["GEMINI_BASE_URL"] != "http://fake:8090" {
		t.Errorf("demo worker GEMINI_BASE_URL=%q, want http://fake:8090", env["GEMINI_BASE_URL"])
	}
	if env["GEMINI_API_KEY"] != "" || env["GEMINI_API_KEY_FILE"] != "/run/secrets/gemini_api_keys" {
		t.Errorf("demo worker GEMINI_API_KEY=%q GEMINI_API_KEY_FILE=%q, want the keys from the secret only",
			env["GEMINI_API_KEY"], env["GEMINI_API_KEY_FILE"])
	}
	secret := yamlMap(yamlBlock(config, "secrets", "gemini_api_keys"))["file"]
	if want := filepath.Join(dir, "deploy", "demo", "gemini_api_keys"); secret != want {
		t.Errorf("demo secret file %q, want %q", secret, want)
	}
	keys := strings.Fields(read(t, "deploy/demo/gemini_api_keys"))
	if len(keys) < 2 {
		t.Errorf("deploy/demo/gemini_api_keys has %d keys, want a few", len(keys))
	}
	for _, k := range keys {
		if !regexp.MustCompile(`^[a-z0-9-]+:DEMO-[A-Z0-9-]+$`).MatchString(k) {
			t.Errorf("demo key %q is not project:DEMO-...", k)
		}
	}
	fake := yamlBlock(config, "services", "fake")
	if !strings.Contains(fake, "- fake") || !strings.Contains(fake, "FAKE_ADDR: :8090") {
		t.Errorf("fake service does not run `keyq fake` on :8090:\n%s", fake)
	}
}

// The monitoring profile mounts the files this package tests, pins its
// images, and publishes the UIs on loopback only.
func TestMonitoringServicesResolve(t *testing.T) {
	composeCommand(t)
	dir := project(t)
	copyFile(t, filepath.Join(root(t), ".env.example"), filepath.Join(dir, ".env"))
	config := composeConfig(t, dir, "--profile", "monitoring")
	for svc, mounts := range map[string][]string{
		"prometheus": {"deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml", "deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml"},
		"grafana":    {"deploy/grafana/provisioning:/etc/grafana/provisioning", "deploy/grafana/dashboards:/etc/grafana/dashboards"},
	} {
		block := yamlBlock(config, "services", svc)
		if block == "" {
			t.Errorf("no %s service in profile monitoring", svc)
			continue
		}
		if !regexp.MustCompile(`image: \S+:v?\d+\.\d+\.\d+\n`).MatchString(block) {
			t.Errorf("%s image is not pinned to a version:\n%s", svc, block)
		}
		for _, m := range mounts {
			if !strings.Contains(block, filepath.Join(dir, m)) {
				t.Errorf("%s does not mount %s:\n%s", svc, m, block)
			}
			host, _, _ := strings.Cut(m, ":")
			if _, err := os.Stat(filepath.Join(root(t), host)); err != nil {
				t.Errorf("%s mounts %s, which is missing: %v", svc, host, err)
			}
		}
		ports := yamlBlock(block, "ports")
		if ports == "" || strings.Contains(strings.ReplaceAll(ports, "- 127.0.0.1:", ""), "- ") {
			t.Errorf("%s must be published on loopback only (no login, or a default one):\n%s", svc, ports)
		}
	}
}
