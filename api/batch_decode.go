package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/keyq/keyq/tasks"
)

// maxBatchBody bounds POST /api/batches: 10,000 items of a few KiB each.
// Jobs with large images go one by one.
const maxBatchBody = 64 << 20

// decodeBatch reads a batch's items: a JSON array (application/json) or
// one JSON object a line (application/x-ndjson). Nothing is enqueued
// unless every item reads.
func decodeBatch(w http.ResponseWriter, r *http.Request) ([]tasks.BatchItem, error) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	body := http.MaxBytesReader(w, r.Body, maxBatchBody)
	var (
		items []tasks.BatchItem
		err   error
	)
	switch mt {
	case "application/json":
		items, err = decodeArray(body)
	case "application/x-ndjson", "application/jsonl":
		items, err = decodeLines(body)
	default:
		return nil, &Error{Code: CodeUnsupportedMedia, Message: "send the batch as a JSON array (application/json) or JSON Lines (application/x-ndjson)"}
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, &Error{Code: CodeTooLarge, Message: fmt.Sprintf("the batch is larger than %d bytes; send large images one job at a time", mbe.Limit)}
	case err != nil:
		return nil, err
	case len(items) == 0:
		return nil, &Error{Code: CodeInvalidRequest, Message: "the batch has no items"}
	}
	return items, nil
}

func decodeArray(body io.Reader) ([]tasks.BatchItem, error) {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, notJSON(err, "the body must be a JSON array of items")
	}
	var items []tasks.BatchItem
	for dec.More() {
		if len(items) == tasks.MaxBatchItems {
			return nil, tooMany()
		}
		var it tasks.BatchItem
		if err := dec.Decode(&it); err != nil {
			return nil, itemError(len(items), "", notJSON(err, err.Error()))
		}
		items = append(items, it)
	}
	if _, err := dec.Token(); err != nil {
		return nil, notJSON(err, "the JSON array is not closed")
	}
	return items, nil
}

func decodeLines(body io.Reader) ([]tasks.BatchItem, error) {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), maxBody)
	var items []tasks.BatchItem
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if len(items) == tasks.MaxBatchItems {
			return nil, tooMany()
		}
		var it tasks.BatchItem
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&it); err != nil {
			return nil, itemError(len(items), "", notJSON(err, err.Error()))
		}
		items = append(items, it)
	}
	return items, sc.Err()
}

func notJSON(err error, msg string) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return err
	}
	return &Error{Code: CodeInvalidRequest, Message: msg}
}

func tooMany() error {
	return &Error{Code: CodeInvalidRequest, Message: fmt.Sprintf("a batch holds at most %d items", tasks.MaxBatchItems)}
}

// itemError names the item at fault by position (0-based) and custom_id.
func itemError(i int, customID string, err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return err
	}
	field, msg := "", err.Error()
	var (
		ae *Error
		fe *tasks.FieldError
	)
	switch {
	case errors.As(err, &fe):
		field, msg = fe.Field, fe.Error()
	case errors.As(err, &ae):
		field, msg = ae.Field, ae.Message
	}
	where := fmt.Sprintf("item %d", i)
	if customID != "" {
		where += fmt.Sprintf(" (custom_id %q)", customID)
	}
	f := fmt.Sprintf("items[%d]", i)
	if field != "" {
		f += "." + field
	}
	return &Error{Code: CodeInvalidRequest, Field: f, Message: where + ": " + msg + "; nothing of the batch was enqueued"}
}
