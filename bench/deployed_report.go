package main

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// deployedProcs is the report's row order; measured says whose cost it is.
var deployedProcs = []struct {
	name, label string
	measured    bool
}{
	{"rawworker", "raw asynq worker (`bench -role rawworker`)", true},
	{"rawapi", "raw HTTP API (`bench -role rawapi`, floor only)", true},
	{"keyq api", "`keyq api`", true},
	{"keyq worker", "`keyq worker`", true},
	{"redis-server", "redis-server (INFO cpu)", true},
	{"keyq fake", "`keyq fake` (stands for Google; not counted)", false},
	{"load generator", "load generator, the bench process (not counted)", false},
}

func deployedReport(rep *report, n int, raws, keyqs []*deployedRun, info *deployedRun) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Deployed: keyq's overhead over raw asynq, every part its own process\n\n")
	fmt.Fprintf(&b, "Each run starts on an emptied Redis (FLUSHDB) and runs %d jobs. Processes:\n\n", n)
	fmt.Fprintf(&b, "- raw asynq: one worker process (the bench re-executed, `-role rawworker`): `asynq.NewServer(asynq.ParseRedisURI(url))` with asynq's defaults but Concurrency 50 and TaskCheckInterval 100 ms (keyq's default; asynq's is 1 s); its handler writes a %d-byte result with `ResultWriter().Write` and returns. Jobs are enqueued from the bench with `asynq.Client.Enqueue` (TaskID, Retention 24h, MaxRetry 4).\n", len(rawResult))
	fmt.Fprintf(&b, "- keyq: `go build ./cmd/keyq`, then `keyq fake` (SIM_LATENCY=0, no 503s or 429s), `keyq api` and `keyq worker` (WORKER_CONCURRENCY=50, 3 keys in 3 projects, GEMINI_BASE_URL at the fake), everything else at its default. Jobs are `POST /api/analyze-character` from the bench over pooled HTTP connections.\n")
	fmt.Fprintf(&b, "- Both: 16 submitting goroutines; completion is asynq's completed set (`ZCARD asynq:{queue}:completed`) read every 50 ms, not a poll per job. Throughput = jobs / (first submit to the sample that saw all of them). Processes log to files, as a deployment logs to a pipe or file.\n\n")
	fmt.Fprintf(&b, "On this machine (2 cores) every process shares the same CPUs, with each other and with the load generator, so throughput is partly a contest for cores: **CPU per job is the fairer figure; the throughput ratio is the issue's figure.**\n\n")
	writeDeployedRates(&b, rep, raws, keyqs, info)
	writeDeployedCPU(&b, raws, keyqs, info)
	writeDeployedRedis(&b, raws, keyqs, info)
	return b.String()
}

func writeDeployedRates(b *strings.Builder, rep *report, raws, keyqs []*deployedRun, info *deployedRun) {
	fmt.Fprintf(b, "### Throughput\n\nraw asynq and keyq (LOG_LEVEL=warn) alternate; then one keyq run at LOG_LEVEL=info (the default), compared with the median raw run.\n\n")
	fmt.Fprintf(b, "CPU per job is the counted total of the next table, per run: it should vary much less than throughput. The load average (1 min, at the end of the keyq run) counts this run's own processes and anything else on the machine.\n\n")
	fmt.Fprintf(b, "| run | raw asynq jobs/s | keyq jobs/s | ratio keyq / raw | raw CPU µs/job | keyq CPU µs/job | CPU ratio | load avg |\n|---|---|---|---|---|---|---|---|\n")
	var ratios, rawRates []float64
	for i := range raws {
		r, k := raws[i].rate(), keyqs[i].rate()
		rc, kc := cpuPerJob(raws[i], "total"), cpuPerJob(keyqs[i], "total")
		ratios, rawRates = append(ratios, k/r), append(rawRates, r)
		fmt.Fprintf(b, "| %d, keyq LOG_LEVEL=warn | %.0f | %.0f | %.2f | %.0f | %.0f | %.1fx | %s |\n", i+1, r, k, k/r, rc, kc, kc/rc, keyqs[i].load)
	}
	ratio := median(ratios)
	fmt.Fprintf(b, "| **median** (goal >= 0.6) | | | **%.2f** | | | | |\n", ratio)
	fmt.Fprintf(b, "| keyq LOG_LEVEL=info, against the median raw | %.0f | %.0f | %.2f | | %.0f | | %s |\n\n", median(rawRates), info.rate(), info.rate()/median(rawRates), cpuPerJob(info, "total"), info.load)
	if ratio < 0.6 {
		rep.note("deployed: keyq end to end, every part its own process, is %.2f of raw asynq's throughput (goal >= 0.6)", ratio)
	}
}

// cpuPerJob is the process's CPU per job in µs; total sums the measured
// processes.
func cpuPerJob(r *deployedRun, proc string) float64 {
	var d time.Duration
	for _, p := range deployedProcs {
		if p.name == proc || (proc == "total" && p.measured) {
			d += r.cpu[p.name]
		}
	}
	return float64(d.Microseconds()) / float64(r.n)
}

// medianOf is the median over runs of f.
func medianOf(runs []*deployedRun, f func(*deployedRun) float64) float64 {
	var v []float64
	for _, r := range runs {
		v = append(v, f(r))
	}
	return median(v)
}

func writeDeployedCPU(b *strings.Builder, raws, keyqs []*deployedRun, info *deployedRun) {
	fmt.Fprintf(b, "### CPU per job, per process\n\nµs of CPU (user + system, all threads, from `/proc/<pid>/stat`; Redis from `INFO cpu`; the bench from `getrusage`) over the measured window, divided by the jobs; median of the runs (the info column is one run). Log bytes per job in brackets where a process logged in the window.\n\n")
	fmt.Fprintf(b, "| process | raw asynq | keyq, LOG_LEVEL=warn | keyq, LOG_LEVEL=info |\n|---|---|---|---|\n")
	cell := func(runs []*deployedRun, proc string) string {
		if _, ok := runs[0].cpu[proc]; !ok {
			return ""
		}
		s := fmt.Sprintf("%.0f", medianOf(runs, func(r *deployedRun) float64 { return cpuPerJob(r, proc) }))
		if l := medianOf(runs, func(r *deployedRun) float64 { return float64(r.logged[proc]) / float64(r.n) }); l > 0 {
			s += fmt.Sprintf(" (%.0f B logged)", l)
		}
		return s
	}
	one := []*deployedRun{info}
	for _, p := range deployedProcs {
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", p.label, cell(raws, p.name), cell(keyqs, p.name), cell(one, p.name))
	}
	rt, kt := medianOf(raws, func(r *deployedRun) float64 { return cpuPerJob(r, "total") }), medianOf(keyqs, func(r *deployedRun) float64 { return cpuPerJob(r, "total") })
	fmt.Fprintf(b, "| **total counted** (worker + api + redis-server) | **%.0f** | **%.0f** (%.1fx raw) | %.0f (%.1fx raw) |\n\n", rt, kt, kt/rt, cpuPerJob(info, "total"), cpuPerJob(info, "total")/rt)
	fmt.Fprintf(b, "The raw load generator's CPU includes `asynq.Client.Enqueue` (the application's side of raw asynq), which for keyq is in `keyq api`; keyq's includes an HTTP client instead.\n\n")
}

func writeDeployedRedis(b *strings.Builder, raws, keyqs []*deployedRun, info *deployedRun) {
	sum := func(runs []*deployedRun) (calls map[string]int64, reads int64, n int) {
		calls = map[string]int64{}
		for _, r := range runs {
			for k, v := range r.calls {
				calls[k] += v
			}
			reads, n = reads+r.reads, n+r.n
		}
		return calls, reads, n
	}
	rc, rr, rn := sum(raws)
	kc, kr, kn := sum(keyqs)
	ic, ir, in := sum([]*deployedRun{info})
	per := func(v int64, n int) string { return fmt.Sprintf("%.2f", float64(v)/float64(n)) }
	total := func(c map[string]int64) (t int64) {
		for _, v := range c {
			t += v
		}
		return t
	}
	fmt.Fprintf(b, "### Redis per job\n\nFrom `INFO commandstats` and `INFO stats` before and after each window, summed over the runs, the bench's completion sampler (ZCARD) and INFO removed. Commands run inside scripts (EVALSHA) are counted in the total as well as the EVALSHA itself. Socket reads (`total_reads_processed`) count one per request or pipeline a client sent: client round trips, near enough.\n\n")
	fmt.Fprintf(b, "| per job | raw asynq | keyq, warn | keyq, info |\n|---|---|---|---|\n")
	fmt.Fprintf(b, "| commands, all | %s | %s | %s |\n", per(total(rc), rn), per(total(kc), kn), per(total(ic), in))
	fmt.Fprintf(b, "| EVALSHA + EVAL (scripts run) | %s | %s | %s |\n", per(rc["evalsha"]+rc["eval"], rn), per(kc["evalsha"]+kc["eval"], kn), per(ic["evalsha"]+ic["eval"], in))
	fmt.Fprintf(b, "| socket reads (~ round trips) | %s | %s | %s |\n", per(rr, rn), per(kr, kn), per(ir, in))
	for _, name := range topCommands(rc, kc, 12) {
		fmt.Fprintf(b, "| `%s` | %s | %s | %s |\n", strings.ToUpper(name), per(rc[name], rn), per(kc[name], kn), per(ic[name], in))
	}
	fmt.Fprintln(b)
}

// topCommands is the union of the most called commands of either side,
// most called (by keyq) first.
func topCommands(raw, keyq map[string]int64, k int) []string {
	pick := map[string]bool{}
	for _, m := range []map[string]int64{raw, keyq} {
		names := make([]string, 0, len(m))
		for name := range m {
			names = append(names, name)
		}
		sort.Slice(names, func(i, j int) bool { return m[names[i]] > m[names[j]] })
		for i := 0; i < len(names) && i < k; i++ {
			pick[names[i]] = true
		}
	}
	var out []string
	for name := range pick {
		out = append(out, name)
	}
	sort.Slice(out, func(i, j int) bool {
		if a, b := keyq[out[i]]+raw[out[i]], keyq[out[j]]+raw[out[j]]; a != b {
			return a > b
		}
		return out[i] < out[j]
	})
	return out
}

// deployedBefore compares this tree's keyq with an earlier binary's, run
// in the same reps (raw, keyq, before), at LOG_LEVEL=warn.
func deployedBefore(n int, raws, keyqs, befores []*deployedRun) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### Against an earlier keyq\n\n`-deployed-before %s`, run after keyq in each rep, %d jobs, LOG_LEVEL=warn; medians of the reps.\n\n", *flagDeployedB, n)
	rate := func(r *deployedRun) float64 { return r.rate() }
	fmt.Fprintf(&b, "| | raw asynq | keyq before | keyq now |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| jobs/s | %.0f | %.0f | %.0f |\n", medianOf(raws, rate), medianOf(befores, rate), medianOf(keyqs, rate))
	for _, p := range deployedProcs {
		if !p.measured {
			continue
		}
		f := func(r *deployedRun) float64 { return cpuPerJob(r, p.name) }
		if _, ok := befores[0].cpu[p.name]; ok {
			fmt.Fprintf(&b, "| CPU µs/job, %s | | %.0f | %.0f |\n", p.label, medianOf(befores, f), medianOf(keyqs, f))
		}
	}
	total := func(r *deployedRun) float64 { return cpuPerJob(r, "total") }
	fmt.Fprintf(&b, "| CPU µs/job, total counted | %.0f | %.0f | %.0f |\n", medianOf(raws, total), medianOf(befores, total), medianOf(keyqs, total))
	per := func(f func(*deployedRun) int64) func(*deployedRun) float64 {
		return func(r *deployedRun) float64 { return float64(f(r)) / float64(r.n) }
	}
	reads := per(func(r *deployedRun) int64 { return r.reads })
	calls := per(func(r *deployedRun) (t int64) {
		for _, v := range r.calls {
			t += v
		}
		return t
	})
	fmt.Fprintf(&b, "| Redis socket reads (~ round trips) / job | %.2f | %.2f | %.2f |\n", medianOf(raws, reads), medianOf(befores, reads), medianOf(keyqs, reads))
	fmt.Fprintf(&b, "| Redis commands / job | %.2f | %.2f | %.2f |\n\n", medianOf(raws, calls), medianOf(befores, calls), medianOf(keyqs, calls))
	return b.String()
}

// deployedFloor puts keyq beside the least any HTTP job API over asynq
// calling an HTTP upstream costs: what of keyq's overhead is HTTP's, and
// what is keyq's own.
func deployedFloor(n int, raws, floors, keyqs []*deployedRun) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### The floor: raw asynq behind HTTP on both sides\n\n")
	fmt.Fprintf(&b, "In each rep, after keyq: `keyq fake` as the upstream, `bench -role rawapi` (net/http: decode the JSON job, `asynq.Client.Enqueue`, answer 202; jobs POSTed by the bench like keyq's) and `bench -role rawworker -upstream` (each task calls generateContent on the fake, pooled connections, then writes its result). No keys, job states, usage or logs: the cost of HTTP in front of and behind asynq, which keyq cannot shed. %d jobs, medians of the reps.\n\n", n)
	rate := func(r *deployedRun) float64 { return r.rate() }
	total := func(r *deployedRun) float64 { return cpuPerJob(r, "total") }
	rr, fr, kr := medianOf(raws, rate), medianOf(floors, rate), medianOf(keyqs, rate)
	rc, fc, kc := medianOf(raws, total), medianOf(floors, total), medianOf(keyqs, total)
	fmt.Fprintf(&b, "| | raw asynq | floor: asynq behind HTTP | keyq (LOG_LEVEL=warn) |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| jobs/s | %.0f | %.0f | %.0f |\n", rr, fr, kr)
	fmt.Fprintf(&b, "| throughput ratio to raw asynq | 1 | %.2f | %.2f |\n", fr/rr, kr/rr)
	for _, p := range deployedProcs {
		f := func(r *deployedRun) float64 { return cpuPerJob(r, p.name) }
		cell := func(runs []*deployedRun) string {
			if _, ok := runs[0].cpu[p.name]; !ok {
				return ""
			}
			return fmt.Sprintf("%.0f", medianOf(runs, f))
		}
		if c := [3]string{cell(raws), cell(floors), cell(keyqs)}; c != [3]string{} {
			fmt.Fprintf(&b, "| CPU µs/job, %s | %s | %s | %s |\n", p.label, c[0], c[1], c[2])
		}
	}
	fmt.Fprintf(&b, "| CPU µs/job, total counted | %.0f | %.0f | %.0f |\n", rc, fc, kc)
	fmt.Fprintf(&b, "| CPU ratio to raw asynq | 1 | %.1fx | %.1fx |\n\n", fc/rc, kc/rc)
	fmt.Fprintf(&b, "keyq's own cost over the floor: %.0f µs of CPU per job (%.0f%% of keyq's total); keyq reaches %.2f of the floor's throughput.\n\n", kc-fc, 100*(kc-fc)/kc, kr/fr)
	return b.String()
}
