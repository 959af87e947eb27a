package tasks

// MaxBatchItems bounds one POST /api/batches.
const MaxBatchItems = 10_000

// BatchItem is one line of a batch: an analyze-character request with an
// optional id of the client's own.
type BatchItem struct {
	CustomID string `json:"custom_id,omitempty"`
	AnalyzeCharacter
	CallbackURL string `json:"callback_url,omitempty"`
}

// BatchAccepted is the answer to a batch submission.
type BatchAccepted struct {
	ID        string `json:"id"`
	Total     int    `json:"total"`
	StatusURL string `json:"status_url"`
}

// Batch is the answer to GET /api/batches/{id}.
type Batch struct {
	ID     string         `json:"id"`
	Total  int            `json:"total"`
	Done   bool           `json:"done"` // every item is final
	Counts map[Status]int `json:"counts"`
	// Webhook is the delivery of the batch's callback, when it has one.
	Webhook *WebhookState `json:"webhook,omitempty"`
}

// BatchResult is one line of GET /api/batches/{id}/results.
type BatchResult struct {
	CustomID string `json:"custom_id,omitempty"`
	Job
}

// JobList is the answer to GET /api/jobs.
type JobList struct {
	Jobs []Job `json:"jobs"`
	// NextCursor fetches the next (older) page; empty on the last.
	NextCursor string `json:"next_cursor,omitempty"`
}
