package gemini

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultBaseURL is the Gemini API endpoint used when Options.BaseURL is empty.
const DefaultBaseURL = "https://generativelanguage.googleapis.com"

// DefaultTimeout is the per-call timeout used when Options.Timeout is 0.
// A generateContent call for a long answer takes ~30 s.
const DefaultTimeout = 60 * time.Second

// DefaultFlexTimeout is the per-call timeout of a flex call when
// Options.FlexTimeout is 0: Google targets 1 to 15 minutes for flex.
const DefaultFlexTimeout = 15 * time.Minute

// TierFlex is Request.ServiceTier for Google's flex tier: half the price,
// best effort, answers within minutes, may be shed.
const TierFlex = "flex"

// maxBody bounds how much of an answer is read.
const maxBody = 16 << 20

// InlineData is an inline file part, such as an image.
type InlineData struct {
	MIMEType string // e.g. "image/png"
	Data     []byte // raw bytes; sent base64-encoded
}

// Request is one generateContent call: either a single user turn built
// from the typed fields, or Raw, a whole generateContent body.
type Request struct {
	SystemInstruction string          // "" = omitted
	Text              []string        // user text parts, in order
	Images            []InlineData    // user inlineData parts, after the text
	ResponseSchema    json.RawMessage // non-nil: JSON output constrained by this JSON Schema
	MaxOutputTokens   int             // 0 = omitted (model default)

	// Raw, when set, is the generateContent body itself (contents,
	// systemInstruction, generationConfig, safetySettings), sent as is
	// but for the thinkingConfig and service tier the client adds; the
	// typed fields above are then ignored. It must hold no thinkingConfig.
	Raw json.RawMessage
	// WantJSON (with Raw) makes an answer that is not JSON unusable.
	WantJSON bool
	// ServiceTier is "" (standard) or TierFlex.
	ServiceTier string
}

// Usage is the token accounting of one call (usageMetadata).
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CandidatesTokens int `json:"candidates_tokens"`
	TotalTokens      int `json:"total_tokens"`
	// ThoughtsTokens are the thinking tokens; they share maxOutputTokens
	// and are billed as output.
	ThoughtsTokens int `json:"thoughts_tokens,omitempty"`
	// CachedTokens are the part of PromptTokens served from the (implicit)
	// cache, billed at the cached rate.
	CachedTokens int `json:"cached_tokens,omitempty"`
}

// Response is a successful answer.
type Response struct {
	Text          string          `json:"text"`          // text parts of the first candidate, joined
	FinishReason  string          `json:"finish_reason"` // "STOP"
	Usage         Usage           `json:"usage"`
	ModelVersion  string          `json:"model_version"`
	SafetyRatings json.RawMessage `json:"safety_ratings,omitempty"` // the first candidate's, as Google sent them
}

// Options configure a Client.
type Options struct {
	BaseURL string        // default DefaultBaseURL; http or https, no path needed
	Model   string        // required, e.g. "gemini-2.5-flash" ("models/" prefix allowed)
	Timeout time.Duration // per call; default DefaultTimeout
	// FlexTimeout is the per-call timeout of a flex request. Default
	// DefaultFlexTimeout.
	FlexTimeout time.Duration
	// Thinking says which thinkingConfig this model gets; the client
	// sends thinkingBudget to 2.x models and thinkingLevel to 3.x ones,
	// never both. Zero: none (the model's default).
	Thinking   ThinkingPolicy
	HTTPClient *http.Client // default: a new http.Client without its own timeout
	// Redact, if set, also cleans every text of an *Error, after the
	// calling key itself is removed: keyq passes a redactor of every run
	// of every key of the pool, since an upstream may echo a piece of a
	// key, or another key (internal/redact).
	Redact func(string) string
}

// Client calls one model. It is safe for concurrent use.
type Client struct {
	base     string // without trailing slash
	model    string
	timeout  time.Duration
	flex     time.Duration
	thinking *Thinking // nil: no thinkingConfig
	http     *http.Client
	scrub    func(string) string
}

// New validates opts and returns a Client.
func New(opts Options) (*Client, error) {
	base := strings.TrimRight(cmp.Or(opts.BaseURL, DefaultBaseURL), "/")
	if err := CheckBaseURL(base); err != nil {
		return nil, fmt.Errorf("gemini: BaseURL: %w", err)
	}
	model := strings.TrimPrefix(strings.TrimSpace(opts.Model), "models/")
	if model == "" || strings.ContainsAny(model, "/?#: ") {
		return nil, fmt.Errorf("gemini: Model %q must be a model name such as \"gemini-3.5-flash\"", opts.Model)
	}
	if opts.Timeout < 0 || opts.FlexTimeout < 0 {
		return nil, fmt.Errorf("gemini: Timeout and FlexTimeout must not be negative (0 means %v and %v)", DefaultTimeout, DefaultFlexTimeout)
	}
	return &Client{
		base:     base,
		model:    model,
		timeout:  cmp.Or(opts.Timeout, DefaultTimeout),
		flex:     cmp.Or(opts.FlexTimeout, DefaultFlexTimeout),
		thinking: opts.Thinking.For(model),
		http:     cmp.Or(opts.HTTPClient, &http.Client{}),
		scrub:    opts.Redact,
	}, nil
}

// CheckBaseURL reports a base URL the client cannot use. Its message never
// quotes the URL: a query or user info in it may hold a key or password.
func CheckBaseURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("must be an http(s) URL such as %s, without user info, query or fragment", DefaultBaseURL)
	}
	return nil
}

// Model returns the model name, without the "models/" prefix.
func (c *Client) Model() string { return c.model }

// Generate sends req with apiKey. Every failure is an *Error; when ctx itself
// is done, errors.Is(err, ctx.Err()) holds.
func (c *Client) Generate(ctx context.Context, apiKey string, req *Request) (*Response, error) {
	resp, err := c.generate(ctx, apiKey, req)
	return resp, c.clean(err)
}

// Thinking is the thinkingConfig the client sends, or nil.
func (c *Client) Thinking() *Thinking { return c.thinking }

func (c *Client) generate(ctx context.Context, apiKey string, req *Request) (*Response, error) {
	body, err := encodeRequest(req, c.thinking)
	if err != nil {
		return nil, &Error{Class: ClassBadRequest, Message: redact(err.Error(), apiKey)}
	}
	timeout := c.timeout
	if req.ServiceTier == TierFlex {
		timeout = c.flex
	}
	status, data, err := c.do(ctx, apiKey, http.MethodPost, c.base+"/v1beta/models/"+c.model+":generateContent", body, timeout)
	if err != nil {
		return nil, err
	}
	if status/100 != 2 {
		return nil, classifyHTTP(status, data, apiKey)
	}
	resp, e := decodeResponse(data, req.ResponseSchema != nil || req.WantJSON, apiKey)
	if e != nil {
		e.HTTPStatus = status
		return nil, e.redact(apiKey)
	}
	return resp, nil
}

// Probe checks apiKey with GET {base}/v1beta/models/{model}, which spends no
// generation quota. It returns nil on 200 and an *Error otherwise.
func (c *Client) Probe(ctx context.Context, apiKey string) error {
	status, data, err := c.do(ctx, apiKey, http.MethodGet, c.base+"/v1beta/models/"+c.model, nil, c.timeout)
	if err == nil && status != http.StatusOK {
		err = classifyHTTP(status, data, apiKey)
	}
	return c.clean(err)
}

// clean passes the texts of an *Error through Options.Redact.
func (c *Client) clean(err error) error {
	var e *Error
	if c.scrub == nil || !errors.As(err, &e) {
		return err
	}
	for _, s := range []*string{&e.Message, &e.Status, &e.Reason, &e.QuotaID, &e.QuotaValue} {
		*s = c.scrub(*s)
	}
	if r, ok := e.cause.(*redactedError); ok {
		r.text = c.scrub(r.text)
	}
	return err
}

// do sends one request and reads a bounded body. A non-nil error is an *Error.
func (c *Client) do(ctx context.Context, apiKey, method, u string, body []byte, timeout time.Duration) (int, []byte, error) {
	callCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	hreq, err := http.NewRequestWithContext(callCtx, method, u, rd)
	if err != nil {
		return 0, nil, &Error{Class: ClassBadRequest, Message: redact(err.Error(), apiKey)}
	}
	hreq.Header.Set("x-goog-api-key", apiKey)
	if body != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(hreq)
	if err != nil {
		return 0, nil, transportError(ctx, err, apiKey)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return 0, nil, transportError(ctx, err, apiKey)
	}
	if len(data) > maxBody {
		return 0, nil, &Error{Class: ClassUnusable, HTTPStatus: resp.StatusCode,
			Message: fmt.Sprintf("response body larger than %d MiB", maxBody>>20)}
	}
	return resp.StatusCode, data, nil
}

// transportError classifies a failure to get an answer. parent is the
// caller's context: when it is done the error matches its ctx.Err().
func transportError(parent context.Context, err error, apiKey string) *Error {
	text := redact(err.Error(), apiKey)
	e := &Error{Class: ClassNetwork, Message: text, cause: &redactedError{text: text, orig: err}}
	var ne net.Error
	switch {
	case parent.Err() != nil:
		e.cause = &redactedError{text: text, orig: errors.Join(parent.Err(), err)}
		e.Class = ClassTimeout
		if errors.Is(parent.Err(), context.Canceled) {
			e.Class = ClassCanceled
		}
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		e.Class = ClassTimeout
	}
	return e
}

type part struct {
	Text       string      `json:"text,omitempty"`
	InlineData *inlineData `json:"inlineData,omitempty"`
	Thought    bool        `json:"thought,omitempty"`
}

type inlineData struct {
	MIMEType string `json:"mimeType"`
	Data     []byte `json:"data"` // encoding/json writes []byte as standard base64
}

type content struct {
	Role  string `json:"role,omitempty"`
	Parts []part `json:"parts"`
}

type generationConfig struct {
	ResponseMIMEType   string          `json:"responseMimeType,omitempty"`
	ResponseJSONSchema json.RawMessage `json:"responseJsonSchema,omitempty"`
	MaxOutputTokens    int             `json:"maxOutputTokens,omitempty"`
	ThinkingConfig     *Thinking       `json:"thinkingConfig,omitempty"`
}

type wireRequest struct {
	SystemInstruction *content          `json:"systemInstruction,omitempty"`
	Contents          []content         `json:"contents"`
	GenerationConfig  *generationConfig `json:"generationConfig,omitempty"`
	ServiceTier       string            `json:"service_tier,omitempty"`
}

// encodeRequest makes the wire body of req, with thinking (nil: none) in
// its generationConfig.
func encodeRequest(req *Request, thinking *Thinking) ([]byte, error) {
	if req != nil && req.Raw != nil {
		return encodeRaw(req, thinking)
	}
	if req == nil || len(req.Text)+len(req.Images) == 0 {
		return nil, errors.New("request has no text and no image")
	}
	w := wireRequest{ServiceTier: req.ServiceTier}
	if req.SystemInstruction != "" {
		w.SystemInstruction = &content{Parts: []part{{Text: req.SystemInstruction}}}
	}
	user := content{Role: "user"}
	for _, t := range req.Text {
		user.Parts = append(user.Parts, part{Text: t})
	}
	for _, img := range req.Images {
		user.Parts = append(user.Parts, part{InlineData: &inlineData{MIMEType: img.MIMEType, Data: img.Data}})
	}
	w.Contents = []content{user}
	if req.ResponseSchema != nil || req.MaxOutputTokens > 0 || thinking != nil {
		w.GenerationConfig = &generationConfig{MaxOutputTokens: req.MaxOutputTokens, ThinkingConfig: thinking}
		if req.ResponseSchema != nil {
			if !json.Valid(req.ResponseSchema) {
				return nil, errors.New("ResponseSchema is not valid JSON")
			}
			w.GenerationConfig.ResponseMIMEType = "application/json"
			w.GenerationConfig.ResponseJSONSchema = req.ResponseSchema
		}
	}
	return json.Marshal(w)
}

// encodeRaw adds thinking and the service tier to a whole generateContent
// body. A body that already holds a thinkingConfig is refused: the client
// alone knows which of thinkingBudget and thinkingLevel this model takes.
func encodeRaw(req *Request, thinking *Thinking) ([]byte, error) {
	var body map[string]json.RawMessage
	if err := json.Unmarshal(req.Raw, &body); err != nil || body == nil {
		return nil, errors.New("Raw is not a JSON object")
	}
	if req.ServiceTier != "" {
		body["service_tier"], _ = json.Marshal(req.ServiceTier)
	}
	if thinking == nil {
		return json.Marshal(body)
	}
	gc := map[string]json.RawMessage{}
	if raw, ok := body["generationConfig"]; ok {
		if err := json.Unmarshal(raw, &gc); err != nil || gc == nil {
			return nil, errors.New("generationConfig is not a JSON object")
		}
	}
	if _, ok := gc["thinkingConfig"]; ok {
		return nil, errors.New("generationConfig.thinkingConfig is set per model family by the client (GEMINI_THINKING)")
	}
	gc["thinkingConfig"], _ = json.Marshal(thinking)
	body["generationConfig"], _ = json.Marshal(gc)
	return json.Marshal(body)
}

type wireResponse struct {
	Candidates []struct {
		Content       content         `json:"content"`
		FinishReason  string          `json:"finishReason"`
		SafetyRatings json.RawMessage `json:"safetyRatings"`
	} `json:"candidates"`
	PromptFeedback struct {
		BlockReason string `json:"blockReason"`
	} `json:"promptFeedback"`
	UsageMetadata struct {
		PromptTokenCount        int `json:"promptTokenCount"`
		CandidatesTokenCount    int `json:"candidatesTokenCount"`
		TotalTokenCount         int `json:"totalTokenCount"`
		ThoughtsTokenCount      int `json:"thoughtsTokenCount"`
		CachedContentTokenCount int `json:"cachedContentTokenCount"`
	} `json:"usageMetadata"`
	ModelVersion string `json:"modelVersion"`
}

func (w *wireResponse) usage() Usage {
	u := w.UsageMetadata
	return Usage{PromptTokens: u.PromptTokenCount, CandidatesTokens: u.CandidatesTokenCount, TotalTokens: u.TotalTokenCount,
		ThoughtsTokens: u.ThoughtsTokenCount, CachedTokens: u.CachedContentTokenCount}
}

// decodeResponse turns a 2xx body into a Response or a blocked, max_tokens
// or unusable *Error. An *Error of an answer that was billed carries its
// Usage.
func decodeResponse(data []byte, wantJSON bool, apiKey string) (*Response, *Error) {
	var w wireResponse
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, &Error{Class: ClassUnusable, Message: "answer is not a generateContent response: " + excerpt(data, apiKey)}
	}
	usage := w.usage()
	resp, e := judgeAnswer(&w, wantJSON)
	if e != nil {
		if usage != (Usage{}) {
			e.Usage = &usage
		}
		return nil, e
	}
	resp.Usage = usage
	return resp, nil
}

func judgeAnswer(w *wireResponse, wantJSON bool) (*Response, *Error) {
	if r := w.PromptFeedback.BlockReason; r != "" {
		return nil, &Error{Class: ClassBlocked, Reason: r, Message: "prompt blocked: " + r}
	}
	if len(w.Candidates) == 0 {
		return nil, &Error{Class: ClassUnusable, Message: "answer has no candidates"}
	}
	cand := w.Candidates[0]
	var text strings.Builder
	for _, p := range cand.Content.Parts {
		if !p.Thought {
			text.WriteString(p.Text)
		}
	}
	fr := cand.FinishReason
	switch fr {
	case "SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT":
		return nil, &Error{Class: ClassBlocked, Reason: fr, Message: "answer blocked: finish reason " + fr}
	case "MAX_TOKENS":
		return nil, maxTokensError(text.Len(), w.UsageMetadata.ThoughtsTokenCount)
	case "STOP", "":
	default:
		return nil, &Error{Class: ClassUnusable, Reason: fr, Message: "answer unusable: finish reason " + fr}
	}
	if text.Len() == 0 {
		return nil, &Error{Class: ClassUnusable, Message: "answer has no text"}
	}
	if wantJSON && !json.Valid([]byte(text.String())) {
		return nil, &Error{Class: ClassUnusable, Message: "answer is not valid JSON although a response schema was set"}
	}
	return &Response{
		Text:          text.String(),
		FinishReason:  cmp.Or(fr, "STOP"),
		ModelVersion:  w.ModelVersion,
		SafetyRatings: cand.SafetyRatings,
	}, nil
}

// maxTokensError says whether thinking, which shares maxOutputTokens with
// the answer, used the budget up: that is a setting to change (a larger
// maxOutputTokens or less thinking), not a bad key or a bad answer.
func maxTokensError(textLen, thoughts int) *Error {
	e := &Error{Class: ClassMaxTokens, Reason: "MAX_TOKENS", Message: "answer cut at the output token limit (finish reason MAX_TOKENS)"}
	if thoughts > 0 && textLen == 0 {
		e.Message = fmt.Sprintf("thinking used the whole output token budget (%d thinking tokens, finish reason MAX_TOKENS) and left no room for the answer: raise maxOutputTokens or lower the thinking level or budget (GEMINI_THINKING)", thoughts)
	} else if thoughts > 0 {
		e.Message = fmt.Sprintf("answer cut at the output token limit (finish reason MAX_TOKENS) after %d thinking tokens, which share that limit", thoughts)
	}
	return e
}
