package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"unicode/utf8"
)

// maxBody bounds a request body: a 7 MiB image is 9.4 MiB in base64, plus
// the description and the JSON around them.
const maxBody = 10 << 20

// decodeJSON reads one JSON object into v, refusing other content types,
// oversize bodies, invalid UTF-8 (raw, or an escaped lone surrogate),
// unknown fields, keys given twice and trailing data with errors that say
// what to fix.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return &Error{Code: CodeUnsupportedMedia, Message: "send the body as Content-Type: application/json"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return jsonError(err)
	}
	// encoding/json would quietly turn invalid UTF-8 into U+FFFD.
	if !utf8.Valid(body) {
		return &Error{Code: CodeInvalidRequest, Message: "the body is not valid UTF-8"}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.As(err, new(*json.SyntaxError)) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return jsonError(err)
		}
		// The first value is well-formed (the decoder reads it whole
		// before it decodes): checkJSON can say where the problem is,
		// e.g. image.foo for an unknown field the decoder calls "foo".
		if e := checkJSON(body, reflect.TypeOf(v)); e != nil {
			return e
		}
		return jsonError(err)
	}
	if err := dec.Decode(&struct{}{}); err != io.EOF {
		return &Error{Code: CodeInvalidRequest, Message: "the body must hold one JSON object and nothing after it"}
	}
	// What encoding/json accepts quietly: lone surrogates, keys given
	// twice.
	if e := checkJSON(body, reflect.TypeOf(v)); e != nil {
		return e
	}
	return nil
}

func jsonError(err error) error {
	var (
		mbe    *http.MaxBytesError
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
		b64    base64.CorruptInputError
	)
	switch {
	case errors.As(err, &mbe):
		return &Error{Code: CodeTooLarge, Message: fmt.Sprintf("the body is larger than %d bytes", mbe.Limit)}
	case errors.Is(err, io.EOF):
		return &Error{Code: CodeInvalidRequest, Message: "the body is empty; send a JSON object"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &Error{Code: CodeInvalidRequest, Message: "the body ends in the middle of its JSON"}
	case errors.As(err, &syntax):
		return &Error{Code: CodeInvalidRequest, Message: fmt.Sprintf("the body is not valid JSON (at byte %d): %s", syntax.Offset, syntax.Error())}
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return &Error{Code: CodeInvalidRequest, Message: "the body must be a JSON object"}
		}
		return &Error{Code: CodeInvalidRequest, Field: field, Message: fmt.Sprintf("%s must be a JSON %s, not %s", field, jsonKind(typ.Type.Kind().String()), typ.Value)}
	case errors.As(err, &b64):
		return &Error{Code: CodeInvalidRequest, Field: "image.data", Message: fmt.Sprintf("image.data is not standard base64 (bad byte at %d); send the raw base64, without a data: URL prefix", int64(b64))}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &Error{Code: CodeInvalidRequest, Field: name, Message: fmt.Sprintf("unknown field %q; the fields are name, description, image and language", name)}
	default:
		return &Error{Code: CodeInvalidRequest, Message: "the body could not be read as JSON: " + err.Error()}
	}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "struct", "map", "ptr":
		return "object"
	case "slice", "array":
		return "string or array"
	case "int", "int64", "float64":
		return "number"
	case "bool":
		return "boolean"
	}
	return goKind
}
