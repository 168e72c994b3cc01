// Command helm-render renders a Helm chart the way `helm template` does, for the subset of Helm that
// deploy/helm/wid uses, with the Go standard library only (Helm itself cannot be installed on the
// machines that test wid):
//
//	helm-render [-name RELEASE] [-namespace NS] [-f VALUES.yaml]... [-set a.b=c]... [-only PREFIX,...]
//	            [-service NAME] CHART_DIR
//
// Supported: Chart.yaml (.Chart.Name, .Version, .AppVersion, .Description), values.yaml merged with
// -f files and -set overrides (.Values), .Release (.Name, .Namespace, .Service, .IsInstall,
// .IsUpgrade, .Revision), text/template with Helm's missing-key behaviour, every file under
// templates/ parsed into one template set (named templates in _*.tpl), and the functions include,
// toYaml, nindent, indent, quote, default, required, fail, plus text/template's built-ins (if, range,
// with, eq, and, or, not, printf, ...). Anything else is a template error, so the chart stays inside
// this subset. `required` and `fail` stop rendering as Helm does, with the chart's message:
// "execution error at (CHART/templates/FILE:LINE:COL): MESSAGE" (exit 1, nothing on stdout).
//
// Output: each rendered template that is not blank, as "---\n# Source: CHART/templates/FILE\n..."
// in file-name order, on stdout. -only keeps the templates whose file names start with one of the
// prefixes; -service sets .Release.Service (Helm: "Helm").
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"text/template"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	name := flag.String("name", "wid", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	var valueFiles, sets multiFlag
	only := flag.String("only", "", "comma-separated template file-name prefixes to output (default: all)")
	service := flag.String("service", "Helm", ".Release.Service")
	flag.Var(&valueFiles, "f", "values file (repeatable; later files win)")
	flag.Var(&sets, "set", "override a value: a.b.c=VALUE (repeatable; true/false/null/integers are typed)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: helm-render [-name R] [-namespace NS] [-f values.yaml]... [-set k=v]... CHART_DIR")
		os.Exit(64)
	}
	var prefixes []string
	for _, p := range strings.Split(*only, ",") {
		if p = strings.TrimSpace(p); p != "" {
			prefixes = append(prefixes, p)
		}
	}
	out, err := render(flag.Arg(0), *name, *namespace, *service, valueFiles, sets, prefixes)
	if err != nil {
		fmt.Fprintf(os.Stderr, "helm-render: %v\n", err)
		os.Exit(1)
	}
	os.Stdout.WriteString(out)
}

func readYAMLMap(path string) (map[string]interface{}, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	v, err := parseYAML(path, string(data))
	if err != nil {
		return nil, err
	}
	if v == nil {
		return map[string]interface{}{}, nil
	}
	m, ok := v.(map[string]interface{})
	if !ok {
		return nil, fmt.Errorf("%s: the top level is not a mapping", path)
	}
	return m, nil
}

// merge copies src over dst recursively (maps merge, everything else replaces), as Helm merges
// values files.
func merge(dst, src map[string]interface{}) {
	for k, v := range src {
		if sm, ok := v.(map[string]interface{}); ok {
			if dm, ok := dst[k].(map[string]interface{}); ok {
				merge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

func setValue(values map[string]interface{}, assignment string) error {
	eq := strings.IndexByte(assignment, '=')
	if eq <= 0 {
		return fmt.Errorf("-set %q: expected KEY=VALUE", assignment)
	}
	path := strings.Split(assignment[:eq], ".")
	raw := assignment[eq+1:]
	var v interface{} = raw
	if s, err := scalar(raw); err == nil && raw != "" && (raw[0] != '"' && raw[0] != '\'') {
		v = s
	}
	m := values
	for _, k := range path[:len(path)-1] {
		next, ok := m[k].(map[string]interface{})
		if !ok {
			next = map[string]interface{}{}
			m[k] = next
		}
		m = next
	}
	m[path[len(path)-1]] = v
	return nil
}

func render(chartDir, release, namespace, service string, valueFiles, sets, only []string) (string, error) {
	chartMeta, err := readYAMLMap(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return "", err
	}
	chart := map[string]interface{}{}
	for from, to := range map[string]string{"name": "Name", "version": "Version", "appVersion": "AppVersion",
		"description": "Description", "apiVersion": "APIVersion", "type": "Type"} {
		if v, ok := chartMeta[from]; ok {
			chart[to] = fmt.Sprint(v)
		}
	}
	chartName, _ := chart["Name"].(string)
	if chartName == "" {
		return "", errors.New("Chart.yaml has no name")
	}
	values := map[string]interface{}{}
	if _, err := os.Stat(filepath.Join(chartDir, "values.yaml")); err == nil {
		if values, err = readYAMLMap(filepath.Join(chartDir, "values.yaml")); err != nil {
			return "", err
		}
	}
	for _, f := range valueFiles {
		extra, err := readYAMLMap(f)
		if err != nil {
			return "", err
		}
		merge(values, extra)
	}
	for _, s := range sets {
		if err := setValue(values, s); err != nil {
			return "", err
		}
	}
	top := map[string]interface{}{
		"Values": values,
		"Chart":  chart,
		"Release": map[string]interface{}{
			"Name": release, "Namespace": namespace, "Service": service,
			"IsInstall": true, "IsUpgrade": false, "Revision": 1,
		},
	}

	files, err := filepath.Glob(filepath.Join(chartDir, "templates", "*"))
	if err != nil {
		return "", err
	}
	sort.Strings(files)
	root := template.New(chartName).Option("missingkey=zero")
	var t *template.Template
	root.Funcs(funcs(func() *template.Template { return t }))
	var toRender []string
	for _, f := range files {
		base := filepath.Base(f)
		if !strings.HasSuffix(base, ".yaml") && !strings.HasSuffix(base, ".yml") && !strings.HasSuffix(base, ".tpl") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		name := chartName + "/templates/" + base
		if _, err := root.New(name).Parse(string(data)); err != nil {
			return "", err
		}
		if !strings.HasPrefix(base, "_") && !strings.HasSuffix(base, ".tpl") && selected(base, only) {
			toRender = append(toRender, name)
		}
	}
	t = root
	var out strings.Builder
	for _, name := range toRender {
		var buf bytes.Buffer
		if err := t.ExecuteTemplate(&buf, name, top); err != nil {
			return "", chartError(err)
		}
		// As Helm: values that are missing print nothing.
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		if strings.TrimSpace(text) == "" {
			continue
		}
		fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", name, strings.TrimRight(strings.TrimLeft(text, "\n"), "\n "))
	}
	return out.String(), nil
}

// failure is the error of `fail` and `required`: the chart refuses its values.
type failure struct{ msg string }

func (f failure) Error() string { return f.msg }

var templateLocation = regexp.MustCompile(`template: ([^ ]+:[0-9]+:[0-9]+): executing `)

// chartError turns a `fail`/`required` failure into Helm's wording, which names the place in the
// chart and then the chart's own message (text/template would quote the whole call first). The
// place is the innermost one, i.e. inside the named template when the failure is in an include.
func chartError(err error) error {
	var f failure
	if !errors.As(err, &f) {
		return err
	}
	if m := templateLocation.FindAllStringSubmatch(err.Error(), -1); m != nil {
		return fmt.Errorf("execution error at (%s): %s", m[len(m)-1][1], f.msg)
	}
	return fmt.Errorf("execution error: %s", f.msg)
}

func selected(base string, prefixes []string) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, p := range prefixes {
		if strings.HasPrefix(base, p) {
			return true
		}
	}
	return false
}

func funcs(set func() *template.Template) template.FuncMap {
	return template.FuncMap{
		"include": func(name string, data interface{}) (string, error) {
			var buf bytes.Buffer
			if err := set().ExecuteTemplate(&buf, name, data); err != nil {
				return "", err
			}
			return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
		},
		"toYaml": func(v interface{}) string { return toYAML(v) },
		"indent": indent,
		"nindent": func(n int, s string) string {
			return "\n" + indent(n, s)
		},
		"quote": func(args ...interface{}) string {
			var parts []string
			for _, a := range args {
				if a != nil {
					parts = append(parts, fmt.Sprintf("%q", strval(a)))
				}
			}
			return strings.Join(parts, " ")
		},
		// required MESSAGE VALUE: VALUE, or a failure with MESSAGE when VALUE is nil or "" (Helm's).
		"required": func(msg string, v interface{}) (interface{}, error) {
			if s, isString := v.(string); v == nil || (isString && s == "") {
				return v, failure{msg}
			}
			return v, nil
		},
		// fail MESSAGE: stops rendering with MESSAGE (sprig's).
		"fail": func(msg string) (string, error) { return "", failure{msg} },
		// default DEFAULT VALUE: VALUE unless it is empty (nil, "", 0, false, empty map/list).
		"default": func(d interface{}, given ...interface{}) interface{} {
			if len(given) == 0 || empty(given[0]) {
				return d
			}
			return given[0]
		},
	}
}

func indent(n int, s string) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
}

func strval(v interface{}) string {
	switch t := v.(type) {
	case string:
		return t
	case []byte:
		return string(t)
	case fmt.Stringer:
		return t.String()
	default:
		return fmt.Sprint(v)
	}
}

func empty(v interface{}) bool {
	if v == nil {
		return true
	}
	r := reflect.ValueOf(v)
	switch r.Kind() {
	case reflect.String, reflect.Array, reflect.Map, reflect.Slice:
		return r.Len() == 0
	case reflect.Bool:
		return !r.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return r.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return r.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return r.Float() == 0
	case reflect.Ptr, reflect.Interface:
		return r.IsNil()
	}
	return false
}
