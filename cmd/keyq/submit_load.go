package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/keyq/keyq/client"
	"github.com/keyq/keyq/tasks"
)

// loadRun is keyq submit --count N: a tally of the jobs' statuses, shown
// live, and their latencies.
type loadRun struct {
	c     *client.Client
	p     tasks.AnalyzeCharacter
	f     submitFlags
	start time.Time

	mu        sync.Mutex
	tally     map[string]int
	latencies []time.Duration
	errs      []string
}

// submitLoad submits f.count jobs, f.concurrency at a time, follows them
// all, shows the tally live on stderr, and prints a summary on stdout.
func submitLoad(ctx context.Context, c *client.Client, p tasks.AnalyzeCharacter, f submitFlags, stdout, stderr io.Writer) int {
	l := &loadRun{c: c, p: p, f: f, start: time.Now(), tally: map[string]int{}}
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(f.concurrency, f.count) {
		wg.Go(func() {
			for range jobs {
				l.one(ctx)
			}
		})
	}
	done, stopped := make(chan struct{}), make(chan struct{})
	go l.progress(stderr, done, stopped)
	for i := 0; i < f.count && ctx.Err() == nil; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(done)
	<-stopped // the progress line writes to stderr too
	return l.summary(time.Since(l.start), stdout, stderr)
}

// one submits a job and follows it to its end.
func (l *loadRun) one(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, l.f.timeout)
	defer cancel()
	t0 := time.Now()
	status := ""
	acc, err := l.c.SubmitAnalyzeCharacter(ctx, l.p, client.SubmitOptions{})
	if err == nil {
		_, err = l.c.Wait(ctx, acc.ID, func(j tasks.Job) {
			if s := string(j.Status); s != status {
				l.move(status, s)
				status = s
			}
		})
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.errs = append(l.errs, err.Error())
		l.tally[status]--
		l.tally["error"]++
		return
	}
	l.latencies = append(l.latencies, time.Since(t0))
}

func (l *loadRun) move(from, to string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if from != "" {
		l.tally[from]--
	}
	l.tally[to]++
}

// progress prints the tally every second while it changes, until done.
func (l *loadRun) progress(w io.Writer, done <-chan struct{}, stopped chan<- struct{}) {
	defer close(stopped)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := ""
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		l.mu.Lock()
		line := tallyLine(l.tally)
		l.mu.Unlock()
		if line != last {
			fmt.Fprintf(w, "[%s] %s\n", time.Since(l.start).Round(time.Second), line)
			last = line
		}
	}
}

func (l *loadRun) summary(wall time.Duration, stdout, stderr io.Writer) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, e := range l.errs {
		if i == 3 {
			fmt.Fprintf(stderr, "... and %d more errors\n", len(l.errs)-3)
			break
		}
		fmt.Fprintf(stderr, "keyq submit: %s\n", e)
	}
	slices.Sort(l.latencies)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "jobs\t%d\n", l.f.count)
	fmt.Fprintf(tw, "succeeded\t%d\n", l.tally["succeeded"])
	fmt.Fprintf(tw, "failed\t%d\n", l.tally["failed"])
	fmt.Fprintf(tw, "errors\t%d\n", l.tally["error"])
	if n := len(l.latencies); n > 0 {
		fmt.Fprintf(tw, "latency\tp50 %s  p95 %s  max %s\n", percentile(l.latencies, 0.50), percentile(l.latencies, 0.95), l.latencies[n-1].Round(time.Millisecond))
	}
	fmt.Fprintf(tw, "wall\t%s (%.2f jobs/s)\n", wall.Round(time.Millisecond), float64(len(l.latencies))/wall.Seconds())
	tw.Flush()
	if l.tally["succeeded"] != l.f.count {
		return 1
	}
	return 0
}

// percentile is the nearest-rank q-quantile of sorted durations.
func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))].Round(time.Millisecond)
}

func tallyLine(t map[string]int) string {
	var parts []string
	for _, s := range []tasks.Status{tasks.StatusQueued, tasks.StatusRunning, tasks.StatusRetrying, tasks.StatusSucceeded, tasks.StatusFailed, "error"} {
		if n := t[string(s)]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", s, n))
		}
	}
	if len(parts) == 0 {
		return "submitting"
	}
	return strings.Join(parts, ", ")
}
