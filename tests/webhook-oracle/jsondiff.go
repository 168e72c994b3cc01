package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// seg is one step of a path into a JSON document: an object key, an array index, or the element of
// an array of named objects (containers, env, volumes, volumeMounts) with that name. Named steps
// make a diff readable and stable when one side has an extra element (the injected proxy).
type seg struct {
	key   string
	index int // -1 unless an index step
	name  string
	named bool
}

type path []seg

func (p path) String() string {
	var b strings.Builder
	for _, s := range p {
		switch {
		case s.named:
			fmt.Fprintf(&b, "[name=%s]", s.name)
		case s.index >= 0:
			fmt.Fprintf(&b, "[%d]", s.index)
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s.key)
		}
	}
	if b.Len() == 0 {
		return "(root)"
	}
	return b.String()
}

// pattern is the path with names and indices blanked: what groups similar differences.
func (p path) pattern() string {
	var b strings.Builder
	for _, s := range p {
		switch {
		case s.named:
			b.WriteString("[name=*]")
		case s.index >= 0:
			b.WriteString("[*]")
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s.key)
		}
	}
	return b.String()
}

func (p path) with(s seg) path {
	out := make(path, len(p), len(p)+1)
	copy(out, p)
	return append(out, s)
}

func keySeg(k string) seg  { return seg{key: k, index: -1} }
func indexSeg(i int) seg   { return seg{index: i} }
func nameSeg(n string) seg { return seg{name: n, named: true, index: -1} }

// entry is one difference between upstream's pod and wid's.
type entry struct {
	at            path
	up, wid       any
	upHas, widHas bool
}

func (e entry) String() string {
	show := func(has bool, v any) string {
		if !has {
			return "(absent)"
		}
		return compact(v)
	}
	return fmt.Sprintf("%s: upstream %s, wid %s", e.at, show(e.upHas, e.up), show(e.widHas, e.wid))
}

func compact(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	s := strings.TrimSpace(buf.String())
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}

// namesOf returns the element names when every element is an object with a distinct string name.
func namesOf(a []any) ([]string, bool) {
	names := make([]string, 0, len(a))
	seen := map[string]bool{}
	for _, el := range a {
		m, ok := el.(map[string]any)
		if !ok {
			return nil, false
		}
		n, ok := m["name"].(string)
		if !ok || seen[n] {
			return nil, false
		}
		seen[n] = true
		names = append(names, n)
	}
	return names, true
}

// diff appends the differences between a (upstream) and b (wid) under p.
func diff(p path, a, b any, out *[]entry) {
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			break
		}
		ks := map[string]bool{}
		for k := range av {
			ks[k] = true
		}
		for k := range bv {
			ks[k] = true
		}
		sorted := make([]string, 0, len(ks))
		for k := range ks {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			x, xok := av[k]
			y, yok := bv[k]
			switch {
			case xok && yok:
				diff(p.with(keySeg(k)), x, y, out)
			case xok:
				*out = append(*out, entry{at: p.with(keySeg(k)), up: x, upHas: true})
			default:
				*out = append(*out, entry{at: p.with(keySeg(k)), wid: y, widHas: true})
			}
		}
		return
	case []any:
		bv, ok := b.([]any)
		if !ok {
			break
		}
		an, aok := namesOf(av)
		bn, bok := namesOf(bv)
		if aok && bok && (len(av) != len(bv) || !reflect.DeepEqual(an, bn)) {
			bi := map[string]int{}
			for i, n := range bn {
				bi[n] = i
			}
			seen := map[string]bool{}
			for i, n := range an {
				seen[n] = true
				if j, ok := bi[n]; ok {
					diff(p.with(nameSeg(n)), av[i], bv[j], out)
				} else {
					*out = append(*out, entry{at: p.with(nameSeg(n)), up: av[i], upHas: true})
				}
			}
			for j, n := range bn {
				if !seen[n] {
					*out = append(*out, entry{at: p.with(nameSeg(n)), wid: bv[j], widHas: true})
				}
			}
			if reflect.DeepEqual(sortedCopy(an), sortedCopy(bn)) {
				*out = append(*out, entry{at: p.with(keySeg("(order)")), up: an, wid: bn, upHas: true, widHas: true})
			}
			return
		}
		if len(av) == len(bv) {
			for i := range av {
				s := indexSeg(i)
				if aok && bok {
					s = nameSeg(an[i])
				}
				diff(p.with(s), av[i], bv[i], out)
			}
			return
		}
	default:
		if reflect.DeepEqual(a, b) {
			return
		}
	}
	if !reflect.DeepEqual(a, b) {
		*out = append(*out, entry{at: p, up: a, wid: b, upHas: true, widHas: true})
	}
}

func sortedCopy(s []string) []string {
	c := append([]string{}, s...)
	sort.Strings(c)
	return c
}

// lookup follows p in doc (named steps match the element with that name).
func lookup(doc any, p path) (any, bool) {
	cur := doc
	for _, s := range p {
		switch {
		case s.named:
			arr, ok := cur.([]any)
			if !ok {
				return nil, false
			}
			found := false
			for _, el := range arr {
				if m, ok := el.(map[string]any); ok && m["name"] == s.name {
					cur, found = el, true
					break
				}
			}
			if !found {
				return nil, false
			}
		case s.index >= 0:
			arr, ok := cur.([]any)
			if !ok || s.index >= len(arr) {
				return nil, false
			}
			cur = arr[s.index]
		default:
			m, ok := cur.(map[string]any)
			if !ok {
				return nil, false
			}
			v, ok := m[s.key]
			if !ok {
				return nil, false
			}
			cur = v
		}
	}
	return cur, true
}

func decode(raw []byte) (any, error) {
	var v any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return normalizeNumbers(v), nil
}

// normalizeNumbers turns json.Number into float64 when exact, so 420 and 420.0 compare equal and
// big integers are kept as their text.
func normalizeNumbers(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = normalizeNumbers(x)
		}
		return t
	case []any:
		for i, x := range t {
			t[i] = normalizeNumbers(x)
		}
		return t
	case json.Number:
		if i, err := strconv.ParseInt(string(t), 10, 64); err == nil && i > -(1<<53) && i < 1<<53 {
			return float64(i)
		}
		if f, err := t.Float64(); err == nil {
			return f
		}
		return string(t)
	default:
		return v
	}
}

func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[k] = deepCopy(x)
		}
		return m
	case []any:
		a := make([]any, len(t))
		for i, x := range t {
			a[i] = deepCopy(x)
		}
		return a
	default:
		return v
	}
}

func obj(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func arr(v any) []any {
	a, _ := v.([]any)
	return a
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// typedRoundTrip decodes a pod into upstream's corev1.Pod (k8s.io/api v0.31) and encodes it again,
// as upstream's Handle does before diffing.
func typedRoundTrip(raw []byte) (any, error) {
	var pod corev1.Pod
	if err := json.Unmarshal(raw, &pod); err != nil {
		return nil, err
	}
	out, err := json.Marshal(&pod)
	if err != nil {
		return nil, err
	}
	return decode(out)
}
