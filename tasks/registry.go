package tasks

import (
	"github.com/keyq/keyq/gemini"
)

// Runnable is a job's payload read back and validated: what a worker needs
// to run it, whatever its task type.
type Runnable interface {
	// Options are the job's model and tier.
	Options() JobOptions
	// Request is the generateContent call to make.
	Request() (*gemini.Request, error)
	// Read fills the task's part of r from a successful answer; an error
	// means the answer cannot be used (one more attempt, then the job fails).
	Read(resp *gemini.Response, r *Result) error
}

// Kind is one task type: its type string and how to read its payload.
type Kind struct {
	Type  string
	Parse func(payload []byte) (Runnable, error)
}

// Kinds lists every task type a worker runs. Adding one is a file in this
// package (type constant, payload, validation, constructor, Runnable) and
// a line here.
func Kinds() []Kind {
	return []Kind{
		{Type: TypeAnalyzeCharacter, Parse: parseAnalyzeRunnable},
		{Type: TypeGenerate, Parse: parseGenerateRunnable},
	}
}

// KindOf returns the Kind of task type typ.
func KindOf(typ string) (Kind, bool) {
	for _, k := range Kinds() {
		if k.Type == typ {
			return k, true
		}
	}
	return Kind{}, false
}
