package policies

import (
	"math/bits"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"

	v1alpha1 "github.com/tendops/tend/api/v1alpha1"
)

// scope is what a decision on one action goes through: the policies whose
// scope includes the action, in name order, and the index of their rules'
// preconditions. Rules are numbered in evaluation order: policy by policy,
// rule by rule.
type scope struct {
	policies []*compiledPolicy
	index    ruleIndex
}

// index fills s.byAction, one scope per catalogue action.
func (s *snapshot) index() *snapshot {
	s.byAction = make(map[string]*scope, len(v1alpha1.Actions))
	for _, a := range v1alpha1.Actions {
		s.byAction[string(a)] = s.scope(string(a))
	}
	return s
}

// scopeOf returns the scope of action.
func (s *snapshot) scopeOf(action string) *scope {
	if sc, ok := s.byAction[action]; ok {
		return sc
	}
	return s.scope(action)
}

func (s *snapshot) scope(action string) *scope {
	sc := &scope{}
	for i := range s.policies {
		if p := &s.policies[i]; p.inScope(action) {
			sc.policies = append(sc.policies, p)
		}
	}
	sc.index = newRuleIndex(sc.policies)
	return sc
}

// bitset is a set of rule numbers.
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

func (b bitset) set(i int)      { b[i/64] |= 1 << (i % 64) }
func (b bitset) has(i int) bool { return i/64 < len(b) && b[i/64]&(1<<(i%64)) != 0 }

// word returns the i-th word; a nil bitset is empty.
func (b bitset) word(i int) uint64 {
	if i < len(b) {
		return b[i]
	}
	return 0
}

func (b bitset) count() int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}

// ruleIndex holds the preconditions of a scope's rules, so that a decision
// finds the rules whose preconditions fail with a lookup per indexed field
// and per entry of an indexed map of the input, whatever the number of
// rules.
type ruleIndex struct {
	// rules is how many rules the scope has.
	rules int
	// bounded are the rules whose cost is bounded for every input,
	// boundedSmall those bounded for inputs within the size bounds: only
	// their evaluation may be skipped.
	bounded, boundedSmall bitset
	fields                []*fieldSite
	maps                  []*mapSite
	lists                 []*listSite
}

// fieldSite is a string field that preconditions compare.
type fieldSite struct {
	slot int
	// all are the rules with a precondition on the field, expect by the
	// value they require.
	all    bitset
	expect map[string]bitset
}

// mapSite is a string map that preconditions read; a rule has at most one
// precondition on a map (more are left to evaluation).
type mapSite struct {
	slot int
	// missing are the rules that are false when their key is missing.
	missing bitset
	keys    map[string]*keySite
	// rules are the rules with a precondition on the map.
	rules bitset
}

// listSite is a list of strings that preconditions require a value in; a
// rule has at most one precondition on a list (more are left to
// evaluation).
type listSite struct {
	slot int
	// all are the rules with a precondition on the list, expect by the
	// value they require in it.
	all    bitset
	expect map[string]bitset
}

// keySite is one key of a map that preconditions read.
type keySite struct {
	// all are the rules with a precondition on the key, expect by the value
	// they require, missing those false when the key is missing.
	all, missing bitset
	expect       map[string]bitset
}

func newRuleIndex(policies []*compiledPolicy) ruleIndex {
	n := 0
	for _, p := range policies {
		n += len(p.rules)
	}
	x := ruleIndex{rules: n, bounded: newBitset(n), boundedSmall: newBitset(n)}
	fields := map[int]*fieldSite{}
	maps := map[int]*mapSite{}
	lists := map[int]*listSite{}
	id := 0
	for _, p := range policies {
		for j := range p.rules {
			r := &p.rules[j]
			switch r.cost {
			case costBounded:
				x.bounded.set(id)
			case costBoundedSmall:
				x.boundedSmall.set(id)
			}
			if r.cost != costUnbounded {
				for _, c := range r.preconditions {
					x.add(fields, maps, lists, id, c)
				}
			}
			id++
		}
	}
	return x
}

// add indexes precondition c of rule id.
func (x *ruleIndex) add(fields map[int]*fieldSite, maps map[int]*mapSite, lists map[int]*listSite, id int, c precondition) {
	if c.member {
		l := lists[c.slot]
		if l == nil {
			l = &listSite{slot: c.slot, all: newBitset(x.rules), expect: map[string]bitset{}}
			lists[c.slot] = l
			x.lists = append(x.lists, l)
		}
		if l.all.has(id) {
			return
		}
		l.all.set(id)
		if l.expect[c.value] == nil {
			l.expect[c.value] = newBitset(x.rules)
		}
		l.expect[c.value].set(id)
		return
	}
	if !c.keyed {
		f := fields[c.slot]
		if f == nil {
			f = &fieldSite{slot: c.slot, all: newBitset(x.rules), expect: map[string]bitset{}}
			fields[c.slot] = f
			x.fields = append(x.fields, f)
		}
		f.all.set(id)
		if f.expect[c.value] == nil {
			f.expect[c.value] = newBitset(x.rules)
		}
		f.expect[c.value].set(id)
		return
	}
	m := maps[c.slot]
	if m == nil {
		m = &mapSite{slot: c.slot, missing: newBitset(x.rules), keys: map[string]*keySite{}, rules: newBitset(x.rules)}
		maps[c.slot] = m
		x.maps = append(x.maps, m)
	}
	if m.rules.has(id) {
		return
	}
	m.rules.set(id)
	k := m.keys[c.key]
	if k == nil {
		k = &keySite{all: newBitset(x.rules), missing: newBitset(x.rules), expect: map[string]bitset{}}
		m.keys[c.key] = k
	}
	k.all.set(id)
	if k.expect[c.value] == nil {
		k.expect[c.value] = newBitset(x.rules)
	}
	k.expect[c.value].set(id)
	if c.optional && c.def != c.value {
		k.missing.set(id)
		m.missing.set(id)
	}
}

// skipBuffer holds the bitsets of skipped for a scope of up to 512 rules.
type skipBuffer [2][8]uint64

// skipped returns the rules that are false for the input, whose fields are
// slots (see fieldSlots), by a failed precondition and whose evaluation may
// be skipped, for an input within the size bounds or not.
func (x *ruleIndex) skipped(slots []ref.Val, within bool, buf *skipBuffer) bitset {
	n := len(x.bounded)
	out, scratch := bitset(buf[0][:]), bitset(buf[1][:])
	if n <= len(buf[0]) {
		out, scratch = out[:n], scratch[:n]
	} else {
		out, scratch = make(bitset, n), make(bitset, n)
	}
	clear(out)
	for _, f := range x.fields {
		v, ok := slotValue(slots, f.slot).(types.String)
		if !ok {
			continue
		}
		expect := f.expect[string(v)]
		for i := range out {
			out[i] |= f.all[i] &^ expect.word(i)
		}
	}
	for _, m := range x.maps {
		mv := slotValue(slots, m.slot)
		if mv == nil {
			continue
		}
		entries, ok := mv.Value().(map[string]string)
		if !ok {
			continue
		}
		// First as if every key were missing, then key by key: a rule has
		// one precondition per map, so a key's rules are its own.
		copy(scratch, m.missing)
		apply := func(k *keySite, v string) {
			expect := k.expect[v]
			for i := range scratch {
				scratch[i] = scratch[i]&^k.missing[i] | k.all[i]&^expect.word(i)
			}
		}
		if len(entries) <= len(m.keys) {
			for key, v := range entries {
				if k := m.keys[key]; k != nil {
					apply(k, v)
				}
			}
		} else {
			for key, k := range m.keys {
				if v, ok := entries[key]; ok {
					apply(k, v)
				}
			}
		}
		for i := range out {
			out[i] |= scratch[i]
		}
	}
	for _, l := range x.lists {
		lv := slotValue(slots, l.slot)
		if lv == nil {
			continue
		}
		list, ok := lv.(traits.Lister)
		if !ok {
			continue
		}
		size, ok := list.Size().(types.Int)
		if !ok {
			continue
		}
		// A rule is skipped unless the list holds the value it requires.
		copy(scratch, l.all)
		for i := types.Int(0); i < size; i++ {
			e, ok := list.Get(i).(types.String)
			if !ok {
				continue
			}
			if expect := l.expect[string(e)]; expect != nil {
				for i := range scratch {
					scratch[i] &^= expect[i]
				}
			}
		}
		for i := range out {
			out[i] |= scratch[i]
		}
	}
	for i := range out {
		mask := x.bounded[i]
		if within {
			mask |= x.boundedSmall[i]
		}
		out[i] &= mask
	}
	return out
}

func slotValue(slots []ref.Val, i int) ref.Val {
	if i < len(slots) {
		return slots[i]
	}
	return nil
}
