// Package httpx holds the one http.ResponseWriter wrapper that keyq's
// access log and HTTP metrics both need.
package httpx

import "net/http"

// StatusWriter records the status code a handler answers with.
type StatusWriter struct {
	http.ResponseWriter
	// Status is the code written, http.StatusOK until one is.
	Status int
	wrote  bool
}

// NewStatusWriter wraps w.
func NewStatusWriter(w http.ResponseWriter) *StatusWriter {
	return &StatusWriter{ResponseWriter: w, Status: http.StatusOK}
}

// WriteHeader records the first code written.
func (w *StatusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.Status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write marks the (implicit 200) header as written.
func (w *StatusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *StatusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush lets streaming handlers (asynqmon's) flush through the wrapper.
func (w *StatusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
