// Command bench measures keyq against a real redis-server and writes
// bench/RESULTS.md (see issue 5). Run it from the module root:
//
//	go run ./bench
//
// Every figure in RESULTS.md is written by the run; nothing is typed by hand.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	flagOut       = flag.String("out", "bench/RESULTS.md", "where to write the report")
	flagSVG       = flag.String("svg", "bench/failed_vs_keys.svg", "where to write the plot")
	flagParts     = flag.String("parts", "pick,overhead,quota,peak,mem", "parts to run, comma separated (also: poolsize, with -out bench/RESULTS-pool.md; deployed, with -out bench/RESULTS-deployed.md)")
	flagPickDur   = flag.Duration("pick-dur", 2*time.Second, "pick: duration of each goroutine count")
	flagN         = flag.Int("n", 5000, "overhead: jobs end to end, for raw asynq and keyq each")
	flagReps      = flag.Int("reps", 3, "overhead, deployed: end-to-end repetitions (median ratio reported)")
	flagEnqDur    = flag.Duration("enq-dur", 3*time.Second, "overhead: duration of each enqueue-only run")
	flagRate      = flag.Int("rate", 500, "overhead: offered POST rate for the latency run, per second")
	flagRateDur   = flag.Duration("rate-dur", 5*time.Second, "overhead: duration of the fixed-rate run")
	flagQuotaQ    = flag.Int("quota-q", 600, "quota: calls per minute per project (fake quota = keyring RPM)")
	flagQuotaWarm = flag.Duration("quota-warm", 5*time.Second, "quota: warm-up before measuring")
	flagQuotaDur  = flag.Duration("quota-dur", time.Minute, "quota: measured window per run")
	flagPeakScale = flag.Int("peak-scale", 10, "peak: time scale (seed's 60/min quota and ~3s latency become 60*s/min and 3s/s)")
	flagPeakDur   = flag.Duration("peak-dur", 20*time.Second, "peak: offered-load duration per run")
	flagPeakDrain = flag.Duration("peak-drain", 15*time.Second, "peak: longest wait for jobs to finish after the load")
	flagPeakLoad  = flag.Float64("peak-load", 2, "peak: offered jobs/s as a multiple of one project's quota per second")
	flagQuotaRPM  = flag.Float64("quota-rpm", 1.0, "quota: keyring GEMINI_RPM as a fraction of the fake's Q for the main rows (a diagnostic row always uses 0.98)")
	flagMemJobs   = flag.Int("mem-jobs", 500, "mem: jobs in flight")
	flagMemLat    = flag.Duration("mem-latency", 30*time.Second, "mem: upstream latency")
	flagCPUProf   = flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flagDeployedN = flag.Int("deployed-n", 30000, "deployed: jobs per run, for raw asynq and keyq each")
	flagDeployedB = flag.String("deployed-before", "", "deployed: a keyq binary of an earlier commit, run side by side with this tree's (go build -o /tmp/keyq-before ./cmd/keyq there)")
)

var quiet = slog.New(slog.DiscardHandler)

type report struct {
	sections []string
	notes    []string // goals missed / things that look wrong
}

func (r *report) add(s string)                 { r.sections = append(r.sections, s) }
func (r *report) note(format string, a ...any) { r.notes = append(r.notes, fmt.Sprintf(format, a...)) }

func main() {
	// The bench re-executes itself as a child process of the deployed
	// part (-role rawworker ...); that role has flags of its own.
	if len(os.Args) > 2 && os.Args[1] == "-role" {
		runRole(os.Args[2], os.Args[3:])
		return
	}
	flag.Parse()
	if *flagCPUProf != "" {
		f, err := os.Create(*flagCPUProf)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	log.SetFlags(log.Ltime)
	parts := map[string]bool{}
	for _, p := range strings.Split(*flagParts, ",") {
		parts[strings.TrimSpace(p)] = true
	}
	url, stop, err := redisURL()
	if err != nil {
		log.Fatal(err)
	}
	defer stop()
	opt, err := redis.ParseURL(url)
	if err != nil {
		log.Fatal(err)
	}
	newRDB := func() *redis.Client {
		o := *opt
		o.PoolSize = 200
		o.Protocol = 2 // as keyq's own clients (internal/redisconn): RESP3 costs a push-notification check per command
		return redis.NewClient(&o)
	}
	env := &benchEnv{newRDB: newRDB, url: url}
	ctx := context.Background()
	rep := &report{}
	started := time.Now()
	run := func(name string, f func(context.Context, *benchEnv, *report) error) {
		if !parts[name] {
			return
		}
		rdb := newRDB()
		rdb.FlushDB(ctx)
		rdb.Close()
		log.Printf("part %s ...", name)
		t0 := time.Now()
		if err := f(ctx, env, rep); err != nil {
			log.Printf("part %s: %v", name, err)
			rep.add(fmt.Sprintf("## %s\n\nFAILED to run: %v\n", name, err))
		}
		log.Printf("part %s done in %s", name, time.Since(t0).Round(time.Second))
	}
	run("pick", partPick)
	run("overhead", partOverhead)
	run("quota", partQuota)
	run("peak", partPeak)
	run("mem", partMem)
	run("poolsize", partPoolsize)
	run("clients", partClients)
	run("deployed", partDeployed)
	if err := writeReport(rep, started, url); err != nil {
		log.Fatal(err)
	}
	log.Printf("wrote %s in %s", *flagOut, time.Since(started).Round(time.Second))
}

type benchEnv struct {
	newRDB func() *redis.Client
	url    string // the Redis every part uses, for child processes
}

func writeReport(rep *report, started time.Time, url string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# keyq benchmark results\n\n")
	fmt.Fprintf(&b, "Generated by `go run ./bench`; do not edit by hand. Ratios are the claim (measured side by side in this run); absolute figures depend on the machine.\n\n")
	fmt.Fprintf(&b, "| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| date | %s |\n", started.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "| command | `%s` |\n", commandLine())
	fmt.Fprintf(&b, "| cores (`nproc`) | %s |\n", strings.TrimSpace(sh("nproc")))
	fmt.Fprintf(&b, "| Go | %s %s/%s |\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(&b, "| Redis | %s |\n", strings.TrimSpace(sh("redis-server", "--version")))
	fmt.Fprintf(&b, "| Redis used | %s |\n", redactURL(url))
	fmt.Fprintf(&b, "| run time | %s |\n\n", time.Since(started).Round(time.Second))
	if len(rep.notes) > 0 {
		fmt.Fprintf(&b, "## Goals missed and things that look wrong\n\n")
		for _, n := range rep.notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		fmt.Fprintln(&b)
	} else {
		fmt.Fprintf(&b, "## Goals\n\nEvery goal measured in this run was met.\n\n")
	}
	for _, s := range rep.sections {
		b.WriteString(s)
		b.WriteString("\n")
	}
	if err := os.MkdirAll(filepath.Dir(*flagOut), 0o755); err != nil {
		return err
	}
	return os.WriteFile(*flagOut, []byte(b.String()), 0o644)
}

func commandLine() string {
	args := []string{"go", "run", "./bench"}
	args = append(args, os.Args[1:]...)
	return strings.Join(args, " ")
}

func sh(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return string(out)
}

func redactURL(u string) string {
	if i := strings.Index(u, "@"); i >= 0 {
		if j := strings.Index(u, "://"); j >= 0 {
			return u[:j+3] + "***" + u[i:]
		}
	}
	return u
}
