package mcp

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"
)

// Schemas of the tools. The structs in mcp/wire are the contract: a field's
// `jsonschema` tag is its description, and its `schema` tag its
// constraints, which every tool's schema states so that a client can check
// its arguments before it calls (the server checks them again):
//
//	enum=A|B|C        the allowed values
//	min=N, max=N      bounds of a number
//	maxLength=N       bound of a string
//	maxItems=N        bound of an array
//	keys=a|b          the keys an object (a map) may have
//	format=dns-label  a Kubernetes DNS label (namespaces, containers)
//	format=dns-name   a Kubernetes object name (DNS subdomain)
//
// A field of type json.RawMessage takes any JSON value but null, and is
// described as one of the typed alternatives (strict validators, such as
// ajv's strict mode, refuse a list of types). No schema says a field may be
// null: an optional field is one left out, and a patch unsets a field with
// op remove.

// anyJSON is the schema of a field that takes any JSON value but null.
func anyJSON() *jsonschema.Schema {
	var alts []*jsonschema.Schema
	for _, t := range []string{"string", "number", "boolean", "object", "array"} {
		alts = append(alts, &jsonschema.Schema{Type: t})
	}
	return &jsonschema.Schema{AnyOf: alts}
}

var forOptions = &jsonschema.ForOptions{
	TypeSchemas: map[reflect.Type]*jsonschema.Schema{
		reflect.TypeFor[json.RawMessage](): anyJSON(),
		// Objects as the API server returns them: any JSON object.
		reflect.TypeFor[map[string]any](): {Type: "object"},
	},
}

const (
	dnsLabelPattern = `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	dnsNamePattern  = `^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
)

// schemaOf returns the JSON schema of T with the constraints of its
// `schema` tags, and without nullable types.
func schemaOf[T any]() (*jsonschema.Schema, error) {
	s, err := jsonschema.For[T](forOptions)
	if err != nil {
		return nil, fmt.Errorf("failed to infer the schema of %T: %w", *new(T), err)
	}
	if err := constrain(reflect.TypeFor[T](), s); err != nil {
		return nil, fmt.Errorf("%T: %w", *new(T), err)
	}
	denull(s)
	return s, nil
}

// constrain applies the `schema` tags of t's fields to s.
func constrain(t reflect.Type, s *jsonschema.Schema) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if s == nil {
		return nil
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return nil
		}
		return constrain(t.Elem(), s.Items)
	case reflect.Map:
		return constrain(t.Elem(), s.AdditionalProperties)
	case reflect.Struct:
	default:
		return nil
	}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" {
			if err := constrain(f.Type, s); err != nil {
				return err
			}
			continue
		}
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		p := s.Properties[name]
		if p == nil {
			continue
		}
		if tag := f.Tag.Get("schema"); tag != "" {
			if err := applyTag(p, tag); err != nil {
				return fmt.Errorf("field %s: %w", f.Name, err)
			}
		}
		if err := constrain(f.Type, p); err != nil {
			return err
		}
	}
	return nil
}

func applyTag(p *jsonschema.Schema, tag string) error {
	for part := range strings.SplitSeq(tag, ",") {
		k, v, _ := strings.Cut(part, "=")
		num := func() (*float64, error) {
			f, err := strconv.ParseFloat(v, 64)
			return &f, err
		}
		count := func() (*int, error) {
			n, err := strconv.Atoi(v)
			return &n, err
		}
		var err error
		switch k {
		case "enum":
			p.Enum = nil
			for e := range strings.SplitSeq(v, "|") {
				p.Enum = append(p.Enum, e)
			}
		case "min":
			p.Minimum, err = num()
		case "max":
			p.Maximum, err = num()
		case "maxLength":
			p.MaxLength, err = count()
		case "maxItems":
			p.MaxItems, err = count()
		case "keys":
			keys := &jsonschema.Schema{Type: "string"}
			for e := range strings.SplitSeq(v, "|") {
				keys.Enum = append(keys.Enum, e)
			}
			p.PropertyNames, p.MaxProperties = keys, ptrTo(len(keys.Enum))
		case "format":
			switch v {
			case "dns-label":
				p.Pattern, p.MaxLength = dnsLabelPattern, ptrTo(63)
			case "dns-name":
				p.Pattern, p.MaxLength = dnsNamePattern, ptrTo(253)
			default:
				return fmt.Errorf("unknown format %q", v)
			}
		default:
			return fmt.Errorf("unknown constraint %q", k)
		}
		if err != nil {
			return fmt.Errorf("constraint %s: %w", k, err)
		}
	}
	return nil
}

func ptrTo[T any](v T) *T { return &v }

// denull removes "null" from every type list: the arguments are decoded
// from JSON objects in which an absent field is the unset one.
func denull(s *jsonschema.Schema) {
	if s == nil {
		return
	}
	if len(s.Types) > 0 {
		var keep []string
		for _, t := range s.Types {
			if t != "null" {
				keep = append(keep, t)
			}
		}
		if len(keep) == 1 {
			s.Type, s.Types = keep[0], nil
		} else {
			s.Types = keep
		}
	}
	denull(s.Items)
	denull(s.AdditionalProperties)
	for _, p := range s.Properties {
		denull(p)
	}
}

// inputSchema is a tool's input schema as JSON, after edit (if not nil) has
// adjusted it.
func inputSchema[T any](edit func(*jsonschema.Schema)) json.RawMessage {
	return mustSchema[T](edit)
}

// outputSchema is a tool's output schema as JSON.
func outputSchema[T any]() json.RawMessage {
	return mustSchema[T](nil)
}

func mustSchema[T any](edit func(*jsonschema.Schema)) json.RawMessage {
	s, err := schemaOf[T]()
	if err != nil {
		// The types are ours and fixed at build time; a test covers every one.
		panic(err)
	}
	if edit != nil {
		edit(s)
	}
	raw, err := json.Marshal(s)
	if err != nil {
		panic(fmt.Errorf("failed to encode the schema of %T: %w", *new(T), err))
	}
	return raw
}
