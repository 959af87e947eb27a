package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/keyq/keyq/tasks"
)

// Cancel cancels a job and returns it: cancelled at once if it was queued
// or retrying; still running while a running one is being cut (Wait for
// its final state). A job that already ended is an *APIError of status 409.
func (c *Client) Cancel(ctx context.Context, id string) (tasks.Job, error) {
	var j tasks.Job
	err := c.do(ctx, http.MethodDelete, "/api/jobs/"+url.PathEscape(id), nil, nil, &j)
	return j, err
}

// ListOptions select a page of jobs.
type ListOptions struct {
	Status tasks.Status // only jobs in this status; empty: all
	Limit  int          // 1 to 100; 0: the API's default (20)
	Cursor string       // NextCursor of the previous page; empty: the newest
}

// List returns a page of the caller's jobs, newest first.
func (c *Client) List(ctx context.Context, o ListOptions) (tasks.JobList, error) {
	q := url.Values{}
	if o.Status != "" {
		q.Set("status", string(o.Status))
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Cursor != "" {
		q.Set("cursor", o.Cursor)
	}
	var l tasks.JobList
	err := c.do(ctx, http.MethodGet, "/api/jobs?"+q.Encode(), nil, nil, &l)
	return l, err
}
