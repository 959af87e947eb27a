package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"unicode/utf16"
)

// checkJSON reads the first JSON value of body, which json.Decoder has
// already found well-formed, for what encoding/json lets through quietly:
//
//   - an escaped lone UTF-16 surrogate ("\ud800"), which it turns into
//     U+FFFD where raw invalid UTF-8 would be refused;
//   - an object key given twice (case-insensitively for a struct, as
//     encoding/json matches them), of which it keeps the last;
//   - a key that names no field of the struct decoded into: encoding/json
//     reports it without its parent ("foo" for image.foo).
//
// It returns the first problem in the body's order, naming the field by
// its dotted path, or nil. It is one pass over the bytes that allocates
// nothing in proportion to the body (a json.Decoder Token walk would copy
// every string, the image's megabytes included), and never panics on
// input it does not expect: it stops there and leaves the verdict to the
// decoder.
func checkJSON(body []byte, t reflect.Type) *Error {
	w := jsonWalker{nextType: t}
	for i := 0; i < len(body); {
		switch c := body[i]; c {
		case ' ', '\t', '\n', '\r', ',', ':':
			i++
			continue
		case '{', '[':
			w.open(c == '{')
			i++
			continue
		case '}', ']':
			if len(w.stack) == 0 {
				return nil
			}
			w.stack = w.stack[:len(w.stack)-1]
			i++
		case '"':
			end, lone := scanString(body, i)
			if end < 0 {
				return nil // not well-formed after all: the decoder says why
			}
			isKey, err, stop := w.str(body[i:end], lone)
			if err != nil || stop {
				return err
			}
			i = end
			if isKey {
				continue
			}
		default: // a number, true, false or null
			for i < len(body) && !strings.ContainsRune(" \t\n\r,]}", rune(body[i])) {
				i++
			}
		}
		// A value ended.
		if len(w.stack) == 0 {
			return nil // the first value is read; the decoder judges the rest
		}
		top := w.stack[len(w.stack)-1]
		w.wantKey, w.nextPath, w.nextType = top.object, top.path, top.elem
	}
	return nil
}

// jsonFrame is an object or array checkJSON is inside.
type jsonFrame struct {
	object   bool
	isStruct bool
	fields   []jsonField  // the struct's fields
	elem     reflect.Type // an array's element type, nil if unknown
	path     string
	keys     map[string]bool // keys seen (by field name for a struct)
}

// jsonWalker is checkJSON's state.
type jsonWalker struct {
	stack    []*jsonFrame
	nextPath string       // path of the value about to be read
	nextType reflect.Type // its Go type, nil if unknown
	wantKey  bool         // the next string in this object is a key
}

// open enters an object or an array.
func (w *jsonWalker) open(object bool) {
	f := &jsonFrame{object: object, path: w.nextPath}
	if et := deref(w.nextType); et != nil {
		switch k := et.Kind(); {
		case object && k == reflect.Struct:
			f.fields, f.isStruct = jsonFields(et)
		case !object && (k == reflect.Slice || k == reflect.Array):
			f.elem = et.Elem()
		}
	}
	w.stack = append(w.stack, f)
	w.wantKey, w.nextType = object, f.elem
}

// str reads a string (raw, with its quotes): a value, or an object's key,
// whose field it checks. stop: leave the verdict to the decoder.
func (w *jsonWalker) str(raw []byte, lone string) (isKey bool, err *Error, stop bool) {
	var top *jsonFrame
	if len(w.stack) > 0 {
		top = w.stack[len(w.stack)-1]
	}
	if top == nil || !top.object || !w.wantKey { // a value
		if lone != "" {
			return false, loneSurrogateError(w.nextPath, lone), true
		}
		return false, nil, false
	}
	if lone != "" {
		return true, loneSurrogateError(top.path, lone), true
	}
	key := string(raw[1 : len(raw)-1])
	if strings.IndexByte(key, '\\') >= 0 && json.Unmarshal(raw, &key) != nil {
		return true, nil, true
	}
	name, typ := key, reflect.Type(nil)
	if top.isStruct {
		f, ok := lookupField(top.fields, key)
		if !ok {
			p := joinPath(top.path, key)
			return true, &Error{Code: CodeInvalidRequest, Field: p, Message: fmt.Sprintf("unknown field %q; %s", p, fieldList(top.path, top.fields))}, true
		}
		name, typ = f.name, f.typ
	}
	p := joinPath(top.path, name)
	if top.keys[name] {
		return true, &Error{Code: CodeInvalidRequest, Field: p, Message: fmt.Sprintf("%s is given twice (JSON keys match fields without regard to case); give it once", p)}, true
	}
	if top.keys == nil {
		top.keys = map[string]bool{}
	}
	top.keys[name] = true
	w.nextPath, w.nextType, w.wantKey = p, typ, false
	return true, nil, false
}

// scanString reads the JSON string starting at body[i] (a quote) and
// returns the index just after its closing quote, or -1 if it has none,
// and the escape of a lone surrogate in it ("\ud800"), if any.
func scanString(body []byte, i int) (end int, lone string) {
	for j := i + 1; j < len(body); j++ {
		// Skip to the next quote or backslash: most of a string is
		// neither, and IndexByte is fast on the image's megabytes.
		q := bytes.IndexByte(body[j:], '"')
		if q < 0 {
			return -1, ""
		}
		if b := bytes.IndexByte(body[j:j+q], '\\'); b >= 0 {
			j += b
		} else {
			j += q
		}
		switch body[j] {
		case '"':
			return j + 1, lone
		case '\\':
			if j+1 >= len(body) {
				return -1, ""
			}
			if body[j+1] != 'u' {
				j++
				continue
			}
			r, ok := hex4(body, j+2)
			if !ok {
				return -1, ""
			}
			switch {
			case !utf16.IsSurrogate(r):
			case r < 0xdc00: // a high surrogate: a low one must follow
				if j+7 < len(body) && body[j+6] == '\\' && body[j+7] == 'u' {
					if r2, ok := hex4(body, j+8); ok && 0xdc00 <= r2 && r2 <= 0xdfff {
						j += 6
						break
					}
				}
				fallthrough
			default: // a low surrogate without a high one
				if lone == "" {
					lone = string(body[j : j+6])
				}
			}
			j += 5
		}
	}
	return -1, ""
}

// hex4 reads four hex digits at body[i:].
func hex4(body []byte, i int) (rune, bool) {
	if i+4 > len(body) {
		return 0, false
	}
	var r rune
	for _, c := range body[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

func loneSurrogateError(path, esc string) *Error {
	where := "the body"
	if path != "" {
		where = path
	}
	return &Error{Code: CodeInvalidRequest, Field: path, Message: fmt.Sprintf(
		"%s holds %s, half of a UTF-16 surrogate pair without the other half, which is no character; send valid Unicode (a pair like \\ud83d\\ude00, or the character itself)", where, esc)}
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// jsonField is a struct field as encoding/json sees it.
type jsonField struct {
	name string
	typ  reflect.Type
}

// jsonFields lists the fields encoding/json decodes into a struct, by their
// JSON names. An embedded struct without a JSON name of its own lends its
// fields, as encoding/json does (tasks.AnalyzeCharacter embeds
// tasks.JobOptions); any other embedding is not ok, and its keys are not
// checked.
func jsonFields(t reflect.Type) (fs []jsonField, ok bool) {
	for i := range t.NumField() {
		sf := t.Field(i)
		if sf.Anonymous {
			if sf.Type.Kind() != reflect.Struct || sf.Tag.Get("json") != "" {
				return nil, false
			}
			inner, ok := jsonFields(sf.Type)
			if !ok {
				return nil, false
			}
			fs = append(fs, inner...)
			continue
		}
		if !sf.IsExported() {
			continue
		}
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if name == "" {
			name = sf.Name
		}
		fs = append(fs, jsonField{name: name, typ: sf.Type})
	}
	return fs, true
}

// lookupField finds key's field as encoding/json does: an exact match
// first, else the first that matches without regard to case.
func lookupField(fs []jsonField, key string) (jsonField, bool) {
	for _, f := range fs {
		if f.name == key {
			return f, true
		}
	}
	for _, f := range fs {
		if strings.EqualFold(f.name, key) {
			return f, true
		}
	}
	return jsonField{}, false
}

func fieldList(path string, fs []jsonField) string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.name
	}
	where := "the fields are "
	if path != "" {
		where = "the fields of " + path + " are "
	}
	return where + strings.Join(names, ", ")
}

func deref(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}
