package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	wh "github.com/Azure/azure-workload-identity/pkg/webhook"
	"k8s.io/apimachinery/pkg/util/validation"
)

// The intended differences. docs/webhook-oracle.md holds the table (the source of truth: what differs
// and why wid's behaviour is intended); this file holds, per row id, the check that recognises that
// difference. A run starts by reading the table and refusing to run unless its ids are exactly these.
var rowIDs = []string{
	"denial-fix",
	"decode-error-text",
	"sa-name-checked",
	"proxy-port-range",
	"token-path-taken",
	"reinvocation",
	"no-field-lost",
	"zero-values",
	"defaulted-fields-kept",
	"allowed-status",
	"jwks-more-key-forms",
	"jwks-stdout-newline",
}

var idCell = regexp.MustCompile("^`([a-z0-9-]+)`$")

// docIDs reads the ids of the table of intended differences: the first markdown table whose first
// header cell is "id", one id per row in backticks.
func docIDs(file string) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ids []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "|") {
			if in {
				break
			}
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		first := strings.TrimSpace(cells[0])
		if !in {
			if strings.EqualFold(first, "id") {
				in = true
			}
			continue
		}
		if strings.HasPrefix(first, "-") || strings.HasPrefix(first, ":") {
			continue
		}
		m := idCell.FindStringSubmatch(first)
		if m == nil {
			return nil, fmt.Errorf("%s: row %q: the id must be a `lowercase-word` in backticks", file, line)
		}
		ids = append(ids, m[1])
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%s: no table with an id column", file)
	}
	return ids, sc.Err()
}

// checkDoc fails unless the table lists exactly the ids this harness knows, once each.
func checkDoc(file string) error {
	ids, err := docIDs(file)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			return fmt.Errorf("%s lists %q twice", file, id)
		}
		seen[id] = true
	}
	var missing, extra []string
	for _, id := range rowIDs {
		if !seen[id] {
			missing = append(missing, id)
		}
		delete(seen, id)
	}
	for id := range seen {
		extra = append(extra, id)
	}
	sort.Strings(extra)
	if len(missing) > 0 || len(extra) > 0 {
		return fmt.Errorf("%s and the harness disagree: rows without a check in the harness %v, checks without a row %v",
			file, extra, missing)
	}
	return nil
}

func runIDs(args []string) (bool, error) {
	if len(args) != 2 || args[0] != "--doc" {
		return false, fmt.Errorf("usage: webhook-oracle ids --doc FILE")
	}
	if err := checkDoc(args[1]); err != nil {
		return false, err
	}
	fmt.Println(strings.Join(rowIDs, "\n"))
	return true, nil
}

// verdict is the comparison of one request.
type verdict struct {
	identical   bool     // same outcome and, when allowed, the same pod
	rows        []string // intended differences seen
	unexplained []string // what no row explains
}

func (v *verdict) row(id string) {
	for _, r := range v.rows {
		if r == id {
			return
		}
	}
	v.rows = append(v.rows, id)
}

// input is what both sides were sent.
type input struct {
	pod       any // request.object, decoded
	namespace string
	podName   string // the name upstream hashes
}

func newInput(object []byte, ns string) input {
	in := input{namespace: ns}
	in.pod, _ = decode(object)
	meta := obj(obj(in.pod)["metadata"])
	in.podName = str(meta["name"])
	if in.podName == "" {
		in.podName = str(meta["generateName"]) + " (prefix)"
	}
	return in
}

func (in input) annotations() map[string]string {
	out := map[string]string{}
	for k, v := range obj(obj(obj(in.pod)["metadata"])["annotations"]) {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}

// compare decides whether the two answers differ only as the table allows.
func compare(in input, up, wid *outcome, reqVersion string) verdict {
	var v verdict
	// The envelope: uid and version echoed by both (controller-runtime does it for upstream).
	if wid.uid != up.uid {
		v.unexplained = append(v.unexplained, fmt.Sprintf("response.uid: upstream %q, wid %q", up.uid, wid.uid))
	}
	if wid.apiVersion != up.apiVersion || wid.kind != up.kind {
		v.unexplained = append(v.unexplained, fmt.Sprintf("apiVersion/kind: upstream %s/%s, wid %s/%s (request %s)",
			up.apiVersion, up.kind, wid.apiVersion, wid.kind, reqVersion))
	}
	switch {
	case up.allowed && wid.allowed:
		// controller-runtime's Response.Complete gives every allowed answer status {code: 200}.
		if up.hasStatus && !wid.hasStatus && up.code == 200 && up.message == "" {
			v.row("allowed-status")
		} else if up.hasStatus != wid.hasStatus || up.code != wid.code || up.message != wid.message {
			v.unexplained = append(v.unexplained, fmt.Sprintf("allowed with status: upstream %v %q, wid %v %q", up.code, up.message, wid.code, wid.message))
		}
		comparePods(in, up, wid, &v)
	case !up.allowed && !wid.allowed:
		if up.code == wid.code && up.message == wid.message && up.reason == wid.reason {
			v.identical = len(v.unexplained) == 0
			return v
		}
		if up.reason != wid.reason {
			v.unexplained = append(v.unexplained, fmt.Sprintf("status.reason: upstream %q, wid %q", up.reason, wid.reason))
		}
		explainDenials(in, up, wid, &v)
	case up.allowed && !wid.allowed:
		if !explainProxyPort(in, up, wid, &v) && !explainTokenPathTaken(in, up, wid, &v) {
			v.unexplained = append(v.unexplained, fmt.Sprintf("upstream %s, wid %s", up.describe(), wid.describe()))
		}
	default:
		v.unexplained = append(v.unexplained, fmt.Sprintf("upstream %s, wid %s", up.describe(), wid.describe()))
	}
	return v
}

var fixSuffix = regexp.MustCompile(`^\. To fix: \S`)

func explainDenials(in input, up, wid *outcome, v *verdict) {
	if up.code == wid.code && strings.HasPrefix(wid.message, up.message) && up.message != "" &&
		fixSuffix.MatchString(wid.message[len(up.message):]) {
		v.row("denial-fix")
		return
	}
	// Upstream's decoder failed on request.object: wid refuses it too, in its own words.
	decodeMarkers := []string{"couldn't get version/kind", "json: cannot unmarshal", "there is no content to decode",
		"Object 'Kind' is missing", "json parse error"}
	for _, m := range decodeMarkers {
		if strings.Contains(up.message, m) && up.code == 400 && wid.code == 400 &&
			(strings.Contains(wid.message, "request.object") || strings.Contains(wid.message, "couldn't get version/kind") ||
				strings.Contains(wid.message, "couldn't decode the Pod")) {
			v.row("decode-error-text")
			return
		}
	}
	// A serviceAccountName that is no ServiceAccount name: wid refuses it before asking the API.
	sa := str(obj(obj(in.pod)["spec"])["serviceAccountName"])
	if up.code == 400 && wid.code == 400 && sa != "" && len(validation.IsDNS1123Subdomain(sa)) > 0 &&
		strings.HasPrefix(wid.message, "spec.serviceAccountName "+strconv.Quote(sa)+" is not a ServiceAccount name. To fix: ") {
		v.row("sa-name-checked")
		return
	}
	if explainProxyPort(in, up, wid, v) {
		return
	}
	key := strings.Fields(strings.ReplaceAll(up.message, ":", ""))
	if len(key) > 3 {
		key = key[:3]
	}
	v.unexplained = append(v.unexplained, fmt.Sprintf("denials differ (upstream %q…): upstream %v %q, wid %v %q",
		strings.Join(key, " "), up.code, up.message, wid.code, wid.message))
}

// explainProxyPort: the port annotation is an int32 outside 1..65535; wid refuses it (first, so it
// may also pre-empt a later denial of upstream's), upstream writes it into the sidecar's
// containerPort (which the apiserver's validation refuses) and the init container's PROXY_PORT.
func explainProxyPort(in input, up, wid *outcome, v *verdict) bool {
	ann := in.annotations()
	if _, ok := ann[wh.InjectProxySidecarAnnotation]; !ok {
		return false
	}
	raw, ok := ann[wh.ProxySidecarPortAnnotation]
	if !ok {
		return false
	}
	port, err := strconv.ParseInt(raw, 10, 32)
	if err != nil || (port >= 1 && port <= 65535) {
		return false
	}
	want := fmt.Sprintf("proxy sidecar port %d not valid. Expected value to be between 1 and 65535. To fix: ", port)
	if wid.allowed || wid.code != 400 || !strings.HasPrefix(wid.message, want) {
		return false
	}
	if up.allowed && !portUsed(in.pod, up.pod, port) {
		return false
	}
	v.row("proxy-port-range")
	return true
}

// portUsed: upstream's pod carries the port where upstream puts it (the sidecar's containerPort, the
// init container's PROXY_PORT), or the pod already had both proxy containers (then it is unused).
func portUsed(inPod, upPod any, port int64) bool {
	had := map[string]bool{}
	for _, list := range []string{"initContainers", "containers"} {
		for _, c := range arr(obj(obj(inPod)["spec"])[list]) {
			had[str(obj(c)["name"])] = true
		}
	}
	if had[wh.ProxySidecarContainerName] && had[wh.ProxyInitContainerName] {
		return true
	}
	for _, list := range []string{"initContainers", "containers"} {
		for _, c := range arr(obj(obj(upPod)["spec"])[list]) {
			switch str(obj(c)["name"]) {
			case wh.ProxySidecarContainerName:
				for _, p := range arr(obj(c)["ports"]) {
					if obj(p)["containerPort"] == float64(port) {
						return true
					}
				}
			case wh.ProxyInitContainerName:
				for _, e := range arr(obj(c)["env"]) {
					if str(obj(e)["name"]) == wh.ProxyPortEnvVar && str(obj(e)["value"]) == strconv.FormatInt(port, 10) {
						return true
					}
				}
			}
		}
	}
	return false
}

func samePath(a, b string) bool { return strings.TrimRight(a, "/") == strings.TrimRight(b, "/") }

var mountTaken = regexp.MustCompile(`^container "([^"]*)" already mounts volume "([^"]*)" at ` + regexp.QuoteMeta(tokenMountPath) +
	`, where the workload identity token volume is mounted \(mountPath must be unique\)\. To fix: `)

// explainTokenPathTaken: a container mounts a user volume at the token path; wid refuses, upstream
// adds its own mount at the same path (two volumes on one directory; the apiserver refuses the pod
// when the two paths are the same string).
func explainTokenPathTaken(in input, up, wid *outcome, v *verdict) bool {
	m := mountTaken.FindStringSubmatch(wid.message)
	if m == nil || wid.code != 400 {
		return false
	}
	cname, vname := m[1], m[2]
	h := volumeName(in.podName)
	spec := obj(up.pod)["spec"]
	for _, list := range []string{"initContainers", "containers"} {
		for _, c := range arr(obj(spec)[list]) {
			if str(obj(c)["name"]) != cname {
				continue
			}
			var user, ours bool
			for _, mt := range arr(obj(c)["volumeMounts"]) {
				n, p := str(obj(mt)["name"]), str(obj(mt)["mountPath"])
				user = user || (n == vname && samePath(p, tokenMountPath))
				ours = ours || (n == h && p == tokenMountPath)
			}
			if user && ours {
				v.row("token-path-taken")
				return true
			}
		}
	}
	return false
}

func isReserved(name string) bool {
	return strings.HasPrefix(name, wh.ProjectedVolumeNamePrefix) || name == legacyName
}

// comparePods compares the patched pods.
func comparePods(in input, up, wid *outcome, v *verdict) {
	if up.patchErr != nil {
		v.unexplained = append(v.unexplained, "upstream's patch does not apply: "+up.patchErr.Error())
		return
	}
	if wid.patchErr != nil {
		v.unexplained = append(v.unexplained, "wid's patch does not apply: "+wid.patchErr.Error())
		return
	}
	if reflect.DeepEqual(up.pod, wid.pod) {
		// The same pod (allowed-status, about the envelope, does not count against it).
		v.identical = len(v.unexplained) == 0
		return
	}
	// With an earlier token volume, wid's intended pod is rebuilt from upstream's: the earlier volume
	// edited in place (as wid does now) or replaced by the desired one (as upstream replaces its own);
	// whichever leaves no unexplained field.
	best := func(model any) ([]string, []string) {
		var entries []entry
		diff(nil, model, wid.pod, &entries)
		var rows, bad []string
		for _, e := range entries {
			if id := classify(in, e); id != "" {
				rows = append(rows, id)
			} else {
				bad = append(bad, e.String())
			}
		}
		return rows, bad
	}
	rows, bad := best(up.pod)
	for _, wholesale := range []bool{false, true} {
		if len(bad) == 0 {
			break
		}
		if m, ok := reinvocationModel(in, up.pod, wholesale); ok && !reflect.DeepEqual(m, up.pod) {
			if r, b := best(m); len(b) < len(bad) || (len(b) == 0) {
				rows, bad = append(r, "reinvocation"), b
			}
		}
	}
	for _, id := range rows {
		v.row(id)
	}
	v.unexplained = append(v.unexplained, bad...)
}

// classify names the row explaining one field-level difference, or "".
func classify(in input, e entry) string {
	isZero := func(x any) bool {
		if x == nil {
			return true
		}
		if m, ok := x.(map[string]any); ok && len(m) == 0 {
			return true
		}
		return false
	}
	// Upstream re-serialises the typed pod: the struct members Go's encoder always writes appear
	// as {} / null where wid writes nothing.
	last := ""
	if n := len(e.at); n > 0 {
		last = e.at[n-1].key
	}
	zeroMember := last == "resources" || last == "status" || last == "creationTimestamp"
	if zeroMember && e.upHas && !e.widHas && isZero(e.up) {
		return "zero-values"
	}
	if !e.upHas && e.widHas {
		if x, ok := lookup(in.pod, e.at); ok && reflect.DeepEqual(x, e.wid) {
			// defaultMode 420 on the token volume: the apiserver's default, kept by wid's in-place edit.
			if e.at.pattern() == "spec.volumes[name=*].projected.defaultMode" && e.wid == float64(420) {
				return "defaulted-fields-kept"
			}
			if droppedByTypedRoundTrip(in.pod, e.at) {
				return "no-field-lost"
			}
		}
	}
	return ""
}

// reinvocationModel is what wid intends when the pod already carries a token volume: upstream's
// result, with the token volume and mounts of the earlier admission reused instead of a second
// volume and a second mount at the same path. ok is false when the pod has no earlier volume.
//
// wid's choice of volume: the one named for this pod (H) if present, else the first with the
// reserved prefix (R). Per container (not skipped), wid looks at the first mount at the token path:
// ours (the chosen name) stays, read-only; another reserved or v1.5 mount means "already injected";
// none: a mount of the chosen volume elsewhere moves there, else one is added.
func reinvocationModel(in input, upPod any, wholesale bool) (any, bool) {
	h := volumeName(in.podName)
	inSpec := obj(obj(in.pod)["spec"])
	chosen := ""
	for _, vol := range arr(inSpec["volumes"]) {
		if str(obj(vol)["name"]) == h {
			chosen = h
		}
	}
	if chosen == "" {
		for _, vol := range arr(inSpec["volumes"]) {
			if n := str(obj(vol)["name"]); strings.HasPrefix(n, wh.ProjectedVolumeNamePrefix) {
				chosen = n
				break
			}
		}
	}
	earlierMount := false
	for _, list := range []string{"initContainers", "containers"} {
		for _, c := range arr(inSpec[list]) {
			for _, m := range arr(obj(c)["volumeMounts"]) {
				if n := str(obj(m)["name"]); n != h && isReserved(n) && samePath(str(obj(m)["mountPath"]), tokenMountPath) {
					earlierMount = true
				}
			}
		}
	}
	if chosen == "" || (chosen == h && !earlierMount) {
		return nil, false
	}
	model := deepCopy(upPod)
	spec := obj(obj(model)["spec"])
	skip := map[string]bool{}
	if s := in.annotations()[wh.SkipContainersAnnotation]; s != "" {
		for _, x := range strings.Split(s, ";") {
			skip[strings.TrimSpace(x)] = true
		}
	}

	// Volumes: with R chosen, H (added by upstream) goes and R takes H's token settings.
	if chosen != h {
		var desired map[string]any
		var kept []any
		for _, vol := range arr(spec["volumes"]) {
			if str(obj(vol)["name"]) == h {
				desired = obj(vol)
				continue
			}
			kept = append(kept, vol)
		}
		for i, vol := range kept {
			if str(obj(vol)["name"]) != chosen || desired == nil {
				continue
			}
			kept[i] = adoptVolume(obj(vol), desired, wholesale)
		}
		spec["volumes"] = kept
	}

	// Mounts, container by container, from the input's mounts (upstream's changed only the H mount).
	// Containers are matched by list, name and occurrence of the name (names may repeat; the
	// proxy sidecar and init container are new names).
	inByName := map[string][]any{}
	for _, list := range []string{"initContainers", "containers"} {
		seen := map[string]int{}
		for _, c := range arr(inSpec[list]) {
			n := str(obj(c)["name"])
			inByName[fmt.Sprintf("%s/%s#%d", list, n, seen[n])] = arr(obj(c)["volumeMounts"])
			seen[n]++
		}
	}
	for _, list := range []string{"initContainers", "containers"} {
		seen := map[string]int{}
		for _, c := range arr(spec[list]) {
			cm := obj(c)
			name := str(cm["name"])
			key := fmt.Sprintf("%s/%s#%d", list, name, seen[name])
			seen[name]++
			if skip[name] {
				continue
			}
			before, existed := inByName[key]
			if !existed { // injected now (the proxy): upstream's mount, renamed
				for _, m := range arr(cm["volumeMounts"]) {
					if str(obj(m)["name"]) == h {
						obj(m)["name"] = chosen
					}
				}
				continue
			}
			mounts := arr(deepCopy(before))
			at := -1
			for i, m := range mounts {
				if samePath(str(obj(m)["mountPath"]), tokenMountPath) {
					at = i
					break
				}
			}
			switch {
			case at >= 0 && str(obj(mounts[at])["name"]) == chosen:
				mounts[at] = map[string]any{"name": chosen, "mountPath": tokenMountPath, "readOnly": true}
			case at >= 0 && isReserved(str(obj(mounts[at])["name"])) && hasVolume(spec, str(obj(mounts[at])["name"])):
				// an earlier injection's mount, of a volume the pod has
			case at >= 0 && isReserved(str(obj(mounts[at])["name"])):
				return nil, false // a mount of a missing volume: not what this row covers
			case at >= 0: // a user volume at the token path: token-path-taken, not this row
				return nil, false
			default:
				moved := false
				for i, m := range mounts {
					if str(obj(m)["name"]) == chosen {
						mounts[i] = map[string]any{"name": chosen, "mountPath": tokenMountPath, "readOnly": true}
						moved = true
						break
					}
				}
				if !moved {
					mounts = append(mounts, map[string]any{"name": chosen, "mountPath": tokenMountPath, "readOnly": true})
				}
			}
			if len(mounts) == 0 {
				delete(cm, "volumeMounts")
			} else {
				cm["volumeMounts"] = mounts
			}
		}
	}
	return model, true
}

func hasVolume(spec map[string]any, name string) bool {
	for _, v := range arr(spec["volumes"]) {
		if str(obj(v)["name"]) == name {
			return true
		}
	}
	return false
}

// adoptVolume is the earlier token volume given this admission's token settings: its token source's
// path, lifetime and audience are set, other projections the new volume has (the custom endpoint's
// CA) are added when nothing writes their path; a volume that is not a projection with a token
// source, or any volume when wholesale, is replaced by the desired one under the earlier name.
func adoptVolume(old, desired map[string]any, wholesale bool) map[string]any {
	dproj := obj(desired["projected"])
	dsrc := arr(dproj["sources"])
	oproj := obj(old["projected"])
	osrc, ok := oproj["sources"].([]any)
	tokenAt := -1
	if ok {
		for i, s := range osrc {
			if obj(obj(s)["serviceAccountToken"]) != nil {
				tokenAt = i
				break
			}
		}
	}
	if wholesale || tokenAt < 0 || len(dsrc) == 0 {
		return map[string]any{"name": old["name"], "projected": deepCopy(dproj)}
	}
	out := obj(deepCopy(old))
	proj := obj(out["projected"])
	srcs := arr(proj["sources"])
	sat := obj(obj(srcs[tokenAt])["serviceAccountToken"])
	for k, x := range obj(obj(dsrc[0])["serviceAccountToken"]) {
		sat[k] = x
	}
	writes := func(s any, p string) bool {
		m := obj(s)
		for _, kind := range []string{"configMap", "secret"} {
			for _, it := range arr(obj(m[kind])["items"]) {
				if str(obj(it)["path"]) == p {
					return true
				}
			}
		}
		return str(obj(m["clusterTrustBundle"])["path"]) == p || str(obj(m["serviceAccountToken"])["path"]) == p
	}
	for _, extra := range dsrc[1:] {
		p := ""
		for _, it := range arr(obj(obj(extra)["configMap"])["items"]) {
			p = str(obj(it)["path"])
		}
		if ctb := obj(obj(extra)["clusterTrustBundle"]); ctb != nil {
			p = str(ctb["path"])
		}
		found := false
		for _, s := range srcs {
			found = found || writes(s, p)
		}
		if !found {
			srcs = append(srcs, deepCopy(extra))
		}
	}
	proj["sources"] = srcs
	return out
}

// droppedByTypedRoundTrip: the field at p exists in the input but not after decoding the input into
// upstream's corev1.Pod (k8s.io/api v0.31) and encoding it again.
func droppedByTypedRoundTrip(pod any, p path) bool {
	raw, err := json.Marshal(pod)
	if err != nil {
		return false
	}
	rt, err := typedRoundTrip(raw)
	if err != nil {
		return false
	}
	_, ok := lookup(rt, p)
	return !ok
}
