package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/keyq/keyq/client"
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
	url, token, idem, callback  string
	name, description, language string
	image, file                 string
	count, concurrency          int
	poll, timeout               time.Duration
}

func (f *submitFlags) define(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "url", "http://127.0.0.1:8080", "base URL of keyq api")
	fs.StringVar(&f.token, "token", "", "bearer token, one of the API's API_TOKENS (default $KEYQ_TOKEN)")
	fs.StringVar(&f.name, "name", "", "the character's name")
	fs.StringVar(&f.description, "description", "", "what is known of the character")
	fs.StringVar(&f.language, "language", "", "BCP 47 tag of the answer's language (the API's default: en)")
	fs.StringVar(&f.image, "image", "", "a PNG, JPEG or WebP picture of the character")
	fs.StringVar(&f.file, "file", "", "the job as a JSON file ({\"name\",\"description\",\"image\",\"language\"}); - reads stdin; flags given as well override its fields")
	fs.StringVar(&f.idem, "idempotency-key", "", "send this Idempotency-Key: a repeat gets the same job")
	fs.StringVar(&f.callback, "callback-url", "", "the API POSTs the job, signed, to this URL when it is final (needs WEBHOOK_SECRET on the fleet)")
	fs.IntVar(&f.count, "count", 1, "jobs to submit (a load run when more than 1)")
	fs.IntVar(&f.concurrency, "concurrency", 4, "jobs in flight at once, with --count")
	fs.DurationVar(&f.poll, "poll", client.DefaultPoll, "the shortest time between two status requests, and the pause after an error (the API holds each request until the job changes)")
	fs.DurationVar(&f.timeout, "timeout", 15*time.Minute, "give up waiting for a job after this long")
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
	f.define(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return exitConfig
	}
	f.token = cmpOr(f.token, os.Getenv("KEYQ_TOKEN"))
	p, err := f.payload(os.Stdin)
	if err == nil {
		err = f.check(fs.Args())
	}
	var c *client.Client
	if err == nil {
		c, err = client.New(f.url, client.Options{Token: f.token, Poll: f.poll})
	}
	if err != nil {
		fmt.Fprintf(stderr, "keyq submit: %v\n", err)
		return exitConfig
	}
	if f.count == 1 {
		return submitOne(ctx, c, p, f, stdout, stderr)
	}
	return submitLoad(ctx, c, p, f, stdout, stderr)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (f *submitFlags) check(rest []string) error {
	var errs []error
	if len(rest) > 0 {
		errs = append(errs, fmt.Errorf("unexpected argument %q (fields go in flags: --name ...)", rest[0]))
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

// payload builds the job from --file and the field flags. The API
// validates it; here only what must be read locally is checked.
func (f *submitFlags) payload(stdin io.Reader) (tasks.AnalyzeCharacter, error) {
	var p tasks.AnalyzeCharacter
	if f.file != "" {
		if err := readJobFile(f.file, stdin, &p); err != nil {
			return p, err
		}
	}
	p.Name = cmpOr(f.name, p.Name)
	p.Description = cmpOr(f.description, p.Description)
	p.Language = cmpOr(f.language, p.Language)
	if f.image != "" {
		b, err := os.ReadFile(f.image)
		if err != nil {
			return p, fmt.Errorf("--image: %w", err)
		}
		mt := http.DetectContentType(b)
		if mt != "image/png" && mt != "image/jpeg" && mt != "image/webp" {
			return p, fmt.Errorf("--image %s is %s; the API takes PNG, JPEG or WebP", f.image, mt)
		}
		p.Image = &tasks.Image{MIMEType: mt, Data: b}
	}
	if strings.TrimSpace(p.Name) == "" {
		return p, errors.New("a name is required: --name NAME, or \"name\" in --file")
	}
	return p, nil
}

func readJobFile(name string, stdin io.Reader, p *tasks.AnalyzeCharacter) error {
	var b []byte
	var err error
	if name == "-" {
		b, err = io.ReadAll(stdin)
	} else {
		b, err = os.ReadFile(name)
	}
	if err != nil {
		return fmt.Errorf("--file: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(p); err != nil {
		return fmt.Errorf("--file %s is not a job ({\"name\",\"description\",\"image\",\"language\"}): %w", name, err)
	}
	return nil
}

func describe(j tasks.Job) string {
	s := string(j.Status)
	switch j.Status {
	case tasks.StatusRunning:
		s += fmt.Sprintf(" (run %d of %d)", j.Attempts, j.MaxAttempts)
	case tasks.StatusRetrying:
		s += fmt.Sprintf(" (%d of %d runs done", j.Attempts, j.MaxAttempts)
		if j.NextAttemptAt != nil {
			s += fmt.Sprintf(", next in %s", time.Until(*j.NextAttemptAt).Round(time.Second))
		}
		s += ")"
	}
	if j.Error != nil && j.Status != tasks.StatusSucceeded {
		s += fmt.Sprintf(": %s: %s", j.Error.Class, j.Error.Message)
	}
	return s
}

// submitOne submits one job and follows it.
func submitOne(ctx context.Context, c *client.Client, p tasks.AnalyzeCharacter, f submitFlags, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	start := time.Now()
	acc, err := c.SubmitAnalyzeCharacter(ctx, p, client.SubmitOptions{IdempotencyKey: f.idem, CallbackURL: f.callback})
	if err != nil {
		fmt.Fprintf(stderr, "keyq submit: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "job %s: submitted to %s%s\n", acc.ID, c.BaseURL(), acc.StatusURL)
	// Follow streams the job's states (SSE) as they change: no polling.
	j, err := c.Follow(ctx, acc.ID, func(j tasks.Job) {
		fmt.Fprintf(stderr, "job %s: %s [%s]\n", acc.ID, describe(j), time.Since(start).Round(100*time.Millisecond))
	})
	if err != nil {
		fmt.Fprintf(stderr, "keyq submit: job %s: %v\n", acc.ID, err)
		return 1
	}
	if j.Status != tasks.StatusSucceeded || j.Result == nil {
		return 1
	}
	var out bytes.Buffer
	if err := json.Indent(&out, *j.Result, "", "  "); err != nil {
		out.Reset()
		out.Write(*j.Result)
	}
	out.WriteByte('\n')
	_, _ = stdout.Write(out.Bytes())
	return 0
}
