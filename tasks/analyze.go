package tasks

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hibiken/asynq"
)

// TypeAnalyzeCharacter is the task type of a character analysis.
const TypeAnalyzeCharacter = "analyze-character"

// Limits of an analyze-character request.
const (
	MaxNameRunes        = 200
	MaxDescriptionRunes = 20_000
	MaxImageBytes       = 7 << 20 // decoded
	MaxLanguageLen      = 35
	DefaultLanguage     = "en"
)

// AnalyzeCharacter is the payload of an analyze-character job, and the body
// of POST /api/analyze-character.
type AnalyzeCharacter struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Image       *Image `json:"image,omitempty"`
	// Language is the BCP 47 tag of the language to answer in. Default "en".
	Language string `json:"language,omitempty"`
	JobOptions
}

// Image is an inline picture of the character.
type Image struct {
	// MIMEType is image/png, image/jpeg or image/webp.
	MIMEType string `json:"mime_type"`
	// Data is the picture itself; base64 (standard alphabet) in JSON.
	Data []byte `json:"data"`
}

// FieldError says which field of a request is wrong and how.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

var languageTag = regexp.MustCompile(`^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$`)

// imageMagic is how each accepted type starts, so a mislabeled file is
// refused here rather than by Gemini after a trip through the queue.
var imageMagic = map[string]func([]byte) bool{
	"image/png":  func(b []byte) bool { return strings.HasPrefix(string(b), "\x89PNG\r\n\x1a\n") },
	"image/jpeg": func(b []byte) bool { return strings.HasPrefix(string(b), "\xff\xd8\xff") },
	"image/webp": func(b []byte) bool { return len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP" },
}

// Normalize trims the name and fills the default language.
func (p *AnalyzeCharacter) Normalize() {
	p.Name = strings.TrimSpace(p.Name)
	p.Description = strings.TrimSpace(p.Description)
	p.Language = strings.TrimSpace(p.Language)
	if p.Language == "" {
		p.Language = DefaultLanguage
	}
}

// Validate reports the first problem of the payload as a *FieldError.
func (p *AnalyzeCharacter) Validate() error {
	switch n := utf8.RuneCountInString(p.Name); {
	case !utf8.ValidString(p.Name):
		return fieldErr("name", "is not valid UTF-8")
	case n == 0:
		return fieldErr("name", "is required")
	case n > MaxNameRunes:
		return fieldErr("name", "has %d characters; at most %d are allowed", n, MaxNameRunes)
	case strings.ContainsFunc(p.Name, unicode.IsControl):
		return fieldErr("name", "must not contain control characters")
	}
	if !utf8.ValidString(p.Description) {
		return fieldErr("description", "is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(p.Description); n > MaxDescriptionRunes {
		return fieldErr("description", "has %d characters; at most %d are allowed", n, MaxDescriptionRunes)
	}
	if p.Language != "" && (len(p.Language) > MaxLanguageLen || !languageTag.MatchString(p.Language)) {
		return fieldErr("language", "must be a language tag such as \"en\" or \"pt-BR\"")
	}
	if err := p.JobOptions.Validate(); err != nil {
		return err
	}
	if img := p.Image; img != nil {
		magic, ok := imageMagic[img.MIMEType]
		switch {
		case !ok:
			return fieldErr("image.mime_type", "must be image/png, image/jpeg or image/webp")
		case len(img.Data) == 0:
			return fieldErr("image.data", "is required with an image (base64)")
		case len(img.Data) > MaxImageBytes:
			return fieldErr("image.data", "is %d bytes decoded; at most %d are allowed", len(img.Data), MaxImageBytes)
		case !magic(img.Data):
			return fieldErr("image.data", "is not a %s image", img.MIMEType)
		}
	}
	return nil
}

// NewAnalyzeCharacterTask validates and normalizes p and makes its task.
// Queue, id, retries, timeout and retention are the enqueuer's options.
func NewAnalyzeCharacterTask(p AnalyzeCharacter, opts ...asynq.Option) (*asynq.Task, error) {
	p.Normalize()
	if err := p.Validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return asynq.NewTask(TypeAnalyzeCharacter, b, opts...), nil
}

// ParseAnalyzeCharacter reads a task's payload back, validated.
func ParseAnalyzeCharacter(b []byte) (AnalyzeCharacter, error) {
	var p AnalyzeCharacter
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("payload is not an analyze-character request: %w", err)
	}
	return p, p.Validate()
}
