package deploytest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// root is the repository's top directory.
func root(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

func read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(t), name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// service returns the text of one service of docker-compose.yml: from its
// "  name:" line to the next line indented as little.
func service(t *testing.T, compose, name string) string {
	t.Helper()
	lines := strings.Split(compose, "\n")
	start := slices.Index(lines, "  "+name+":")
	if start < 0 {
		t.Fatalf("docker-compose.yml has no service %s", name)
	}
	end := start + 1
	for end < len(lines) && (lines[end] == "" || strings.HasPrefix(lines[end], "   ")) {
		end++
	}
	return strings.Join(lines[start:end], "\n")
}

func TestComposeFile(t *testing.T) {
	c := read(t, "docker-compose.yml")
	redis := service(t, c, "redis")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`image: redis:\d+\.\d+\.\d+(-alpine)?\n`), // pinned, official
		regexp.MustCompile(`"--appendonly", "yes"`),
		regexp.MustCompile(`"--maxmemory-policy", "noeviction"`),
		regexp.MustCompile(`healthcheck:`),
		regexp.MustCompile(`- redis-data:/data`),
	} {
		if !want.MatchString(redis) {
			t.Errorf("redis service lacks %s:\n%s", want, redis)
		}
	}
	worker := service(t, c, "worker")
	for _, bad := range []string{"container_name:", "ports:"} {
		if regexp.MustCompile(`(?m)^\s+` + bad).MatchString(worker) {
			t.Errorf("worker has %s, which breaks --scale worker=N", bad)
		}
	}
	for _, want := range []string{`command: ["worker"]`, "WORKER_METRICS_ADDR:", "secrets:", "stop_grace_period:"} {
		if !strings.Contains(worker, want) {
			t.Errorf("worker service lacks %s", want)
		}
	}
	api := service(t, c, "api")
	for _, want := range []string{`command: ["api"]`, "API_TOKENS:", "DASHBOARD_PASSWORD:", "ports:"} {
		if !strings.Contains(api, want) {
			t.Errorf("api service lacks %s", want)
		}
	}
	if regexp.MustCompile(`(?i)AIza[0-9A-Za-z_-]{10,}`).MatchString(c) {
		t.Error("docker-compose.yml holds something like a key")
	}
}

func TestDockerfile(t *testing.T) {
	d := read(t, "Dockerfile")
	if n := len(regexp.MustCompile(`(?m)^FROM `).FindAllString(d, -1)); n < 2 {
		t.Errorf("Dockerfile has %d stages, want a multi-stage build", n)
	}
	for _, want := range []string{"FROM golang:1.26", "CGO_ENABLED=0", "USER nonroot", "ENTRYPOINT"} {
		if !strings.Contains(d, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	ig := read(t, ".dockerignore")
	for _, want := range []string{".env", "secrets", ".git"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want) + `$`).MatchString(ig) {
			t.Errorf(".dockerignore lacks %s: keys or history would go into the image", want)
		}
	}
}

// composeCommand is Debian's docker-compose, or the docker compose plugin.
func composeCommand(t *testing.T) []string {
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}
	}
	if p, err := exec.LookPath("docker"); err == nil && exec.Command(p, "compose", "version").Run() == nil {
		return []string{p, "compose"}
	}
	t.Skip("docker-compose is not installed, so docker-compose.yml is not validated: apt-get install -y docker-compose (scripts/test.sh installs it)")
	return nil
}

// The compose file validates, with settings from the environment or not.
func TestComposeConfigValidates(t *testing.T) {
	cmd := composeCommand(t)
	for _, env := range [][]string{
		nil,
		{"API_TOKENS=t1,t2", "DASHBOARD_PASSWORD=pw", "GEMINI_API_KEY=k1,k2", "GEMINI_API_KEY_FILE=", "API_PORT=18080"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		run := func(args ...string) string {
			c := exec.CommandContext(ctx, cmd[0], append(append(cmd[1:], "-f", "docker-compose.yml"), args...)...)
			c.Dir = root(t)
			c.Env = append(os.Environ(), env...)
			var out, errb bytes.Buffer
			c.Stdout, c.Stderr = &out, &errb
			if err := c.Run(); err != nil {
				t.Fatalf("%s %s (env %v): %v\n%s%s", strings.Join(cmd, " "), strings.Join(args, " "), env, err, out.String(), errb.String())
			}
			return out.String()
		}
		run("config", "-q")
		services := strings.Fields(run("config", "--services"))
		slices.Sort(services)
		if !slices.Equal(services, []string{"api", "fake", "grafana", "prometheus", "redis", "worker"}) {
			t.Errorf("services %v", services)
		}
		profiles := strings.Fields(run("config", "--profiles"))
		slices.Sort(profiles)
		if !slices.Equal(profiles, []string{"demo", "monitoring"}) {
			t.Errorf("profiles %v, want demo and monitoring", profiles)
		}
		cancel()
	}
}
