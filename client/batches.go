package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/keyq/keyq/tasks"
)

// BatchOptions are per-batch settings.
type BatchOptions struct {
	// CallbackURL gets the batch's counts, signed, when every item is final.
	CallbackURL string
}

// SubmitBatch posts up to 10,000 items as one batch (sent as JSON Lines).
// A bad item is an *APIError naming it (Field "items[3].name"); then none
// was enqueued.
func (c *Client) SubmitBatch(ctx context.Context, items []tasks.BatchItem, o BatchOptions) (tasks.BatchAccepted, error) {
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	for _, it := range items {
		if err := enc.Encode(it); err != nil {
			return tasks.BatchAccepted{}, err
		}
	}
	path := "/api/batches"
	if o.CallbackURL != "" {
		path += "?callback_url=" + url.QueryEscape(o.CallbackURL)
	}
	var acc tasks.BatchAccepted
	err := c.do(ctx, http.MethodPost, path, http.Header{"Content-Type": {"application/x-ndjson"}}, body.Bytes(), &acc)
	return acc, err
}

// BatchStatus counts a batch's items by status.
func (c *Client) BatchStatus(ctx context.Context, id string) (tasks.Batch, error) {
	var b tasks.Batch
	err := c.do(ctx, http.MethodGet, "/api/batches/"+url.PathEscape(id), nil, nil, &b)
	return b, err
}

// CancelBatch cancels every unfinished item of a batch.
func (c *Client) CancelBatch(ctx context.Context, id string) (tasks.Batch, error) {
	var b tasks.Batch
	err := c.do(ctx, http.MethodDelete, "/api/batches/"+url.PathEscape(id), nil, nil, &b)
	return b, err
}

// BatchResults calls fn with each item of a batch, in the order sent, as
// the API streams them; fn's error stops the stream and is returned.
func (c *Client) BatchResults(ctx context.Context, id string, fn func(tasks.BatchResult) error) error {
	resp, err := c.stream(ctx, "/api/batches/"+url.PathEscape(id)+"/results", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 1<<30))
	sc.Buffer(make([]byte, 64<<10), maxAnswer)
	for sc.Scan() {
		var br tasks.BatchResult
		if err := json.Unmarshal(sc.Bytes(), &br); err != nil {
			return fmt.Errorf("client: a results line is not JSON: %w", err)
		}
		if br.ID == "" { // the stream's last word: the API could not go on
			return apiError(http.StatusServiceUnavailable, sc.Bytes())
		}
		if err := fn(br); err != nil {
			return err
		}
	}
	return sc.Err()
}

// stream sends a GET whose answer is read as it comes: no overall timeout
// but ctx's.
func (c *Client) stream(ctx context.Context, path string, h http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	hc := *c.http
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
		return nil, apiError(resp.StatusCode, b)
	}
	return resp, nil
}
