package tasks

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/keyq/keyq/gemini"
)

// TypeGenerate is the task type of a plain generateContent call.
const TypeGenerate = "generate"

// Limits of a generate request (the body itself is bounded by the API).
const (
	MaxContents        = 20
	MaxParts           = 100 // over all contents and the system instruction
	MaxInlineBytes     = 7 << 20
	MaxOutputTokensCap = 65_536
	MaxStopSequences   = 5
)

// Generate is the payload of a generate job and the body of POST
// /api/generate: a Gemini generateContent request (text and inline data,
// no tools) plus the job's options.
type Generate struct {
	JobOptions
	Contents          []Content         `json:"contents"`
	SystemInstruction *Content          `json:"systemInstruction,omitempty"`
	GenerationConfig  *GenerationConfig `json:"generationConfig,omitempty"`
	SafetySettings    []SafetySetting   `json:"safetySettings,omitempty"`
}

// Content is one turn: role "user" (default) or "model", and its parts.
type Content struct {
	Role  string `json:"role,omitempty"`
	Parts []Part `json:"parts"`
}

// Part is text or inline data, exactly one of them.
type Part struct {
	Text       *string `json:"text,omitempty"`
	InlineData *Blob   `json:"inlineData,omitempty"`
}

// Blob is inline data: a MIME type and the bytes (base64 in JSON).
type Blob struct {
	MIMEType string `json:"mimeType"`
	Data     []byte `json:"data"`
}

// GenerationConfig is the subset of Gemini's generationConfig keyq
// passes on. thinkingConfig is not among them: keyq sets it per model
// family (GEMINI_THINKING), since a fallback may change the family.
type GenerationConfig struct {
	ResponseMIMEType   string          `json:"responseMimeType,omitempty"`
	ResponseSchema     json.RawMessage `json:"responseSchema,omitempty"`
	ResponseJSONSchema json.RawMessage `json:"responseJsonSchema,omitempty"`
	Temperature        *float64        `json:"temperature,omitempty"`
	TopP               *float64        `json:"topP,omitempty"`
	TopK               *int            `json:"topK,omitempty"`
	CandidateCount     *int            `json:"candidateCount,omitempty"`
	MaxOutputTokens    *int            `json:"maxOutputTokens,omitempty"`
	StopSequences      []string        `json:"stopSequences,omitempty"`
	PresencePenalty    *float64        `json:"presencePenalty,omitempty"`
	FrequencyPenalty   *float64        `json:"frequencyPenalty,omitempty"`
	Seed               *int            `json:"seed,omitempty"`
}

// SafetySetting is one category's blocking threshold.
type SafetySetting struct {
	Category  string `json:"category"`
	Threshold string `json:"threshold"`
}

// NewGenerateTask validates p and makes its task.
func NewGenerateTask(p Generate, opts ...asynq.Option) (*asynq.Task, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return asynq.NewTask(TypeGenerate, b, opts...), nil
}

// ParseGenerate reads a task's payload back, validated.
func ParseGenerate(b []byte) (Generate, error) {
	var p Generate
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("payload is not a generate request: %w", err)
	}
	return p, p.Validate()
}

func parseGenerateRunnable(b []byte) (Runnable, error) {
	p, err := ParseGenerate(b)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Options returns the job's model and tier.
func (p Generate) Options() JobOptions { return p.JobOptions }

// WantJSON reports a request for a JSON answer.
func (p Generate) WantJSON() bool {
	return p.GenerationConfig != nil && p.GenerationConfig.ResponseMIMEType == "application/json"
}

// Request passes the body on as Gemini's own, without the job options.
func (p Generate) Request() (*gemini.Request, error) {
	raw, err := json.Marshal(struct {
		Contents          []Content         `json:"contents"`
		SystemInstruction *Content          `json:"systemInstruction,omitempty"`
		GenerationConfig  *GenerationConfig `json:"generationConfig,omitempty"`
		SafetySettings    []SafetySetting   `json:"safetySettings,omitempty"`
	}{p.Contents, p.SystemInstruction, p.GenerationConfig, p.SafetySettings})
	if err != nil {
		return nil, err
	}
	req := &gemini.Request{Raw: raw, WantJSON: p.WantJSON()}
	if p.Flex() {
		req.ServiceTier = gemini.TierFlex
	}
	return req, nil
}

// Read keeps the text, or the JSON when JSON was asked for, the finish
// reason and the safety ratings.
func (p Generate) Read(resp *gemini.Response, r *Result) error {
	if p.WantJSON() {
		var buf bytes.Buffer
		if err := json.Compact(&buf, []byte(resp.Text)); err != nil {
			return fmt.Errorf("answer is not JSON although responseMimeType is application/json: %w", err)
		}
		r.JSON = buf.Bytes()
	} else {
		r.Text = resp.Text
	}
	r.FinishReason, r.SafetyRatings = resp.FinishReason, resp.SafetyRatings
	return nil
}
