package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// maxUnknown bounds how many unknown arguments an error names: one message
// per key would let a small request produce an error many times its size.
const maxUnknown = 8

var rawMessageType = reflect.TypeFor[json.RawMessage]()

// Decode decodes a tool's arguments strictly into out, a pointer to an
// arguments struct. The arguments must be one JSON object (absent or null
// means no arguments); every key, at every depth, must be a field of the
// struct spelt exactly as its JSON name (encoding/json would match any
// case); and every value must have its field's type. The error names every
// unknown argument and the first value of the wrong type, with untrusted
// text clipped, so that a caller can correct itself: an argument the server
// does not know is never silently dropped.
func Decode(raw []byte, out any) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		raw = []byte("{}")
	}
	if raw[0] != '{' {
		return fmt.Errorf("%w: the arguments must be a JSON object", ErrInvalidArgument)
	}
	var tree any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&tree); err != nil {
		return fmt.Errorf("%w: the arguments are not valid JSON: %s", ErrInvalidArgument, Clip(err.Error()))
	}
	if d.More() {
		return fmt.Errorf("%w: unexpected data after the arguments object", ErrInvalidArgument)
	}
	t := reflect.TypeOf(out)
	if t == nil || t.Kind() != reflect.Pointer {
		return errors.New("wire: Decode needs a pointer")
	}
	var unknown []string
	unknownKeys(t.Elem(), tree, "", &unknown)
	if len(unknown) > 0 {
		n := len(unknown)
		if n > maxUnknown {
			unknown = unknown[:maxUnknown]
		}
		msg := "unknown argument"
		if n > 1 {
			msg += "s"
		}
		msg += " " + strings.Join(unknown, ", ")
		if n > maxUnknown {
			msg += fmt.Sprintf(" and %d more", n-maxUnknown)
		}
		return fmt.Errorf("%w: %s; the tool's input schema lists the arguments it takes", ErrInvalidArgument, msg)
	}
	d = json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(out); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			field := te.Field
			if field == "" {
				field = "the arguments"
			}
			return fmt.Errorf("%w: %s: a JSON %s where %s is expected", ErrInvalidArgument, Clip(field), te.Value, jsonKind(te.Type))
		}
		return fmt.Errorf("%w: %s", ErrInvalidArgument, Clip(err.Error()))
	}
	return nil
}

// unknownKeys appends to out the path of every object key in v that t does
// not declare, exactly spelt.
func unknownKeys(t reflect.Type, v any, path string, out *[]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == rawMessageType || t.Kind() == reflect.Interface {
		// Any JSON value is allowed here.
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return // a type error; the decoder names it.
		}
		fields := jsonFields(t)
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			ft, ok := fields[k]
			if !ok {
				*out = append(*out, fmt.Sprintf("%q", Clip(path+k)))
				continue
			}
			unknownKeys(ft, obj[k], path+k+".", out)
		}
	case reflect.Slice, reflect.Array:
		items, ok := v.([]any)
		if !ok {
			return
		}
		for i, item := range items {
			unknownKeys(t.Elem(), item, fmt.Sprintf("%s[%d].", strings.TrimSuffix(path, "."), i), out)
		}
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			return
		}
		for k, item := range obj {
			unknownKeys(t.Elem(), item, path+k+".", out)
		}
	}
}

// jsonFields maps the JSON names of t's fields, those of embedded structs
// included, to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			et := f.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				for k, v := range jsonFields(et) {
					out[k] = v
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

// jsonKind names the JSON type a Go type decodes from.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer (in range)"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "another type"
}
