package tasks

import (
	_ "embed"
	"encoding/json"
	"errors"
	"strings"
	"text/template"
)

// AnalysisSchema is the JSON schema Gemini answers an analyze-character job
// with (generationConfig.responseJsonSchema). Only summary and traits are
// required; a model that leaves the rest out still gives a usable answer.
//
//go:embed analysis.schema.json
var AnalysisSchema json.RawMessage

// CharacterAnalysis is the answer to an analyze-character job.
type CharacterAnalysis struct {
	Summary       string   `json:"summary"`
	Traits        []string `json:"traits"`
	Archetype     string   `json:"archetype,omitempty"`
	Motivations   []string `json:"motivations,omitempty"`
	Strengths     []string `json:"strengths,omitempty"`
	Weaknesses    []string `json:"weaknesses,omitempty"`
	SpeakingStyle string   `json:"speaking_style,omitempty"`
	Appearance    string   `json:"appearance,omitempty"`
	Tags          []string `json:"tags,omitempty"`
}

// ErrBadAnalysis is wrapped by ParseAnalysis when the model's text is not an
// analysis: not JSON, wrong types, or a required field empty.
var ErrBadAnalysis = errors.New("answer does not follow the analysis schema")

// ParseAnalysis reads and checks the model's JSON answer.
func ParseAnalysis(text string) (CharacterAnalysis, error) {
	var a CharacterAnalysis
	if err := json.Unmarshal([]byte(text), &a); err != nil {
		return a, errors.Join(ErrBadAnalysis, err)
	}
	if strings.TrimSpace(a.Summary) == "" {
		return a, errors.Join(ErrBadAnalysis, errors.New("summary is empty"))
	}
	if len(a.Traits) == 0 {
		return a, errors.Join(ErrBadAnalysis, errors.New("traits are empty"))
	}
	return a, nil
}

//go:embed prompt.tmpl
var promptSource string

var prompt = template.Must(template.New("prompt").Parse(promptSource))

// Prompt is what the worker sends for a payload: a system instruction and
// the user's text (the image, if any, goes after it as inline data).
func Prompt(p AnalyzeCharacter) (system, user string, err error) {
	var sys, usr strings.Builder
	if err := prompt.ExecuteTemplate(&sys, "system", p); err != nil {
		return "", "", err
	}
	if err := prompt.ExecuteTemplate(&usr, "user", p); err != nil {
		return "", "", err
	}
	return sys.String(), usr.String(), nil
}
