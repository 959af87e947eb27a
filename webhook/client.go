package webhook

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Defaults and bounds of a Client.
const (
	DefaultTimeout = 10 * time.Second
	// MaxBody bounds the body a Client sends.
	MaxBody = 1 << 20
	// maxAnswer bounds how much of the receiver's answer is read.
	maxAnswer = 64 << 10
)

// ClientOptions configure a Client. The zero value is a safe client.
type ClientOptions struct {
	// AllowPrivate lets callbacks reach loopback and private addresses
	// (tests, a receiver on the same host). Default false.
	AllowPrivate bool
	// Timeout bounds one delivery, connection to answer. Default 10s.
	Timeout time.Duration
	// UserAgent is sent with each delivery. Default "keyq-webhook/1".
	UserAgent string
}

// Client sends signed webhooks. It never follows redirects, uses no proxy,
// refuses to dial internal addresses (unless AllowPrivate), sends at most
// MaxBody bytes and reads at most 64 KiB of an answer.
type Client struct {
	http *http.Client
	ua   string
}

// NewClient makes a Client.
func NewClient(o ClientOptions) *Client {
	timeout := cmp.Or(o.Timeout, DefaultTimeout)
	d := &net.Dialer{Timeout: min(timeout, 5*time.Second)}
	if !o.AllowPrivate {
		d.Control = dialControl
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: timeout,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       30 * time.Second,
	}
	return &Client{
		http: &http.Client{Transport: tr, Timeout: timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		ua: cmp.Or(o.UserAgent, "keyq-webhook/1"),
	}
}

// ErrBodyTooLarge is returned for a body over MaxBody.
var ErrBodyTooLarge = fmt.Errorf("webhook: the body is larger than %d bytes", MaxBody)

// Send POSTs body to url, signed with secrets as message id at ts. It
// returns the receiver's status; err is set for no answer or a non-2xx
// one (a 3xx is not followed: it is a failure).
func (c *Client) Send(ctx context.Context, url string, secrets []Secret, id string, ts time.Time, body []byte) (int, error) {
	if len(body) > MaxBody {
		return 0, ErrBodyTooLarge
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, errors.New("webhook: the callback URL cannot be requested")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", c.ua)
	Sign(req.Header, secrets, id, ts, body)
	resp, err := c.http.Do(req)
	if err != nil {
		if cause := errors.Unwrap(err); cause != nil {
			return 0, cause // the *url.Error's cause, without the URL again
		}
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("the receiver answered %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}
