package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseYAML(t *testing.T) {
	src := `# comment
a: 1
b: "two" # trailing comment
c:
  d: true
  e: ~
  f: 'it''s'
list:
- x
- key: v
  other: 2
- [1, "a b", {k: v}]
empty: {}
none: []
url: https://example.invalid:8443/path#frag
block: |
  line 1
  line 2
folded: >-
  a
  b
nested:
  - name: n
    items:
    - 1
    - 2
`
	got, err := parseYAML("t", src)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]interface{}{
		"a": int64(1), "b": "two",
		"c": map[string]interface{}{"d": true, "e": nil, "f": "it's"},
		"list": []interface{}{"x", map[string]interface{}{"key": "v", "other": int64(2)},
			[]interface{}{int64(1), "a b", map[string]interface{}{"k": "v"}}},
		"empty":  map[string]interface{}{},
		"none":   []interface{}{},
		"url":    "https://example.invalid:8443/path#frag",
		"block":  "line 1\nline 2\n",
		"folded": "a b",
		"nested": []interface{}{map[string]interface{}{"name": "n", "items": []interface{}{int64(1), int64(2)}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %#v\nwant %#v", got, want)
	}
}

func TestParseYAMLErrors(t *testing.T) {
	for _, src := range []string{"a: 1\na: 2\n", "a:\n  b: 1\n c: 2\n", "- a\nb: 1\n", "a: [1, 2\n"} {
		if _, err := parseYAML("t", src); err == nil {
			t.Errorf("no error for %q", src)
		}
	}
}

func TestToYAMLRoundTrip(t *testing.T) {
	v := map[string]interface{}{
		"s": "plain", "q": "true", "n": "123", "e": "", "colon": "a: b", "dash": "-x", "multi": "a\nb",
		"i": int64(3), "f": 1.5, "b": false, "nil": nil,
		"m":  map[string]interface{}{"z": "1", "a": []interface{}{"x", map[string]interface{}{"k": "v", "l": []interface{}{}}}},
		"em": map[string]interface{}{}, "el": []interface{}{},
	}
	text := toYAML(v)
	back, err := parseYAML("t", text)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if !reflect.DeepEqual(back, v) {
		t.Fatalf("round trip changed the value:\n%s\n%#v", text, back)
	}
	if !strings.HasPrefix(text, "b: false\n") {
		t.Fatalf("keys are not sorted:\n%s", text)
	}
}

func TestRenderFunctions(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("Chart.yaml", "name: demo\nversion: 1.2.3\nappVersion: \"9.9\"\n")
	write("values.yaml", "port: 8443\nlabels:\n  a: b\nempty: \"\"\nlist: [x, y]\n")
	write("templates/_h.tpl", `{{- define "demo.name" -}}{{ .Release.Name }}-{{ .Chart.Name }}{{- end -}}`)
	write("templates/a.yaml", `name: {{ include "demo.name" . }}
ns: {{ .Release.Namespace }}
ver: {{ .Chart.AppVersion | quote }}
port: {{ .Values.port }}
dflt: {{ .Values.empty | default "fallback" }}
missing: "{{ .Values.nothing }}"
labels:
  {{- toYaml .Values.labels | nindent 2 }}
list:
{{ toYaml .Values.list | indent 2 }}
q: {{ quote "a\"b" }}
`)
	write("templates/b.yaml", "{{- if .Values.off }}\nkind: Never\n{{- end }}\n")
	out, err := render(dir, "rel", "ns1", "Helm", nil, []string{"labels.c=d", "port=9443"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := `---
# Source: demo/templates/a.yaml
name: rel-demo
ns: ns1
ver: "9.9"
port: 9443
dflt: fallback
missing: ""
labels:
  a: b
  c: d
list:
  - x
  - y
q: "a\"b"
`
	if out != want {
		t.Fatalf("got:\n%s\nwant:\n%s", out, want)
	}
	if _, err := render(dir, "rel", "ns1", "Helm", nil, nil, []string{"b."}); err != nil {
		t.Fatal(err)
	}
	write("templates/c.yaml", "{{ tpl \"x\" . }}\n")
	if _, err := render(dir, "rel", "ns1", "Helm", nil, nil, nil); err == nil {
		t.Fatal("a function outside the subset was accepted")
	}
}

func TestRenderRequiredAndFail(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("Chart.yaml", "name: demo\nversion: 1.0.0\n")
	write("values.yaml", "name: \"\"\nzero: 0\nflag: false\nmode: single\n")
	write("templates/_h.tpl", `{{- define "demo.check" -}}
{{- if eq .Values.mode "broken" }}{{ fail "mode broken is not supported" }}{{ end -}}
{{- end -}}`)
	write("templates/a.yaml", `{{- include "demo.check" . -}}
name: {{ required "name is required: set it with -set name=X" .Values.name }}
zero: {{ required "zero is present" .Values.zero }}
flag: {{ required "flag is present" .Values.flag }}
`)
	out, err := render(dir, "rel", "ns", "Helm", nil, []string{"name=n1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// As Helm: only nil and "" are missing; 0 and false are values.
	if want := "---\n# Source: demo/templates/a.yaml\nname: n1\nzero: 0\nflag: false\n"; out != want {
		t.Fatalf("got:\n%s\nwant:\n%s", out, want)
	}
	for _, c := range []struct {
		sets []string
		want string
	}{
		{nil, "execution error at (demo/templates/a.yaml:2:9): name is required: set it with -set name=X"},
		{[]string{"name=null"}, "execution error at (demo/templates/a.yaml:2:9): name is required"},
		{[]string{"name=n1", "mode=broken"}, "execution error at (demo/templates/_h.tpl:2:37): mode broken is not supported"},
	} {
		_, err := render(dir, "rel", "ns", "Helm", nil, c.sets, nil)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("-set %v: got error %v, want %q", c.sets, err, c.want)
		}
	}
}

func TestRenderTheChart(t *testing.T) {
	out, err := render("../../helm/wid", "wid", "wid-system", "Helm", nil, []string{"webhook.certManager.enabled=true"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"kind: MutatingWebhookConfiguration", "kind: StatefulSet", "kind: Certificate",
		"cert-manager.io/inject-ca-from: wid-system/azure-wi-webhook-serving-cert"} {
		if !strings.Contains(out, s) {
			t.Errorf("rendered chart lacks %q", s)
		}
	}
	if strings.Contains(out, "<no value>") {
		t.Error("rendered chart contains <no value>")
	}
}
