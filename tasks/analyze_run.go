package tasks

import (
	"github.com/keyq/keyq/gemini"
)

// The analyze-character task as the worker runs it (see Runnable).

func parseAnalyzeRunnable(b []byte) (Runnable, error) {
	p, err := ParseAnalyzeCharacter(b)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Options returns the job's model and tier.
func (p AnalyzeCharacter) Options() JobOptions { return p.JobOptions }

// Request is the prompt, the image if any, and the analysis schema.
func (p AnalyzeCharacter) Request() (*gemini.Request, error) {
	system, user, err := Prompt(p)
	if err != nil {
		return nil, err
	}
	req := &gemini.Request{SystemInstruction: system, Text: []string{user}, ResponseSchema: AnalysisSchema}
	if p.Image != nil {
		req.Images = []gemini.InlineData{{MIMEType: p.Image.MIMEType, Data: p.Image.Data}}
	}
	if p.Flex() {
		req.ServiceTier = gemini.TierFlex
	}
	return req, nil
}

// Read checks the answer against the analysis schema.
func (p AnalyzeCharacter) Read(resp *gemini.Response, r *Result) error {
	a, err := ParseAnalysis(resp.Text)
	if err != nil {
		return err
	}
	r.Analysis = a
	return nil
}
