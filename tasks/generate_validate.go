package tasks

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// inlineTypes are the inline data types a generate request may carry.
var inlineTypes = []string{"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif", "application/pdf", "text/plain"}

var safetyThresholds = []string{"BLOCK_NONE", "BLOCK_ONLY_HIGH", "BLOCK_MEDIUM_AND_ABOVE", "BLOCK_LOW_AND_ABOVE", "HARM_BLOCK_THRESHOLD_UNSPECIFIED", "OFF"}

// Validate reports the first problem of a generate request as a
// *FieldError whose Field is the JSON path: contents[0].parts[1].inlineData.mimeType.
func (p *Generate) Validate() error {
	if err := p.JobOptions.Validate(); err != nil {
		return err
	}
	switch n := len(p.Contents); {
	case n == 0:
		return fieldErr("contents", "is required: at least one content with parts")
	case n > MaxContents:
		return fieldErr("contents", "has %d entries; at most %d are allowed", n, MaxContents)
	}
	parts := 0
	for i, c := range p.Contents {
		if c.Role != "" && c.Role != "user" && c.Role != "model" {
			return fieldErr(fmt.Sprintf("contents[%d].role", i), "must be \"user\" or \"model\"")
		}
		if err := validateParts(fmt.Sprintf("contents[%d]", i), c.Parts, &parts); err != nil {
			return err
		}
	}
	if si := p.SystemInstruction; si != nil {
		if err := validateParts("systemInstruction", si.Parts, &parts); err != nil {
			return err
		}
	}
	if err := p.GenerationConfig.validate(); err != nil {
		return err
	}
	for i, s := range p.SafetySettings {
		switch {
		case !strings.HasPrefix(s.Category, "HARM_CATEGORY_"):
			return fieldErr(fmt.Sprintf("safetySettings[%d].category", i), "must be a HARM_CATEGORY_... value")
		case !slices.Contains(safetyThresholds, s.Threshold):
			return fieldErr(fmt.Sprintf("safetySettings[%d].threshold", i), "must be one of %s", strings.Join(safetyThresholds, ", "))
		}
	}
	return nil
}

func validateParts(at string, parts []Part, count *int) error {
	if len(parts) == 0 {
		return fieldErr(at+".parts", "is required: at least one part")
	}
	for j, part := range parts {
		*count++
		if *count > MaxParts {
			return fieldErr(fmt.Sprintf("%s.parts[%d]", at, j), "is one part too many: at most %d parts in all", MaxParts)
		}
		if err := part.validate(fmt.Sprintf("%s.parts[%d]", at, j), at == "systemInstruction"); err != nil {
			return err
		}
	}
	return nil
}

func (p Part) validate(at string, textOnly bool) error {
	switch {
	case (p.Text == nil) == (p.InlineData == nil):
		return fieldErr(at, "must hold exactly one of text and inlineData (tools, files and function calls are not supported)")
	case p.Text != nil && !utf8.ValidString(*p.Text):
		return fieldErr(at+".text", "is not valid UTF-8")
	case p.Text != nil:
		return nil
	case textOnly:
		return fieldErr(at+".inlineData", "is not allowed in a system instruction: text only")
	}
	b := p.InlineData
	switch {
	case !slices.Contains(inlineTypes, b.MIMEType):
		return fieldErr(at+".inlineData.mimeType", "must be one of %s", strings.Join(inlineTypes, ", "))
	case len(b.Data) == 0:
		return fieldErr(at+".inlineData.data", "is required (base64)")
	case len(b.Data) > MaxInlineBytes:
		return fieldErr(at+".inlineData.data", "is %d bytes decoded; at most %d are allowed", len(b.Data), MaxInlineBytes)
	}
	if magic, ok := imageMagic[b.MIMEType]; ok && !magic(b.Data) {
		return fieldErr(at+".inlineData.data", "is not a %s image", b.MIMEType)
	}
	return nil
}

func (g *GenerationConfig) validate() error {
	if g == nil {
		return nil
	}
	const at = "generationConfig."
	switch {
	case g.ResponseMIMEType != "" && !slices.Contains([]string{"text/plain", "application/json", "text/x.enum"}, g.ResponseMIMEType):
		return fieldErr(at+"responseMimeType", "must be text/plain, application/json or text/x.enum")
	case g.ResponseSchema != nil && g.ResponseJSONSchema != nil:
		return fieldErr(at+"responseJsonSchema", "set responseSchema or responseJsonSchema, not both")
	case g.ResponseSchema != nil && !jsonObject(g.ResponseSchema):
		return fieldErr(at+"responseSchema", "must be a JSON object (an OpenAPI schema)")
	case g.ResponseJSONSchema != nil && !jsonObject(g.ResponseJSONSchema):
		return fieldErr(at+"responseJsonSchema", "must be a JSON object (a JSON Schema)")
	case (g.ResponseSchema != nil || g.ResponseJSONSchema != nil) && g.ResponseMIMEType != "application/json" && g.ResponseMIMEType != "text/x.enum":
		return fieldErr(at+"responseMimeType", "must be application/json (or text/x.enum) when a response schema is given")
	case g.Temperature != nil && (*g.Temperature < 0 || *g.Temperature > 2):
		return fieldErr(at+"temperature", "must be between 0 and 2")
	case g.TopP != nil && (*g.TopP < 0 || *g.TopP > 1):
		return fieldErr(at+"topP", "must be between 0 and 1")
	case g.TopK != nil && *g.TopK < 1:
		return fieldErr(at+"topK", "must be 1 or more")
	case g.CandidateCount != nil && *g.CandidateCount != 1:
		return fieldErr(at+"candidateCount", "must be 1: a job keeps one answer")
	case g.MaxOutputTokens != nil && (*g.MaxOutputTokens < 1 || *g.MaxOutputTokens > MaxOutputTokensCap):
		return fieldErr(at+"maxOutputTokens", "must be between 1 and %d", MaxOutputTokensCap)
	case len(g.StopSequences) > MaxStopSequences:
		return fieldErr(at+"stopSequences", "has %d entries; at most %d are allowed", len(g.StopSequences), MaxStopSequences)
	case g.PresencePenalty != nil && (*g.PresencePenalty < -2 || *g.PresencePenalty >= 2),
		g.FrequencyPenalty != nil && (*g.FrequencyPenalty < -2 || *g.FrequencyPenalty >= 2):
		return fieldErr(at+"presencePenalty", "presencePenalty and frequencyPenalty must be in [-2, 2)")
	}
	return nil
}

func jsonObject(b json.RawMessage) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(b, &m) == nil && m != nil
}
