package scenario

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Parameter is a value a scenario varies per run: the harness draws it from
// a seeded range, so that the same file tests a general rule and not one set
// of constants. It is referenced as ${name} (or ${name.field} for a choice
// of objects) anywhere in the scenario after `parameters`; a string that is
// exactly one reference takes the value's type (a number stays a number),
// any other string gets the value as text. $${ is a literal ${.
type Parameter struct {
	// Name, a lower camel-case identifier.
	Name string `json:"name"`
	// Int draws an integer from a range.
	Int *IntRange `json:"int,omitempty"`
	// Choice draws one of these values: all strings and numbers, or all
	// flat objects with the same keys.
	Choice []json.RawMessage `json:"choice,omitempty"`
}

// IntRange is min..max inclusive, in steps of Step (1 when unset).
type IntRange struct {
	Min  int64 `json:"min"`
	Max  int64 `json:"max"`
	Step int64 `json:"step,omitempty"`
}

// Values are the drawn values of a run, by reference (name, or name.field).
type Values map[string]any

// String renders values as name=value, sorted, for reports.
func (v Values) String() string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%v", k, v[k])
	}
	return strings.Join(parts, " ")
}

var (
	paramNameRe = regexp.MustCompile(`^[a-z][a-zA-Z0-9]{0,30}$`)
	refRe       = regexp.MustCompile(`\$?\$\{([^}]*)\}`)
	refNameRe   = regexp.MustCompile(`^[a-z][a-zA-Z0-9]{0,30}(\.[a-zA-Z][a-zA-Z0-9]{0,30})?$`)
)

// maxCombinations bounds what an IntRange may enumerate.
const maxCombinations = 100000

// validateParameters checks the declarations and returns the references
// each parameter offers (name, or name.field for each field of a choice of
// objects).
func validateParameters(ps []Parameter) (map[string]string, []string) {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	refs := map[string]string{} // reference → parameter
	for i, p := range ps {
		if !paramNameRe.MatchString(p.Name) {
			bad("parameters[%d].name %q must be a lower camel-case identifier of at most 31 characters", i, p.Name)
			continue
		}
		if _, dup := refs[p.Name]; dup {
			bad("parameters[%d].name %q is declared twice", i, p.Name)
			continue
		}
		switch {
		case p.Int != nil && len(p.Choice) > 0, p.Int == nil && len(p.Choice) == 0:
			bad("parameters[%d] (%s) must set exactly one of int and choice", i, p.Name)
			continue
		case p.Int != nil:
			r := p.Int
			step := max(r.Step, 1)
			if r.Step < 0 || r.Min > r.Max || (r.Max-r.Min)/step > maxCombinations {
				bad("parameters[%d].int (%s) needs min ≤ max, a positive step and at most %d values", i, p.Name, maxCombinations)
				continue
			}
			refs[p.Name] = p.Name
		default:
			var keys []string
			for j, raw := range p.Choice {
				v, err := decodeChoice(raw)
				if err != nil {
					bad("parameters[%d].choice[%d] (%s): %v", i, j, p.Name, err)
					continue
				}
				var ks []string
				if m, ok := v.(map[string]any); ok {
					for k := range m {
						ks = append(ks, k)
					}
					sort.Strings(ks)
					if len(ks) == 0 {
						bad("parameters[%d].choice[%d] (%s) is an empty object", i, j, p.Name)
					}
				}
				if j == 0 {
					keys = ks
				} else if !slices.Equal(keys, ks) {
					bad("parameters[%d].choice[%d] (%s) must have the same keys as choice[0] (%v)", i, j, p.Name, keys)
				}
			}
			if len(keys) == 0 {
				refs[p.Name] = p.Name
			}
			for _, k := range keys {
				refs[p.Name+"."+k] = p.Name
			}
		}
	}
	return refs, errs
}

// decodeChoice decodes one choice: a string, a number or a flat object of
// strings and numbers.
func decodeChoice(raw json.RawMessage) (any, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	scalar := func(x any) bool {
		switch x.(type) {
		case string, float64:
			return true
		}
		return false
	}
	if scalar(v) {
		return v, nil
	}
	if m, ok := v.(map[string]any); ok {
		for k, x := range m {
			if !refNameRe.MatchString("x." + k) {
				return nil, fmt.Errorf("key %q must be an identifier", k)
			}
			if !scalar(x) {
				return nil, fmt.Errorf("field %q must be a string or a number", k)
			}
		}
		return m, nil
	}
	return nil, fmt.Errorf("must be a string, a number or a flat object")
}

// draw picks each parameter's value with rng.
func draw(ps []Parameter, rng *rand.Rand) Values {
	vals := Values{}
	for _, p := range ps {
		if p.Int != nil {
			step := max(p.Int.Step, 1)
			n := (p.Int.Max-p.Int.Min)/step + 1
			vals[p.Name] = p.Int.Min + step*rng.Int64N(n)
			continue
		}
		v, _ := decodeChoice(p.Choice[rng.IntN(len(p.Choice))])
		setChoice(vals, p.Name, v)
	}
	return vals
}

// corner picks each parameter's first (lowest) or last (highest) value.
func corner(ps []Parameter, last bool) Values {
	vals := Values{}
	for _, p := range ps {
		if p.Int != nil {
			step := max(p.Int.Step, 1)
			v := p.Int.Min
			if last {
				v = p.Int.Min + step*((p.Int.Max-p.Int.Min)/step)
			}
			vals[p.Name] = v
			continue
		}
		i := 0
		if last {
			i = len(p.Choice) - 1
		}
		v, _ := decodeChoice(p.Choice[i])
		setChoice(vals, p.Name, v)
	}
	return vals
}

func setChoice(vals Values, name string, v any) {
	if m, ok := v.(map[string]any); ok {
		for k, x := range m {
			vals[name+"."+k] = number(x)
		}
		return
	}
	vals[name] = number(v)
}

// number turns a whole float64 from JSON into an int64.
func number(x any) any {
	if f, ok := x.(float64); ok && f == float64(int64(f)) {
		return int64(f)
	}
	return x
}

// RunSeed is the seed of one run of a scenario in a suite run with seed:
// the same suite seed draws the same values for the same scenario and run.
func RunSeed(seed uint64, scenario string, run int) uint64 {
	h := sha256.New()
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], seed)
	binary.BigEndian.PutUint64(b[8:], uint64(run))
	h.Write(b[:])
	h.Write([]byte(scenario))
	return binary.BigEndian.Uint64(h.Sum(nil))
}

// substitute replaces the references in a decoded YAML tree; path names
// where it is, for errors. used collects the references met.
func substitute(v any, vals Values, path string, used map[string]bool) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			nk, err := interpolate(k, vals, path+"."+k, used)
			if err != nil {
				return nil, err
			}
			s, _ := nk.(string)
			if s == "" && k != "" {
				return nil, fmt.Errorf("%s: a key must be text", path)
			}
			if s != k {
				s = fmt.Sprint(nk)
			}
			ne, err := substitute(e, vals, path+"."+k, used)
			if err != nil {
				return nil, err
			}
			out[s] = ne
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			ne, err := substitute(e, vals, fmt.Sprintf("%s[%d]", path, i), used)
			if err != nil {
				return nil, err
			}
			out[i] = ne
		}
		return out, nil
	case string:
		return interpolate(x, vals, path, used)
	}
	return v, nil
}

// interpolate substitutes the references in one string.
func interpolate(s string, vals Values, path string, used map[string]bool) (any, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var err error
	whole := refRe.FindStringSubmatch(s)
	if whole != nil && whole[0] == s && !strings.HasPrefix(s, "$$") {
		ref := whole[1]
		v, ok := vals[ref]
		if !ok {
			return nil, fmt.Errorf("%s: ${%s} is not a declared parameter", strings.TrimPrefix(path, "."), ref)
		}
		used[ref] = true
		return v, nil
	}
	out := refRe.ReplaceAllStringFunc(s, func(m string) string {
		if strings.HasPrefix(m, "$$") {
			return m[1:]
		}
		ref := m[2 : len(m)-1]
		v, ok := vals[ref]
		if !ok {
			if err == nil {
				err = fmt.Errorf("%s: ${%s} is not a declared parameter", strings.TrimPrefix(path, "."), ref)
			}
			return m
		}
		used[ref] = true
		switch n := v.(type) {
		case int64:
			return strconv.FormatInt(n, 10)
		case float64:
			return strconv.FormatFloat(n, 'f', -1, 64)
		}
		return fmt.Sprint(v)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// references lists the parameter references in a decoded YAML tree.
func references(v any) []string {
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				walk(k)
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		case string:
			for _, m := range refRe.FindAllStringSubmatch(x, -1) {
				if !strings.HasPrefix(m[0], "$$") {
					out = append(out, strings.SplitN(m[1], ".", 2)[0])
				}
			}
		}
	}
	walk(v)
	slices.Sort(out)
	return slices.Compact(out)
}
