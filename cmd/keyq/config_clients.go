package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keyq/keyq/webhook"
)

// WebhookEnv is read by keyq api (to accept callback_url) and keyq worker
// (to sign deliveries): set the same values on both.
type WebhookEnv struct {
	WebhookSecret       string `envconfig:"WEBHOOK_SECRET" desc:"signs webhooks (Standard Webhooks): whsec_<base64>; several separated by spaces or commas sign with each while receivers rotate; unset: callback_url is refused"`
	WebhookAllowPrivate bool   `envconfig:"WEBHOOK_ALLOW_PRIVATE" desc:"true lets callbacks reach loopback, private and link-local addresses (tests, a receiver on the same host)"`
}

// secrets parses WEBHOOK_SECRET (validated), naming no value.
func (w WebhookEnv) secrets() []webhook.Secret {
	s, _ := webhook.ParseSecrets(w.WebhookSecret)
	return s
}

func (w WebhookEnv) validate() error {
	if _, err := webhook.ParseSecrets(w.WebhookSecret); err != nil {
		return fmt.Errorf("WEBHOOK_SECRET: %w", err)
	}
	return nil
}

// ClientsEnv is keyq api's side of webhooks: the tokens' default callbacks.
type ClientsEnv struct {
	WebhookEnv
	TokenCallbacks string `envconfig:"API_TOKEN_CALLBACKS" desc:"a default callback URL per token: token=https://...,token2=https://...; jobs of that token without callback_url get it"`
}

// tokenCallbacks parses API_TOKEN_CALLBACKS: token=URL entries separated
// by commas, split at the first "=http".
func (c ClientsEnv) tokenCallbacks() (map[string]string, error) {
	out := map[string]string{}
	for i, e := range splitList(c.TokenCallbacks) {
		at := strings.Index(e, "=http")
		if at <= 0 {
			return nil, fmt.Errorf("API_TOKEN_CALLBACKS: entry %d is not token=https://...", i+1)
		}
		out[e[:at]] = e[at+1:]
	}
	return out, nil
}

func (c ClientsEnv) validate() error {
	_, err := c.tokenCallbacks()
	return errors.Join(c.WebhookEnv.validate(), err)
}

// checkTaskCheckInterval bounds WORKER_TASK_CHECK_INTERVAL.
func checkTaskCheckInterval(d time.Duration) error {
	if d < 10*time.Millisecond {
		return fmt.Errorf("WORKER_TASK_CHECK_INTERVAL must be 10ms or more, like 100ms (got %s)", d)
	}
	return nil
}
