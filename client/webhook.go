package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/keyq/keyq/tasks"
	"github.com/keyq/keyq/webhook"
)

// VerifyWebhook checks a webhook keyq sent (its Standard Webhooks
// signature, made with one of secrets, "whsec_..." separated by spaces or
// commas, and a timestamp within 5 minutes) and returns the job it
// carries. Delivery is at least once: de-duplicate by the webhook-id
// header. Batch webhooks carry a tasks.Batch instead: use webhook.Verify.
func VerifyWebhook(secrets string, h http.Header, body []byte) (tasks.Job, error) {
	ss, err := webhook.ParseSecrets(secrets)
	if err != nil {
		return tasks.Job{}, err
	}
	if len(ss) == 0 {
		return tasks.Job{}, errors.New("client: no webhook secret to verify with")
	}
	if err := webhook.Verify(ss, h, body, 5*time.Minute); err != nil {
		return tasks.Job{}, err
	}
	var j tasks.Job
	if err := json.Unmarshal(body, &j); err != nil || j.ID == "" {
		return j, fmt.Errorf("client: the webhook's body is not a job: %v", err)
	}
	return j, nil
}
