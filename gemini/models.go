package gemini

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// DefaultModel is the first model of DefaultModels: the one keyq calls when
// GEMINI_MODEL is unset. Both models of the chain were listed as stable on
// ai.google.dev/gemini-api/docs/models (read 2026-11-28); 2.5 models are on
// the deprecation path.
const DefaultModel = "gemini-3.5-flash"

// DefaultModels is the fallback chain keyq uses when GEMINI_MODEL is unset:
// a job moves to the next model when one is gone (404) or out of its daily
// quota on every project.
const DefaultModels = "gemini-3.5-flash,gemini-3.1-flash-lite"

// DefaultThinking is the thinking setting per model family used when
// GEMINI_THINKING is unset: no thinking on 2.5 Flash, "low" on 3.x.
const DefaultThinking = "2.5=0,3=low"

// ParseModels reads a comma-separated list of model names, in order,
// dropping blanks and repeats. It reports a name the client would refuse.
func ParseModels(list string) ([]string, error) {
	var out []string
	for _, m := range strings.Split(list, ",") {
		m = strings.TrimPrefix(strings.TrimSpace(m), "models/")
		if m == "" {
			continue
		}
		if err := checkModel(m); err != nil {
			return nil, err
		}
		if !contains(out, m) {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no model named; give one or more model names such as " + DefaultModels)
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func checkModel(m string) error {
	if m == "" || strings.ContainsAny(m, "/?#:| ,") || len(m) > 100 {
		return fmt.Errorf("model %q must be a model name such as \"gemini-3.5-flash\"", m)
	}
	return nil
}

// version is the generation of a model name: "gemini-2.5-flash" -> 2, 5.
// ok is false for names without one (aliases such as gemini-flash-latest).
var versionRE = regexp.MustCompile(`^(?:gemini-)?(\d+)(?:\.(\d+))?(?:-|$)`)

func version(model string) (major, minor int, ok bool) {
	m := versionRE.FindStringSubmatch(model)
	if m == nil {
		return 0, 0, false
	}
	major, _ = strconv.Atoi(m[1])
	if m[2] != "" {
		minor, _ = strconv.Atoi(m[2])
	}
	return major, minor, true
}

// TakesThinkingLevel reports a model of generation 3 or later, which takes
// generationConfig.thinkingConfig.thinkingLevel; 2.x models take
// thinkingBudget instead, and both at once is a 400.
func TakesThinkingLevel(model string) bool {
	major, _, ok := version(model)
	return ok && major >= 3
}

// Thinking is the thinkingConfig sent for one model: exactly one of
// Budget (2.x) and Level (3.x) is set.
type Thinking struct {
	Budget *int   `json:"thinkingBudget,omitempty"`
	Level  string `json:"thinkingLevel,omitempty"`
}

// ThinkingPolicy maps model families to a Thinking. The zero value sends
// no thinkingConfig: each model's own default.
type ThinkingPolicy struct{ rules []thinkingRule }

type thinkingRule struct {
	prefix string // "2.5", "3", "gemini-3.1-flash-lite"
	t      Thinking
}

var thinkingLevels = []string{"minimal", "low", "medium", "high"}

// ParseThinking reads GEMINI_THINKING: comma-separated family=setting,
// where family is a version prefix ("2.5", "3", "3.1") or a whole model
// name, and setting a budget in tokens for 2.x (0 = off, -1 = dynamic) or
// a level for 3.x (minimal, low, medium, high). The longest matching
// family wins; a model no family matches gets no thinkingConfig.
func ParseThinking(s string) (ThinkingPolicy, error) {
	var p ThinkingPolicy
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		fam, val, ok := strings.Cut(item, "=")
		fam, val = strings.TrimPrefix(strings.TrimSpace(fam), "gemini-"), strings.ToLower(strings.TrimSpace(val))
		major, _, hasVersion := version(fam)
		if !ok || !hasVersion {
			return p, fmt.Errorf("%q: each entry is family=setting, the family a version such as 2.5 or 3 or a model name such as gemini-3.5-flash", item)
		}
		var t Thinking
		if major >= 3 {
			if !contains(thinkingLevels, val) {
				return p, fmt.Errorf("%q: %s models take a thinking level (minimal, low, medium, high), not %q", item, fam, val)
			}
			t.Level = val
		} else {
			n, err := strconv.Atoi(val)
			if err != nil || n < -1 {
				return p, fmt.Errorf("%q: %s models take a thinking budget in tokens (0 = off, -1 = dynamic), not %q", item, fam, val)
			}
			t.Budget = &n
		}
		p.rules = append(p.rules, thinkingRule{prefix: fam, t: t})
	}
	return p, nil
}

// For returns the thinkingConfig to send to model, or nil for none. It
// never returns a budget for a 3.x model or a level for a 2.x one.
func (p ThinkingPolicy) For(model string) *Thinking {
	name := strings.TrimPrefix(model, "gemini-")
	var best *thinkingRule
	for i, r := range p.rules {
		if (name == r.prefix || strings.HasPrefix(name, r.prefix+"-") || strings.HasPrefix(name, r.prefix+".")) &&
			(best == nil || len(r.prefix) > len(best.prefix)) {
			best = &p.rules[i]
		}
	}
	if best == nil {
		return nil
	}
	if _, _, ok := version(name); !ok || TakesThinkingLevel(model) != (best.t.Level != "") {
		return nil
	}
	t := best.t
	return &t
}
