package client

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keyq/keyq/tasks"
)

// Defaults for Options.
const (
	DefaultPoll    = 500 * time.Millisecond
	DefaultTimeout = 30 * time.Second
	maxAnswer      = 32 << 20
)

// Options configure a Client.
type Options struct {
	// Token is a bearer token, one of the API's API_TOKENS. Empty: none sent.
	Token string
	// Poll is the shortest time between two of Wait's requests (the server
	// holds each up to 25 s, answering as soon as the job ends), and the
	// pause after an error. Default 500ms.
	Poll time.Duration
	// HTTPClient sends the requests. Default: one with a 30s timeout.
	HTTPClient *http.Client
}

// Client talks to one keyq API. It is safe for concurrent use.
type Client struct {
	base  string
	token string
	poll  time.Duration
	http  *http.Client
}

// New returns a Client of the API at baseURL (http://127.0.0.1:8080).
func New(baseURL string, opts Options) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("client: the base URL must be an http(s) URL like http://127.0.0.1:8080")
	}
	if opts.Poll < 0 {
		return nil, errors.New("client: Poll must not be negative")
	}
	return &Client{
		base:  strings.TrimSuffix(baseURL, "/"),
		token: opts.Token,
		poll:  cmp.Or(opts.Poll, DefaultPoll),
		http:  cmp.Or(opts.HTTPClient, &http.Client{Timeout: DefaultTimeout}),
	}, nil
}

// BaseURL is the API's base URL, without a trailing slash.
func (c *Client) BaseURL() string { return c.base }

// APIError is an error answer of the API.
type APIError struct {
	Status  int    // HTTP status
	Code    string // the API's error code ("invalid_request"), "" if the body had none
	Message string
	Field   string // the request field at fault, if any
}

func (e *APIError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("the API answered %d %s", e.Status, e.Message)
	}
	return fmt.Sprintf("the API answered %d %s: %s", e.Status, e.Code, e.Message)
}

// Retryable reports whether asking again may help: the API or its Redis
// briefly away, or a transport error. A cancelled or expired context is not.
func Retryable(err error) bool {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status == http.StatusServiceUnavailable || ae.Status == http.StatusBadGateway || ae.Status == http.StatusGatewayTimeout
	}
	return err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// SubmitOptions are per-submission settings.
type SubmitOptions struct {
	// IdempotencyKey makes a repeat of the submission return the same job.
	IdempotencyKey string
	// CallbackURL gets the job's JSON, signed (VerifyWebhook), when it is
	// final. Empty: the token's default, if any.
	CallbackURL string
}

// SubmitAnalyzeCharacter posts an analyze-character job.
func (c *Client) SubmitAnalyzeCharacter(ctx context.Context, p tasks.AnalyzeCharacter, o SubmitOptions) (tasks.Accepted, error) {
	body, err := json.Marshal(struct {
		tasks.AnalyzeCharacter
		CallbackURL string `json:"callback_url,omitempty"`
	}{p, o.CallbackURL})
	if err != nil {
		return tasks.Accepted{}, err
	}
	return c.Submit(ctx, "/api/"+tasks.TypeAnalyzeCharacter, body, o)
}

// Submit posts a job's JSON body to path (e.g. /api/analyze-character).
func (c *Client) Submit(ctx context.Context, path string, body []byte, o SubmitOptions) (tasks.Accepted, error) {
	var acc tasks.Accepted
	h := http.Header{"Content-Type": {"application/json"}}
	if o.IdempotencyKey != "" {
		h.Set("Idempotency-Key", o.IdempotencyKey)
	}
	if err := c.do(ctx, http.MethodPost, path, h, body, &acc); err != nil {
		return acc, err
	}
	if acc.ID == "" || !strings.HasPrefix(acc.StatusURL, "/") {
		return acc, errors.New("client: the API accepted the job without an id or status_url")
	}
	return acc, nil
}

// Get reads a job.
func (c *Client) Get(ctx context.Context, id string) (tasks.Job, error) {
	var j tasks.Job
	err := c.do(ctx, http.MethodGet, "/api/jobs/"+url.PathEscape(id), nil, nil, &j)
	return j, err
}

// Wait returns the job once it is final (succeeded, failed or cancelled),
// calling change (if not nil) with each new status or run count it sees.
// It long-polls (GET /api/jobs/{id}?wait=), so the answer comes as soon as
// the job ends, without polling; a server that does not hold the request
// is asked again no more often than Options.Poll. Brief outages of the API
// are waited out; ctx bounds the whole wait.
func (c *Client) Wait(ctx context.Context, id string, change func(tasks.Job)) (tasks.Job, error) {
	var last tasks.Job
	hold := c.longPoll()
	for {
		asked := time.Now()
		var j tasks.Job
		err := c.do(ctx, http.MethodGet, "/api/jobs/"+url.PathEscape(id)+"?wait="+hold.String(), nil, nil, &j)
		switch {
		case err == nil:
			if change != nil && (j.Status != last.Status || j.Attempts != last.Attempts) {
				change(j)
			}
			last = j
			if j.Status.Final() {
				return j, nil
			}
		case !Retryable(err):
			return last, err
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("gave up waiting (last status %q): %w", last.Status, ctx.Err())
		case <-time.After(c.poll - time.Since(asked)):
		}
	}
}

// longPoll is how long one request of Wait asks the server to hold it:
// 25 s, less if the HTTP client's own timeout would cut it first.
func (c *Client) longPoll() time.Duration {
	d := 25 * time.Second
	if t := c.http.Timeout; t > 0 && t-5*time.Second < d {
		d = max(t-5*time.Second, time.Second)
	}
	return d
}

// do sends one request and decodes a 2xx JSON answer into v.
func (c *Client) do(ctx context.Context, method, path string, h http.Header, body []byte, v any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return apiError(resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("client: the API's answer is not JSON: %w", err)
	}
	return nil
}

func apiError(status int, body []byte) *APIError {
	var e struct {
		Error struct{ Code, Message, Field string } `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error.Code != "" {
		return &APIError{Status: status, Code: e.Error.Code, Message: e.Error.Message, Field: e.Error.Field}
	}
	return &APIError{Status: status, Message: strings.TrimSpace(string(body[:min(len(body), 200)]))}
}
