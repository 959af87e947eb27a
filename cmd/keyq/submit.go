package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/keyq/keyq/tasks"
)

// submitUsage heads keyq submit --help.
const submitUsage = `keyq submit: post an analyze-character job to a keyq API, show its status
live on stderr (queued -> running -> retrying -> succeeded), print the result
JSON on stdout. Exit status: 0 succeeded, 1 failed (or the API refused), 2 bad
usage. With --count N it is a small load generator that prints a summary.

Usage: keyq submit [flags]   (fields as flags, or --file JOB.json)

Flags:
`

// submitFlags are keyq submit's flags; unlike the servers it is configured
// on the command line, the way one calls a client.
type submitFlags struct {
	url, token, idem            string
	name, description, language string
	image, file                 string
	count, concurrency          int
	poll, timeout               time.Duration
}

// runSubmit is `keyq submit`; it returns the exit status.
func runSubmit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var f submitFlags
	fs := flag.NewFlagSet("keyq submit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), submitUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&f.url, "url", "http://127.0.0.1:8080", "base URL of keyq api")
	fs.StringVar(&f.token, "token", "", "bearer token, one of the API's API_TOKENS (default $KEYQ_TOKEN)")
	fs.StringVar(&f.name, "name", "", "the character's name")
	fs.StringVar(&f.description, "description", "", "what is known of the character")
	fs.StringVar(&f.language, "language", "", "BCP 47 tag of the answer's language (the API's default: en)")
	fs.StringVar(&f.image, "image", "", "a PNG, JPEG or WebP picture of the character")
	fs.StringVar(&f.file, "file", "", "the job as a JSON file ({\"name\",\"description\",\"image\",\"language\"}); - reads stdin; flags given as well override its fields")
	fs.StringVar(&f.idem, "idempotency-key", "", "send this Idempotency-Key: a repeat gets the same job")
	fs.IntVar(&f.count, "count", 1, "jobs to submit (a load run when more than 1)")
	fs.IntVar(&f.concurrency, "concurrency", 4, "jobs in flight at once, with --count")
	fs.DurationVar(&f.poll, "poll", 500*time.Millisecond, "how often to ask for a job's status")
	fs.DurationVar(&f.timeout, "timeout", 15*time.Minute, "give up waiting for a job after this long")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return exitConfig
	}
	if f.token == "" {
		f.token = os.Getenv("KEYQ_TOKEN")
	}
	body, err := f.body(os.Stdin)
	if err == nil {
		err = f.check(fs.Args())
	}
	if err != nil {
		fmt.Fprintf(stderr, "keyq submit: %v\n", err)
		return exitConfig
	}
	c := &submitClient{base: strings.TrimSuffix(f.url, "/"), token: f.token, idem: f.idem, poll: f.poll, http: &http.Client{Timeout: 30 * time.Second}}
	if f.count == 1 {
		return c.one(ctx, body, f.timeout, stdout, stderr)
	}
	return c.load(ctx, body, f, stdout, stderr)
}

func (f *submitFlags) check(rest []string) error {
	var errs []error
	if len(rest) > 0 {
		errs = append(errs, fmt.Errorf("unexpected argument %q (fields go in flags: --name ...)", rest[0]))
	}
	if u, err := url.Parse(f.url); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, errors.New("--url must be an http(s) URL like http://127.0.0.1:8080"))
	}
	if f.count < 1 || f.concurrency < 1 {
		errs = append(errs, errors.New("--count and --concurrency must be 1 or more"))
	}
	if f.poll <= 0 || f.timeout <= 0 {
		errs = append(errs, errors.New("--poll and --timeout must be positive"))
	}
	if f.idem != "" && f.count > 1 {
		errs = append(errs, errors.New("--idempotency-key with --count would make one job, not many"))
	}
	return errors.Join(errs...)
}

// body builds the request body from --file and the field flags. The API
// validates it; here only what must be read locally is checked.
func (f *submitFlags) body(stdin io.Reader) ([]byte, error) {
	var p tasks.AnalyzeCharacter
	if f.file != "" {
		var b []byte
		var err error
		if f.file == "-" {
			b, err = io.ReadAll(stdin)
		} else {
			b, err = os.ReadFile(f.file)
		}
		if err != nil {
			return nil, fmt.Errorf("--file: %w", err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			return nil, fmt.Errorf("--file %s is not a job ({\"name\",\"description\",\"image\",\"language\"}): %w", f.file, err)
		}
	}
	if f.name != "" {
		p.Name = f.name
	}
	if f.description != "" {
		p.Description = f.description
	}
	if f.language != "" {
		p.Language = f.language
	}
	if f.image != "" {
		b, err := os.ReadFile(f.image)
		if err != nil {
			return nil, fmt.Errorf("--image: %w", err)
		}
		mt := http.DetectContentType(b)
		if mt != "image/png" && mt != "image/jpeg" && mt != "image/webp" {
			return nil, fmt.Errorf("--image %s is %s; the API takes PNG, JPEG or WebP", f.image, mt)
		}
		p.Image = &tasks.Image{MIMEType: mt, Data: b}
	}
	if strings.TrimSpace(p.Name) == "" {
		return nil, errors.New("a name is required: --name NAME, or \"name\" in --file")
	}
	return json.Marshal(p)
}

// submitClient talks to one keyq API.
type submitClient struct {
	base, token, idem string
	poll              time.Duration
	http              *http.Client
}

// submitJob is the part of GET /api/jobs/{id} that submit reads.
type submitJob struct {
	ID          string          `json:"id"`
	Status      string          `json:"status"`
	Attempts    int             `json:"attempts"`
	MaxAttempts int             `json:"max_attempts"`
	NextAttempt *time.Time      `json:"next_attempt_at"`
	Result      json.RawMessage `json:"result"`
	Error       *struct {
		Class   string `json:"class"`
		Message string `json:"message"`
	} `json:"error"`
}

// apiError is an error answer of the API.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string {
	if e.code == "" {
		return fmt.Sprintf("the API answered %d %s", e.status, e.message)
	}
	return fmt.Sprintf("the API answered %d %s: %s", e.status, e.code, e.message)
}

// retryable reports whether asking again may help: Redis or the API
// briefly away.
func retryable(err error) bool {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.status == http.StatusServiceUnavailable || ae.status == http.StatusBadGateway || ae.status == http.StatusGatewayTimeout
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

func (c *submitClient) do(ctx context.Context, method, path string, body []byte, v any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.idem != "" && method == http.MethodPost {
		req.Header.Set("Idempotency-Key", c.idem)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error.Code != "" {
			return &apiError{resp.StatusCode, e.Error.Code, e.Error.Message}
		}
		return &apiError{status: resp.StatusCode, message: strings.TrimSpace(string(b[:min(len(b), 200)]))}
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("the API's answer is not JSON: %w", err)
	}
	return nil
}

// submit posts the job and returns the path to poll.
func (c *submitClient) submit(ctx context.Context, body []byte) (id, statusURL string, err error) {
	var acc struct {
		ID        string `json:"id"`
		StatusURL string `json:"status_url"`
	}
	if err := c.do(ctx, http.MethodPost, "/api/analyze-character", body, &acc); err != nil {
		return "", "", err
	}
	if acc.ID == "" || !strings.HasPrefix(acc.StatusURL, "/") {
		return "", "", errors.New("the API accepted the job without an id or status_url")
	}
	return acc.ID, acc.StatusURL, nil
}

// wait polls the job until it succeeds or fails, calling change on each
// new status. Brief outages of the API are waited out.
func (c *submitClient) wait(ctx context.Context, statusURL string, change func(submitJob)) (submitJob, error) {
	var last submitJob
	t := time.NewTicker(c.poll)
	defer t.Stop()
	for {
		var j submitJob
		err := c.do(ctx, http.MethodGet, statusURL, nil, &j)
		switch {
		case err == nil:
			if j.Status != last.Status || j.Attempts != last.Attempts {
				change(j)
			}
			last = j
			if j.Status == "succeeded" || j.Status == "failed" {
				return j, nil
			}
		case !retryable(err):
			return last, err
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("gave up waiting (last status %q): %w", last.Status, ctx.Err())
		case <-t.C:
		}
	}
}

func describe(j submitJob) string {
	s := j.Status
	switch j.Status {
	case "running":
		s += fmt.Sprintf(" (run %d of %d)", j.Attempts, j.MaxAttempts)
	case "retrying":
		s += fmt.Sprintf(" (%d of %d runs done", j.Attempts, j.MaxAttempts)
		if j.NextAttempt != nil {
			s += fmt.Sprintf(", next in %s", time.Until(*j.NextAttempt).Round(time.Second))
		}
		s += ")"
	}
	if j.Error != nil && j.Status != "succeeded" {
		s += fmt.Sprintf(": %s: %s", j.Error.Class, j.Error.Message)
	}
	return s
}

// one submits one job and follows it.
func (c *submitClient) one(ctx context.Context, body []byte, timeout time.Duration, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	id, statusURL, err := c.submit(ctx, body)
	if err != nil {
		fmt.Fprintf(stderr, "keyq submit: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "job %s: submitted to %s%s\n", id, c.base, statusURL)
	j, err := c.wait(ctx, statusURL, func(j submitJob) {
		fmt.Fprintf(stderr, "job %s: %s [%s]\n", id, describe(j), time.Since(start).Round(100*time.Millisecond))
	})
	if err != nil {
		fmt.Fprintf(stderr, "keyq submit: job %s: %v\n", id, err)
		return 1
	}
	if j.Status != "succeeded" {
		return 1
	}
	var out bytes.Buffer
	if err := json.Indent(&out, j.Result, "", "  "); err != nil {
		out.Reset()
		out.Write(j.Result)
	}
	out.WriteByte('\n')
	_, _ = stdout.Write(out.Bytes())
	return 0
}

// load submits f.count jobs, f.concurrency at a time, follows them all,
// shows the tally live on stderr, and prints a summary on stdout.
func (c *submitClient) load(ctx context.Context, body []byte, f submitFlags, stdout, stderr io.Writer) int {
	var (
		mu        sync.Mutex
		tally     = map[string]int{}
		latencies []time.Duration
		errs      []string
	)
	set := func(from, to string) {
		mu.Lock()
		defer mu.Unlock()
		if from != "" {
			tally[from]--
		}
		tally[to]++
	}
	jobs := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range min(f.concurrency, f.count) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				jctx, cancel := context.WithTimeout(ctx, f.timeout)
				t0 := time.Now()
				status := ""
				_, statusURL, err := c.submit(jctx, body)
				if err == nil {
					_, err = c.wait(jctx, statusURL, func(j submitJob) {
						if j.Status != status {
							set(status, j.Status)
							status = j.Status
						}
					})
					if err == nil {
						mu.Lock()
						latencies = append(latencies, time.Since(t0))
						mu.Unlock()
					}
				}
				cancel()
				if err != nil {
					set(status, "error")
					mu.Lock()
					errs = append(errs, err.Error())
					mu.Unlock()
				}
			}
		}()
	}
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
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
			mu.Lock()
			line := tallyLine(tally)
			mu.Unlock()
			if line != last {
				fmt.Fprintf(stderr, "[%s] %s\n", time.Since(start).Round(time.Second), line)
				last = line
			}
		}
	}()
	for i := 0; i < f.count && ctx.Err() == nil; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(done)
	<-stopped // the progress line writes to stderr too
	wall := time.Since(start)

	mu.Lock()
	defer mu.Unlock()
	for i, e := range errs {
		if i == 3 {
			fmt.Fprintf(stderr, "... and %d more errors\n", len(errs)-3)
			break
		}
		fmt.Fprintf(stderr, "keyq submit: %s\n", e)
	}
	slices.Sort(latencies)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "jobs\t%d\n", f.count)
	fmt.Fprintf(tw, "succeeded\t%d\n", tally["succeeded"])
	fmt.Fprintf(tw, "failed\t%d\n", tally["failed"])
	fmt.Fprintf(tw, "errors\t%d\n", tally["error"])
	if len(latencies) > 0 {
		fmt.Fprintf(tw, "latency\tp50 %s  p95 %s  max %s\n", percentile(latencies, 0.50), percentile(latencies, 0.95), latencies[len(latencies)-1].Round(time.Millisecond))
	}
	fmt.Fprintf(tw, "wall\t%s (%.2f jobs/s)\n", wall.Round(time.Millisecond), float64(len(latencies))/wall.Seconds())
	tw.Flush()
	if tally["succeeded"] != f.count {
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
	for _, s := range []string{"queued", "running", "retrying", "succeeded", "failed", "error"} {
		if t[s] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", s, t[s]))
		}
	}
	if len(parts) == 0 {
		return "submitting"
	}
	return strings.Join(parts, ", ")
}
