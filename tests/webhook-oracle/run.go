package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	wh "github.com/Azure/azure-workload-identity/pkg/webhook"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// Config is the run, as the pytest writes it.
type Config struct {
	// Admin kubeconfig of the apiserver both webhooks read ServiceAccounts from.
	Kubeconfig string `json:"kubeconfig"`
	// A fresh namespace: the pool of ServiceAccounts is created there and every pod is submitted there.
	Namespace string `json:"namespace"`
	// CA of wid's serving certificate.
	CAFile string `json:"ca_file"`
	// docs/webhook-oracle.md.
	Doc      string    `json:"doc"`
	Seed     uint64    `json:"seed"`
	Workers  int       `json:"workers"`
	Profiles []Profile `json:"profiles"`
	// Where upstream's logs go (they are JSON lines on stderr otherwise).
	LogFile string `json:"log_file"`
	// How many unexplained differences to print per kind.
	ShowPerKind int `json:"show_per_kind"`
	// Only these case ids (for investigating one), each printed in full.
	Only []string `json:"only"`
}

func init() {
	// What upstream's Makefile sets with -ldflags -X for a release (REGISTRY, IMAGE_VERSION).
	wh.ProxyImageRegistry = "mcr.microsoft.com/oss/azure/workload-identity"
	wh.ProxyImageVersion = "v1.6.0"
}

type result struct {
	profile string
	c       Case
	object  []byte // request.object as sent
	up, wid *outcome
	v       verdict
	err     error
	// wid's own output sent again: same name, then renamed (what a reinvocation sees).
	again, renamed []string // unexplained idempotence failures
	checkedAgain   bool
	upRenamedDup   bool // upstream, on the renamed output, mounts two volumes at the token path
}

func runWebhook(args []string) (bool, error) {
	fs := flag.NewFlagSet("webhook", flag.ContinueOnError)
	cfgFile := fs.String("config", "", "the run's configuration (JSON)")
	if err := fs.Parse(args); err != nil {
		return false, err
	}
	raw, err := os.ReadFile(*cfgFile)
	if err != nil {
		return false, err
	}
	var cfg Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return false, fmt.Errorf("%s: %w", *cfgFile, err)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.ShowPerKind <= 0 {
		cfg.ShowPerKind = 3
	}
	if err := checkDoc(cfg.Doc); err != nil {
		return false, err
	}
	if cfg.LogFile != "" {
		f, err := os.Create(cfg.LogFile)
		if err != nil {
			return false, err
		}
		defer f.Close()
		os.Stderr = f
	}
	ctrllog.SetLogger(logr.Discard())
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	restCfg, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	if err != nil {
		return false, err
	}
	restCfg.QPS, restCfg.Burst = 500, 1000
	api, err := newAPIClients(ctx, restCfg)
	if err != nil {
		return false, err
	}
	pool := saPool()
	for _, sa := range pool {
		if err := createSA(ctx, api, cfg.Namespace, sa.Name, sa.Annotations); err != nil {
			return false, err
		}
	}
	// Warm upstream's informer (its first Get starts it) and wait until it holds the whole pool.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var list corev1.ServiceAccountList
		if err := api.cached.List(ctx, &list); err == nil && countIn(list, cfg.Namespace) >= len(pool) {
			break
		}
		if time.Now().After(deadline) {
			return false, fmt.Errorf("upstream's ServiceAccount cache never held the pool")
		}
		time.Sleep(50 * time.Millisecond)
	}
	wid, err := newWidClient(cfg.CAFile)
	if err != nil {
		return false, err
	}

	var results []result
	perProfile := map[string][2]int{}
	for _, p := range cfg.Profiles {
		if err := setUpstreamLogLevel(p.LogLevel); err != nil {
			return false, fmt.Errorf("profile %s: log level %q: %w", p.Name, p.LogLevel, err)
		}
		up, err := newUpstream(api, p)
		if err != nil {
			return false, err
		}
		cases := namedCases()
		seed := p.Seed
		if seed == 0 {
			seed = cfg.Seed
		}
		for i := 0; i < p.Generated; i++ {
			cases = append(cases, generated(seed, i, pool))
		}
		if len(cfg.Only) > 0 {
			var some []Case
			for _, c := range cases {
				for _, id := range cfg.Only {
					if c.ID == id {
						some = append(some, c)
					}
				}
			}
			cases = some
		}
		t0 := time.Now()
		rs := runCases(ctx, api, up, wid, cfg, p, cases)
		if len(cfg.Only) > 0 {
			for _, r := range rs {
				dump(r)
			}
		}
		results = append(results, rs...)
		perProfile[p.Name] = [2]int{len(rs), int(time.Since(t0).Milliseconds())}
	}
	return report(cfg, results, perProfile, time.Since(start)), nil
}

func countIn(list corev1.ServiceAccountList, ns string) int {
	n := 0
	for _, sa := range list.Items {
		if sa.Namespace == ns {
			n++
		}
	}
	return n
}

func createSA(ctx context.Context, api *apiClients, ns, name string, ann map[string]string) error {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: ann}}
	if err := api.direct.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating ServiceAccount %s/%s: %w", ns, name, err)
	}
	return nil
}

func review(c Case, ns, uid string, object []byte) []byte {
	version := "admission.k8s.io/v1"
	if c.V1beta1 {
		version = "admission.k8s.io/v1beta1"
	}
	var meta struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal(object, &meta)
	r := map[string]any{
		"apiVersion": version,
		"kind":       "AdmissionReview",
		"request": map[string]any{
			"uid":             uid,
			"kind":            map[string]any{"group": "", "version": "v1", "kind": "Pod"},
			"resource":        map[string]any{"group": "", "version": "v1", "resource": "pods"},
			"requestKind":     map[string]any{"group": "", "version": "v1", "kind": "Pod"},
			"requestResource": map[string]any{"group": "", "version": "v1", "resource": "pods"},
			"name":            meta.Metadata.Name,
			"namespace":       ns,
			"operation":       "CREATE",
			"userInfo":        map[string]any{"username": "system:serviceaccount:kube-system:replicaset-controller"},
			"object":          json.RawMessage(object),
			"oldObject":       nil,
			"dryRun":          false,
			"options":         map[string]any{"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
		},
	}
	b, err := json.Marshal(r)
	if err != nil {
		panic(err)
	}
	return b
}

func runCases(ctx context.Context, api *apiClients, up http.Handler, wid *widClient, cfg Config, p Profile, cases []Case) []result {
	out := make([]result, len(cases))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < cfg.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				out[i] = runCase(ctx, api, up, wid, cfg, p, cases[i])
			}
		}()
	}
	for i := range cases {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return out
}

func runCase(ctx context.Context, api *apiClients, up http.Handler, wid *widClient, cfg Config, p Profile, c Case) result {
	r := result{profile: p.Name, c: c}
	ns := cfg.Namespace
	if c.Namespace != "" {
		ns = c.Namespace
	}
	object := bytes.ReplaceAll(c.Object, []byte(`"namespace":"(run)"`), []byte(`"namespace":"`+ns+`"`))
	if c.LateSA {
		name := "late-" + p.Name
		if err := createSA(ctx, api, ns, name, map[string]string{wh.ClientIDAnnotation: clientB}); err != nil {
			r.err = err
			return r
		}
		object = bytes.Replace(object, []byte(`"serviceAccountName":"late"`), []byte(`"serviceAccountName":"`+name+`"`), 1)
	}
	r.object = object
	uid := fmt.Sprintf("%s/%s", p.Name, c.ID)
	body := review(c, ns, uid, object)
	upRaw, err := callUpstream(up, body)
	if err != nil {
		r.err = err
		return r
	}
	widRaw, err := wid.call(p.URL, body)
	if err != nil {
		r.err = err
		return r
	}
	if r.up, err = parseOutcome(upRaw, object); err != nil {
		r.err = fmt.Errorf("upstream: %w", err)
		return r
	}
	if r.wid, err = parseOutcome(widRaw, object); err != nil {
		r.err = fmt.Errorf("wid: %w", err)
		return r
	}
	in := newInput(object, ns)
	r.v = compare(in, r.up, r.wid, c.V1beta1String())
	if r.wid.allowed && r.wid.patchErr == nil {
		r.checkedAgain = true
		r.again = idempotent(wid, p, c, ns, uid+"/again", r.wid.pod)
		renamed := renamedPod(r.wid.pod)
		r.renamed = idempotent(wid, p, c, ns, uid+"/renamed", renamed)
		// Upstream on the same renamed pod (what reinvocation after a rename gives it: #1744).
		rb, _ := json.Marshal(renamed)
		if upRaw, err := callUpstream(up, review(c, ns, uid+"/renamed", rb)); err == nil {
			if o, err := parseOutcome(upRaw, rb); err == nil && o.allowed && o.patchErr == nil {
				r.upRenamedDup = twoAtTokenPath(o.pod)
			}
		}
	}
	return r
}

func (c Case) V1beta1String() string {
	if c.V1beta1 {
		return "admission.k8s.io/v1beta1"
	}
	return "admission.k8s.io/v1"
}

// renamedPod is the pod under another name, as when another webhook names it between invocations.
func renamedPod(pod any) any {
	p := deepCopy(pod)
	meta := obj(obj(p)["metadata"])
	if meta == nil {
		return p
	}
	if n := str(meta["name"]); n != "" {
		meta["name"] = n + "-renamed"
	} else {
		meta["name"] = str(meta["generateName"]) + "x7k2q"
	}
	return p
}

// idempotent sends wid's output to wid again: it must be allowed and unchanged.
func idempotent(wid *widClient, p Profile, c Case, ns, uid string, pod any) []string {
	raw, err := json.Marshal(pod)
	if err != nil {
		return []string{err.Error()}
	}
	body, err := wid.call(p.URL, review(c, ns, uid, raw))
	if err != nil {
		return []string{err.Error()}
	}
	o, err := parseOutcome(body, raw)
	if err != nil {
		return []string{err.Error()}
	}
	if !o.allowed {
		return []string{"denied: " + o.message}
	}
	if o.patchErr != nil {
		return []string{"patch does not apply: " + o.patchErr.Error()}
	}
	before, _ := decode(raw)
	var entries []entry
	diff(nil, before, o.pod, &entries)
	var out []string
	for _, e := range entries {
		out = append(out, strings.Replace(strings.Replace(e.String(), "upstream", "before", 1), "wid", "after", 1))
	}
	return out
}

func twoAtTokenPath(pod any) bool {
	spec := obj(obj(pod)["spec"])
	for _, list := range []string{"initContainers", "containers"} {
		for _, c := range arr(spec[list]) {
			n := 0
			for _, m := range arr(obj(c)["volumeMounts"]) {
				if samePath(str(obj(m)["mountPath"]), tokenMountPath) {
					n++
				}
			}
			if n > 1 {
				return true
			}
		}
	}
	return false
}

// report prints the figures and the unexplained differences; true when there is none.
func report(cfg Config, results []result, perProfile map[string][2]int, took time.Duration) bool {
	// Unexplained differences, grouped by their paths: the first few of a group in full, every other
	// one on a line with its minimal diff.
	type kind struct {
		key   string
		count int
		lines []string
	}
	kinds := map[string]*kind{}
	note := func(key, full, short string) {
		k := kinds[key]
		if k == nil {
			k = &kind{key: key}
			kinds[key] = k
		}
		k.count++
		if k.count <= cfg.ShowPerKind {
			k.lines = append(k.lines, full)
		} else {
			if len(short) > 400 {
				short = short[:400] + "…"
			}
			k.lines = append(k.lines, short)
		}
	}
	rowCount := map[string]int{}
	rowExamples := map[string][]string{}
	identical, errors, unexplainedCases := 0, 0, 0
	bothAllowed, bothDenied, split := 0, 0, 0
	againChecked, againBad, upDup := 0, 0, 0
	for _, r := range results {
		where := fmt.Sprintf("[%s] %s", r.profile, r.c.ID)
		if r.err != nil {
			errors++
			note("error: "+firstLine(r.err.Error()), where+": "+r.err.Error(), where+": "+r.err.Error())
			continue
		}
		if r.v.identical {
			identical++
		}
		switch {
		case r.up.allowed && r.wid.allowed:
			bothAllowed++
		case !r.up.allowed && !r.wid.allowed:
			bothDenied++
		default:
			split++
		}
		for _, id := range r.v.rows {
			rowCount[id]++
			if len(rowExamples[id]) < 3 {
				rowExamples[id] = append(rowExamples[id], fmt.Sprintf("[%s] %s", r.profile, r.c.ID))
			}
		}
		if len(r.v.unexplained) > 0 {
			unexplainedCases++
			note(signature(r.v.unexplained), fmt.Sprintf("%s\n      input: %s\n      upstream: %s\n      wid: %s\n      - %s",
				where, compact(mustDecode(r.object)), r.up.describe(), r.wid.describe(), strings.Join(r.v.unexplained, "\n      - ")),
				where+": "+strings.Join(r.v.unexplained, "; "))
		}
		if r.checkedAgain {
			againChecked++
			if r.upRenamedDup {
				upDup++
			}
			for _, x := range [][]string{r.again, r.renamed} {
				if len(x) > 0 {
					againBad++
					note("wid not idempotent: "+signature(x), where+"\n      - "+strings.Join(x, "\n      - "), where+": "+strings.Join(x, "; "))
					break
				}
			}
		}
	}
	if len(kinds) > 0 {
		ks := make([]*kind, 0, len(kinds))
		for _, k := range kinds {
			ks = append(ks, k)
		}
		sort.Slice(ks, func(i, j int) bool {
			return ks[i].count > ks[j].count || (ks[i].count == ks[j].count && ks[i].key < ks[j].key)
		})
		fmt.Println("UNEXPLAINED (grouped by path; each request with its minimal diff, the first ones with their input):")
		for _, k := range ks {
			fmt.Printf("  %d× %s\n", k.count, k.key)
			for _, ex := range k.lines {
				fmt.Printf("    %s\n", ex)
			}
		}
	}
	fmt.Println("webhook oracle: azure-workload-identity v1.6.0 pkg/webhook (podMutator.Handle via controller-runtime admission.Webhook) vs wid webhook")
	names := make([]string, 0, len(perProfile))
	for _, p := range cfg.Profiles {
		names = append(names, p.Name)
	}
	for _, n := range names {
		fmt.Printf("  profile %-28s %6d requests in %6.1fs\n", n, perProfile[n][0], float64(perProfile[n][1])/1000)
	}
	fmt.Printf("pods compared:               %d (both admitted %d, both denied %d, one side only %d)\n",
		len(results)-errors, bothAllowed, bothDenied, split)
	fmt.Printf("identical:                   %d (same outcome, same patched pod or same denial)\n", identical)
	fmt.Println("differences by docs/webhook-oracle.md row (a request may show several):")
	for _, id := range rowIDs {
		if strings.HasPrefix(id, "jwks-") {
			continue
		}
		fmt.Printf("  %-24s %6d   %s\n", id, rowCount[id], strings.Join(rowExamples[id], ", "))
	}
	fmt.Printf("wid idempotence: %d admitted pods sent back (same name, then renamed): %d changed\n", againChecked, againBad)
	fmt.Printf("upstream on the renamed pods: %d of %d get a second volume mounted at %s (upstream #1744)\n", upDup, againChecked, tokenMountPath)
	fmt.Printf("requests that failed to run: %d\n", errors)
	fmt.Printf("unexplained differences:     %d requests, %d idempotence failures\n", unexplainedCases, againBad)
	fmt.Printf("time: %.1fs\n", took.Seconds())
	return errors == 0 && unexplainedCases == 0 && againBad == 0
}

var nameRe = regexp.MustCompile(`\[name=[^\]]*\]`)

// signature groups unexplained differences: their paths with names blanked, or their first words.
func signature(lines []string) string {
	seen := map[string]bool{}
	var parts []string
	for _, l := range lines {
		k := l
		if i := strings.Index(l, ": "); i > 0 {
			k = l[:i]
		}
		k = nameRe.ReplaceAllString(k, "[name=*]")
		if len(k) > 120 {
			k = k[:120]
		}
		if !seen[k] {
			seen[k] = true
			parts = append(parts, k)
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, " + ")
}

func mustDecode(b []byte) any {
	v, err := decode(b)
	if err != nil {
		return string(b)
	}
	return v
}

// dump prints one request in full (config "only").
func dump(r result) {
	fmt.Printf("=== [%s] %s\ninput: %s\n", r.profile, r.c.ID, r.object)
	for _, side := range []struct {
		name string
		o    *outcome
	}{{"upstream", r.up}, {"wid", r.wid}} {
		if side.o == nil {
			continue
		}
		fmt.Printf("%s: %s\n  patch: %s\n  pod: %s\n", side.name, side.o.describe(), side.o.patch, compactFull(side.o.pod))
	}
	fmt.Printf("verdict: identical=%v rows=%v unexplained=%v\n", r.v.identical, r.v.rows, r.v.unexplained)
}

func compactFull(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
