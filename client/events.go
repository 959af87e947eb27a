package client

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keyq/keyq/tasks"
)

// Follow streams a job's state changes (Server-Sent Events, GET
// /api/jobs/{id}/events), calling change with each, until the job is final,
// and returns it. A dropped stream is resumed with Last-Event-ID, so no
// state is seen twice; ctx bounds the whole wait.
func (c *Client) Follow(ctx context.Context, id string, change func(tasks.Job)) (tasks.Job, error) {
	var (
		last   tasks.Job
		lastID string
	)
	for {
		final, err := c.followOnce(ctx, id, &lastID, func(j tasks.Job) {
			last = j
			if change != nil {
				change(j)
			}
		})
		switch {
		case final:
			return last, nil
		case err != nil && !Retryable(err):
			return last, err
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("gave up following (last status %q): %w", last.Status, ctx.Err())
		case <-time.After(c.poll):
		}
	}
}

// followOnce reads one stream until it ends; final reports a final job.
func (c *Client) followOnce(ctx context.Context, id string, lastID *string, fn func(tasks.Job)) (final bool, err error) {
	h := http.Header{"Accept": {"text/event-stream"}}
	if *lastID != "" {
		h.Set("Last-Event-ID", *lastID)
	}
	resp, err := c.stream(ctx, "/api/jobs/"+url.PathEscape(id)+"/events", h)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), maxAnswer)
	var evID, data string
	for sc.Scan() {
		field, value, _ := strings.Cut(sc.Text(), ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			evID = value
		case "data":
			data = value
		case "":
			if data == "" {
				continue // a comment or the retry line
			}
			var j tasks.Job
			if err := json.Unmarshal([]byte(data), &j); err != nil {
				return false, fmt.Errorf("client: an event is not a job: %w", err)
			}
			*lastID, data = evID, ""
			fn(j)
			if j.Status.Final() {
				return true, nil
			}
		}
	}
	return false, sc.Err()
}
