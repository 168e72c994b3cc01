package main

// A small YAML reader and writer for chart values: block mappings and sequences, plain, single- and
// double-quoted scalars, literal block scalars (| and |-), and flow collections ([a, b], {k: v}).
// No anchors, tags or multi-document streams: values files and Chart.yaml do not need them. Values
// are decoded to map[string]interface{}, []interface{}, string, bool, int64, float64 or nil.

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

type yline struct {
	num    int    // 1-based line number, for errors
	indent int    // leading spaces
	text   string // content without indentation and comments
	raw    string // the whole line as written
}

type yparser struct {
	lines []yline
	pos   int
	name  string
}

func parseYAML(name, src string) (interface{}, error) {
	p := &yparser{name: name}
	for i, raw := range strings.Split(strings.ReplaceAll(src, "\r\n", "\n"), "\n") {
		if strings.Contains(raw, "\t") && strings.TrimLeft(raw, " ") != "" && strings.HasPrefix(strings.TrimLeft(raw, " "), "\t") {
			return nil, fmt.Errorf("%s:%d: tabs are not allowed for indentation", name, i+1)
		}
		trimmed := strings.TrimLeft(raw, " ")
		p.lines = append(p.lines, yline{num: i + 1, indent: len(raw) - len(trimmed), text: stripComment(trimmed), raw: raw})
	}
	p.skipBlank()
	if p.pos >= len(p.lines) {
		return map[string]interface{}{}, nil
	}
	if p.lines[p.pos].text == "---" {
		p.pos++
		p.skipBlank()
	}
	if p.pos >= len(p.lines) {
		return map[string]interface{}{}, nil
	}
	v, err := p.block(p.lines[p.pos].indent)
	if err != nil {
		return nil, err
	}
	p.skipBlank()
	if p.pos < len(p.lines) {
		return nil, p.errf("unexpected content (wrong indentation?)")
	}
	return v, nil
}

func (p *yparser) errf(format string, args ...interface{}) error {
	n := 0
	if p.pos < len(p.lines) {
		n = p.lines[p.pos].num
	}
	return fmt.Errorf("%s:%d: %s", p.name, n, fmt.Sprintf(format, args...))
}

func (p *yparser) skipBlank() {
	for p.pos < len(p.lines) && p.lines[p.pos].text == "" {
		p.pos++
	}
}

// stripComment removes a trailing comment (a # at the start or after a space, outside quotes).
func stripComment(s string) string {
	inS, inD := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inD && c == '\\':
			i++
		case c == '"' && !inS:
			inD = !inD
		case c == '\'' && !inD:
			inS = !inS
		case c == '#' && !inS && !inD && (i == 0 || s[i-1] == ' '):
			return strings.TrimRight(s[:i], " ")
		}
	}
	return strings.TrimRight(s, " ")
}

func isSeqItem(text string) bool { return text == "-" || strings.HasPrefix(text, "- ") }

func (p *yparser) block(indent int) (interface{}, error) {
	p.skipBlank()
	if p.pos >= len(p.lines) {
		return nil, nil
	}
	if isSeqItem(p.lines[p.pos].text) {
		return p.seq(indent)
	}
	return p.mapping(indent)
}

// splitKey finds "key: rest" (or "key:") outside quotes.
func splitKey(text string) (key string, rest string, ok bool) {
	inS, inD := false, false
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case inD && c == '\\':
			i++
		case c == '"' && !inS:
			inD = !inD
		case c == '\'' && !inD:
			inS = !inS
		case c == ':' && !inS && !inD && (i+1 == len(text) || text[i+1] == ' '):
			k := strings.TrimSpace(text[:i])
			if uq, err := unquote(k); err == nil {
				k = uq
			}
			return k, strings.TrimSpace(text[i+1:]), true
		}
	}
	return "", "", false
}

func (p *yparser) mapping(indent int) (interface{}, error) {
	m := map[string]interface{}{}
	for {
		p.skipBlank()
		if p.pos >= len(p.lines) {
			return m, nil
		}
		l := p.lines[p.pos]
		if l.indent < indent || (l.indent == indent && isSeqItem(l.text)) {
			return m, nil
		}
		if l.indent > indent {
			return nil, p.errf("unexpected indentation")
		}
		key, rest, ok := splitKey(l.text)
		if !ok {
			return nil, p.errf("expected 'key: value', got %q", l.text)
		}
		if _, dup := m[key]; dup {
			return nil, p.errf("duplicate key %q", key)
		}
		p.pos++
		v, err := p.value(rest, indent, true)
		if err != nil {
			return nil, err
		}
		m[key] = v
	}
}

// value parses what follows "key:" or "- " on a line whose indentation is indent.
func (p *yparser) value(rest string, indent int, inMap bool) (interface{}, error) {
	switch {
	case rest == "":
		p.skipBlank()
		if p.pos >= len(p.lines) {
			return nil, nil
		}
		next := p.lines[p.pos]
		if next.indent > indent {
			return p.block(next.indent)
		}
		if inMap && next.indent == indent && isSeqItem(next.text) {
			return p.seq(indent)
		}
		return nil, nil
	case rest == "|" || rest == "|-" || rest == "|+" || rest == ">" || rest == ">-":
		return p.blockScalar(rest, indent), nil
	case rest[0] == '[' || rest[0] == '{':
		f := &flow{s: rest}
		v, err := f.value()
		if err != nil {
			return nil, p.errf("%v", err)
		}
		if f.skipSpace(); f.i != len(f.s) {
			return nil, p.errf("trailing characters after a flow collection")
		}
		return v, nil
	default:
		return scalar(rest)
	}
}

func (p *yparser) blockScalar(style string, indent int) string {
	var lines []string
	blockIndent := -1
	for p.pos < len(p.lines) {
		l := p.lines[p.pos]
		if strings.TrimSpace(l.raw) == "" {
			lines = append(lines, "")
			p.pos++
			continue
		}
		if l.indent <= indent {
			break
		}
		if blockIndent < 0 {
			blockIndent = l.indent
		}
		if l.indent < blockIndent {
			break
		}
		lines = append(lines, l.raw[blockIndent:])
		p.pos++
	}
	// Trailing blank lines belong to the chomping, not the content.
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	sep := "\n"
	if style[0] == '>' {
		sep = " "
	}
	s := strings.Join(lines, sep)
	if !strings.HasSuffix(style, "-") {
		s += "\n"
	}
	return s
}

func (p *yparser) seq(indent int) (interface{}, error) {
	out := []interface{}{}
	for {
		p.skipBlank()
		if p.pos >= len(p.lines) {
			return out, nil
		}
		l := p.lines[p.pos]
		if l.indent != indent || !isSeqItem(l.text) {
			if l.indent > indent {
				return nil, p.errf("unexpected indentation")
			}
			return out, nil
		}
		rest := strings.TrimSpace(strings.TrimPrefix(l.text, "-"))
		if _, _, isMap := splitKey(rest); isMap && rest[0] != '[' && rest[0] != '{' {
			// "- key: value ...": a mapping whose first entry sits on the dash line. Re-read this line
			// as if the dash were a space.
			offset := len(l.text) - len(strings.TrimLeft(strings.TrimPrefix(l.text, "-"), " "))
			p.lines[p.pos] = yline{num: l.num, indent: indent + offset, text: rest, raw: l.raw}
			v, err := p.mapping(indent + offset)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
			continue
		}
		p.pos++
		v, err := p.value(rest, indent, false)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
}

type flow struct {
	s string
	i int
}

func (f *flow) skipSpace() {
	for f.i < len(f.s) && f.s[f.i] == ' ' {
		f.i++
	}
}

func (f *flow) value() (interface{}, error) {
	f.skipSpace()
	if f.i >= len(f.s) {
		return nil, fmt.Errorf("unterminated flow collection")
	}
	switch f.s[f.i] {
	case '[':
		f.i++
		out := []interface{}{}
		for {
			f.skipSpace()
			if f.i < len(f.s) && f.s[f.i] == ']' {
				f.i++
				return out, nil
			}
			v, err := f.value()
			if err != nil {
				return nil, err
			}
			out = append(out, v)
			f.skipSpace()
			if f.i < len(f.s) && f.s[f.i] == ',' {
				f.i++
			} else if f.i >= len(f.s) || f.s[f.i] != ']' {
				return nil, fmt.Errorf("expected ',' or ']' in %q", f.s)
			}
		}
	case '{':
		f.i++
		out := map[string]interface{}{}
		for {
			f.skipSpace()
			if f.i < len(f.s) && f.s[f.i] == '}' {
				f.i++
				return out, nil
			}
			k, err := f.token(":")
			if err != nil {
				return nil, err
			}
			if f.i >= len(f.s) || f.s[f.i] != ':' {
				return nil, fmt.Errorf("expected ':' in %q", f.s)
			}
			f.i++
			v, err := f.value()
			if err != nil {
				return nil, err
			}
			ks, _ := k.(string)
			if k != nil && ks == "" {
				ks = fmt.Sprint(k)
			}
			out[ks] = v
			f.skipSpace()
			if f.i < len(f.s) && f.s[f.i] == ',' {
				f.i++
			} else if f.i >= len(f.s) || f.s[f.i] != '}' {
				return nil, fmt.Errorf("expected ',' or '}' in %q", f.s)
			}
		}
	default:
		return f.token("")
	}
}

// token reads a scalar inside a flow collection, up to , ] } (or the extra stop characters).
func (f *flow) token(extra string) (interface{}, error) {
	f.skipSpace()
	start := f.i
	if f.i < len(f.s) && (f.s[f.i] == '"' || f.s[f.i] == '\'') {
		q := f.s[f.i]
		f.i++
		for f.i < len(f.s) {
			if q == '"' && f.s[f.i] == '\\' {
				f.i += 2
				continue
			}
			if f.s[f.i] == q {
				if q == '\'' && f.i+1 < len(f.s) && f.s[f.i+1] == '\'' {
					f.i += 2
					continue
				}
				f.i++
				return unquote(f.s[start:f.i])
			}
			f.i++
		}
		return nil, fmt.Errorf("unterminated quoted string in %q", f.s)
	}
	for f.i < len(f.s) && !strings.ContainsRune(",]}"+extra, rune(f.s[f.i])) {
		f.i++
	}
	return scalar(strings.TrimSpace(f.s[start:f.i]))
}

func unquote(s string) (string, error) {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return strconv.Unquote(s)
	}
	if len(s) >= 2 && s[0] == '\'' && s[len(s)-1] == '\'' {
		return strings.ReplaceAll(s[1:len(s)-1], "''", "'"), nil
	}
	return "", fmt.Errorf("not quoted")
}

var (
	intRe   = regexp.MustCompile(`^[-+]?(0|[1-9][0-9]*)$`)
	floatRe = regexp.MustCompile(`^[-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$`)
)

// scalar resolves a plain or quoted scalar (YAML 1.2 core schema, plus the 1.1 booleans helm's
// parser also knows).
func scalar(s string) (interface{}, error) {
	if s == "" {
		return nil, nil
	}
	if s[0] == '"' || s[0] == '\'' {
		v, err := unquote(s)
		if err != nil {
			return nil, fmt.Errorf("bad quoted string %s", s)
		}
		return v, nil
	}
	switch s {
	case "~", "null", "Null", "NULL":
		return nil, nil
	case "true", "True", "TRUE", "yes", "Yes", "on", "On":
		return true, nil
	case "false", "False", "FALSE", "no", "No", "off", "Off":
		return false, nil
	}
	if intRe.MatchString(s) {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n, nil
		}
	}
	if floatRe.MatchString(s) {
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return f, nil
		}
	}
	return s, nil
}

// toYAML writes v as block YAML with sorted keys (as helm's toYaml does), without a final newline.
func toYAML(v interface{}) string {
	var b strings.Builder
	writeYAML(&b, v, 0)
	return strings.TrimSuffix(b.String(), "\n")
}

func writeYAML(b *strings.Builder, v interface{}, indent int) {
	pad := strings.Repeat(" ", indent)
	switch t := v.(type) {
	case map[string]interface{}:
		if len(t) == 0 {
			b.WriteString(pad + "{}\n")
			return
		}
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			b.WriteString(pad + quoteScalar(k) + ":")
			writeChild(b, t[k], indent)
		}
	case []interface{}:
		if len(t) == 0 {
			b.WriteString(pad + "[]\n")
			return
		}
		for _, item := range t {
			switch c := item.(type) {
			case map[string]interface{}, []interface{}:
				if isEmpty(c) {
					b.WriteString(pad + "- " + strings.TrimSpace(toYAML(c)) + "\n")
					continue
				}
				var sub strings.Builder
				writeYAML(&sub, c, indent+2)
				s := sub.String()
				b.WriteString(pad + "- " + s[indent+2:])
			default:
				b.WriteString(pad + "- " + quoteScalar(c) + "\n")
			}
		}
	default:
		b.WriteString(pad + quoteScalar(v) + "\n")
	}
}

func writeChild(b *strings.Builder, v interface{}, indent int) {
	switch c := v.(type) {
	case map[string]interface{}:
		if len(c) == 0 {
			b.WriteString(" {}\n")
			return
		}
		b.WriteString("\n")
		writeYAML(b, c, indent+2)
	case []interface{}:
		if len(c) == 0 {
			b.WriteString(" []\n")
			return
		}
		b.WriteString("\n")
		writeYAML(b, c, indent)
	default:
		b.WriteString(" " + quoteScalar(v) + "\n")
	}
}

func isEmpty(v interface{}) bool {
	switch t := v.(type) {
	case map[string]interface{}:
		return len(t) == 0
	case []interface{}:
		return len(t) == 0
	}
	return false
}

func quoteScalar(v interface{}) string {
	switch t := v.(type) {
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(t)
	case int64:
		return strconv.FormatInt(t, 10)
	case int:
		return strconv.Itoa(t)
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	case string:
		if needsQuotes(t) {
			return strconv.Quote(t)
		}
		return t
	default:
		return strconv.Quote(fmt.Sprint(t))
	}
}

func needsQuotes(s string) bool {
	if s == "" || strings.TrimSpace(s) != s {
		return true
	}
	if r, _ := scalar(s); r == nil || fmt.Sprintf("%T", r) != "string" {
		return true
	}
	if strings.ContainsAny(s[:1], "-?:,[]{}#&*!|>'\"%@`") {
		return true
	}
	return strings.Contains(s, ": ") || strings.Contains(s, " #") || strings.HasSuffix(s, ":") ||
		strings.ContainsAny(s, "\n\r\t")
}
