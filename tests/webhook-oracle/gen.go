package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"

	wh "github.com/Azure/azure-workload-identity/pkg/webhook"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// The generator: pod i of a seed is always the same pod (its own PCG stream), so a failing case is
// reproduced by its id alone.

var (
	containerNames = []string{"app", "web", "worker", "sidecar", "init", "setup", "migrate", "logger", "istio-proxy", "db"}
	portValues     = []string{"8000", "8080", "9090", "+9091", "08000", "1", "65535", "invalid", "", " 80", "0", "-1",
		"65536", "2147483647", "2147483648", "1e3", "0x1F", "८०"}
	proxyValues  = []string{"true", "false", "", "yes"}
	customValues = []string{"true", "TRUE", "True", "false", "yes", ""}
	azureEnv     = []string{wh.AzureClientIDEnvVar, wh.AzureTenantIDEnvVar, wh.AzureFederatedTokenFileEnvVar,
		wh.AzureAuthorityHostEnvVar, wh.AzureKubernetesTokenProxyEnvVar, wh.AzureKubernetesSNINameEnvVar,
		wh.AzureKubernetesCAFileEnvVar, wh.AzureKubernetesCADataEnvVar}
	validExpirations = []string{"3600", "4800", "7200", "86400", "+4800", "04800"}
	skipSpaces       = []string{"", " ", "  ", "\t", "\u00a0", "\u2003", "\n"}
)

type gen struct {
	r *rand.Rand
}

func (g gen) p(prob float64) bool { return g.r.Float64() < prob }
func (g gen) pick(xs []string) string {
	return xs[g.r.IntN(len(xs))]
}
func (g gen) n(weights ...int) int {
	total := 0
	for _, w := range weights {
		total += w
	}
	x := g.r.IntN(total)
	for i, w := range weights {
		if x < w {
			return i
		}
		x -= w
	}
	return len(weights) - 1
}

func generated(seed uint64, i int, pool []saSpec) Case {
	g := gen{r: rand.New(rand.NewPCG(seed, uint64(i)))}
	pod := &corev1.Pod{}
	if g.p(0.15) {
		pod.GenerateName = fmt.Sprintf("gen-%d-", i)
		if g.p(0.2) {
			pod.GenerateName = "web-7d4b9c8f6-"
		}
	} else {
		pod.Name = fmt.Sprintf("pod-%d", i)
		if g.p(0.02) {
			pod.Name = fmt.Sprintf("Pod.%d_x", i)
		}
	}
	switch g.n(60, 35, 5) {
	case 1:
		pod.Namespace = "(run)" // replaced by the run's namespace
	case 2:
		pod.Namespace = "elsewhere"
	}
	switch g.n(90, 5, 5) {
	case 0:
		pod.Labels = map[string]string{wh.UseWorkloadIdentityLabel: "true"}
	case 1:
		pod.Labels = map[string]string{wh.UseWorkloadIdentityLabel: "false"}
	}
	if g.p(0.5) {
		if pod.Labels == nil {
			pod.Labels = map[string]string{}
		}
		pod.Labels["app"] = g.pick(containerNames)
	}
	ann := map[string]string{}

	// Containers.
	used := map[string]int{}
	name := func(list string) string {
		n := g.pick(containerNames)
		if g.p(0.03) {
			if list == "init" {
				return wh.ProxyInitContainerName
			}
			return wh.ProxySidecarContainerName
		}
		used[n]++
		if used[n] > 1 && !g.p(0.03) { // a duplicate name now and then
			n = fmt.Sprintf("%s-%d", n, used[n])
		}
		return n
	}
	mk := func(list string) corev1.Container {
		c := corev1.Container{Name: name(list), Image: "registry.invalid/img:" + fmt.Sprint(g.r.IntN(9))}
		for k := g.n(45, 25, 15, 10, 5); k > 0; k-- {
			switch g.n(50, 35, 15) {
			case 0:
				c.Env = append(c.Env, env(fmt.Sprintf("VAR_%d", g.r.IntN(5)), fmt.Sprint(g.r.IntN(100))))
			case 1:
				c.Env = append(c.Env, env(g.pick(azureEnv), g.pick([]string{"preset", "", "https://preset.invalid/"})))
			case 2:
				c.Env = append(c.Env, corev1.EnvVar{Name: g.pick(azureEnv), ValueFrom: &corev1.EnvVarSource{
					FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}})
			}
		}
		if g.p(0.1) {
			c.EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}}
		}
		if g.p(0.2) {
			c.Args = []string{"--flag", fmt.Sprint(g.r.IntN(10))}
			c.Ports = []corev1.ContainerPort{{ContainerPort: int32(1 + g.r.IntN(60000))}}
			c.Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}
		}
		if list == "init" && g.p(0.1) {
			c.RestartPolicy = ptr.To(corev1.ContainerRestartPolicyAlways)
		}
		return c
	}
	for k := g.n(50, 30, 15, 5); k > 0; k-- {
		pod.Spec.InitContainers = append(pod.Spec.InitContainers, mk("init"))
	}
	for k := g.n(2, 50, 30, 13, 5); k > 0; k-- {
		pod.Spec.Containers = append(pod.Spec.Containers, mk("main"))
	}
	all := func() []*corev1.Container {
		var out []*corev1.Container
		for i := range pod.Spec.InitContainers {
			out = append(out, &pod.Spec.InitContainers[i])
		}
		for i := range pod.Spec.Containers {
			out = append(out, &pod.Spec.Containers[i])
		}
		return out
	}
	some := func() *corev1.Container {
		cs := all()
		if len(cs) == 0 {
			return nil
		}
		return cs[g.r.IntN(len(cs))]
	}

	// User volumes and their mounts.
	for k := g.n(40, 30, 20, 10); k > 0; k-- {
		v := corev1.Volume{Name: fmt.Sprintf("vol-%d", k)}
		switch g.n(40, 25, 15, 20) {
		case 0:
			v.EmptyDir = &corev1.EmptyDirVolumeSource{}
		case 1:
			v.ConfigMap = &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}, DefaultMode: ptr.To[int32](420)}
		case 2:
			v.Secret = &corev1.SecretVolumeSource{SecretName: "s", DefaultMode: ptr.To[int32](420)}
		case 3:
			v.Projected = &corev1.ProjectedVolumeSource{DefaultMode: ptr.To[int32](420), Sources: []corev1.VolumeProjection{
				{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}}}}},
			}}
			if g.p(0.3) { // another token, for another audience
				v.Projected.Sources = append(v.Projected.Sources, corev1.VolumeProjection{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
					Path: "vault-token", Audience: "vault", ExpirationSeconds: ptr.To[int64](600)}})
			}
		}
		pod.Spec.Volumes = append(pod.Spec.Volumes, v)
		if c := some(); c != nil {
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: v.Name, MountPath: "/mnt/" + v.Name, ReadOnly: g.p(0.5)})
		}
	}

	// The token volume's situations: already there under this pod's name, mounted, injected earlier
	// under another name, a user volume at the token path, the v1.5 layout.
	h := volumeName(seenName(pod))
	if g.p(0.04) {
		var v corev1.Volume
		switch g.n(30, 15, 15, 10, 10, 10, 10) {
		case 0:
			v = desiredVolume(h, 3600, wh.DefaultAudience, true)
		case 1:
			v = desiredVolume(h, 3600, wh.DefaultAudience, false)
		case 2:
			v = desiredVolume(h, 3600, "aud", false)
			v.Projected.Sources[0].ServiceAccountToken.Path = "my-projected-volume"
		case 3:
			v = corev1.Volume{Name: h, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
		case 4:
			v = desiredVolume(h, 7200, wh.DefaultAudience, true)
			v.Projected.Sources = append(v.Projected.Sources, corev1.VolumeProjection{ConfigMap: &corev1.ConfigMapProjection{
				LocalObjectReference: corev1.LocalObjectReference{Name: "extra"}, Items: []corev1.KeyToPath{{Key: "k", Path: "extra/k"}}}})
		case 5:
			v = corev1.Volume{Name: h, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "only-cm"}}}}}}}
		case 6:
			v = desiredVolume(h, 3600, wh.DefaultAudience, false)
			v.Projected.DefaultMode = ptr.To[int32](256)
		}
		pod.Spec.Volumes = append(pod.Spec.Volumes, v)
	}
	if g.p(0.03) {
		if c := some(); c != nil {
			// (with the volume: a mount of a missing volume is refused by the apiserver anyway)
			has := false
			for _, v := range pod.Spec.Volumes {
				has = has || v.Name == h
			}
			if !has {
				pod.Spec.Volumes = append(pod.Spec.Volumes, desiredVolume(h, 3600, wh.DefaultAudience, true))
			}
			m := corev1.VolumeMount{Name: h, MountPath: tokenMountPath}
			switch g.n(35, 25, 15, 15, 10) {
			case 1:
				m.MountPath = "/etc/token"
			case 2:
				m.SubPath = "token"
			case 3:
				m.MountPath = tokenMountPath + "/"
			case 4:
				m.ReadOnly = true
				m.MountPropagation = ptr.To(corev1.MountPropagationNone)
			}
			c.VolumeMounts = append(c.VolumeMounts, m)
		}
	}
	if g.p(0.02) {
		if c := some(); c != nil {
			pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: "user-secrets", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
			path := tokenMountPath
			if g.p(0.3) {
				path += "/"
			}
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "user-secrets", MountPath: path})
		}
	}
	if g.p(0.03) { // injected by v1.5 (or the AKS add-on) before
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: legacyName, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			DefaultMode: ptr.To[int32](420),
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Path: legacyName, Audience: wh.DefaultAudience, ExpirationSeconds: ptr.To[int64](3600)}}}}}})
		for _, c := range all() {
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: legacyName, MountPath: legacyMount, ReadOnly: true})
			c.Env = append(c.Env, env(wh.AzureFederatedTokenFileEnvVar, legacyMount+"/"+legacyName))
		}
	}

	// Annotations.
	if g.p(0.2) {
		if g.p(0.5) {
			ann[wh.ServiceAccountTokenExpiryAnnotation] = g.pick(validExpirations)
		} else {
			ann[wh.ServiceAccountTokenExpiryAnnotation] = g.pick(expirationValues)
		}
	}
	var skip map[string]bool
	if g.p(0.25) {
		var parts []string
		skip = map[string]bool{}
		for _, c := range all() {
			if g.p(0.4) {
				parts = append(parts, g.pick(skipSpaces)+c.Name+g.pick(skipSpaces))
				skip[c.Name] = true
			}
		}
		if g.p(0.3) {
			parts = append(parts, "not-a-container")
		}
		if g.p(0.1) {
			parts = append(parts, "")
		}
		ann[wh.SkipContainersAnnotation] = strings.Join(parts, ";")
	}
	if g.p(0.15) {
		ann[wh.InjectProxySidecarAnnotation] = g.pick(proxyValues)
		if g.p(0.6) {
			ann[wh.ProxySidecarPortAnnotation] = g.pick(portValues)
		}
	} else if g.p(0.02) {
		ann[wh.ProxySidecarPortAnnotation] = g.pick(portValues) // a port without the proxy: ignored
	}
	if g.p(0.3) {
		k := customKey
		if g.p(0.3) {
			k = customKeyUpper
		}
		ann[k] = g.pick(customValues)
	}
	if g.p(0.3) {
		ann["example.com/note"] = "x"
	}
	if len(ann) > 0 {
		pod.Annotations = ann
	}

	if g.p(0.06) { // an earlier admission under another name (renamed pod, copied spec: upstream #1744)
		earlier := fmt.Sprintf("earlier-%d", i)
		if g.p(0.3) {
			earlier = "web-7d4b9c8f6- (prefix)"
		}
		partial := skip
		if g.p(0.3) && len(all()) > 0 { // a container added since
			partial = map[string]bool{all()[0].Name: true}
		}
		injectedAs(earlier, g.pick([]string{"tenant-before", ""}), "https://login.microsoftonline.com/", partial)(pod)
	}

	// The ServiceAccount.
	switch g.n(10, 1, 1, 88) {
	case 0:
	case 1:
		pod.Spec.ServiceAccountName = "sa-missing"
	case 2:
		pod.Spec.ServiceAccountName = g.pick([]string{"Bad_Name", "UPPER", "../secrets", "a/b", "-x", strings.Repeat("a", 254)})
	default:
		// Mostly ServiceAccounts that admit the pod, so that most pods are mutated.
		if g.p(0.7) {
			ok := admitting(pool)
			pod.Spec.ServiceAccountName = ok[g.r.IntN(len(ok))].Name
		} else {
			pod.Spec.ServiceAccountName = pool[g.r.IntN(len(pool))].Name
		}
	}
	if g.p(0.05) {
		pod.Spec.HostNetwork = true
	}
	if g.p(0.5) {
		pod.Spec.AutomountServiceAccountToken = ptr.To(false)
	}
	if g.p(0.1) {
		pod.Spec.NodeSelector = map[string]string{"kubernetes.io/os": "linux"}
	}
	if g.p(0.05) {
		pod.CreationTimestamp = metav1.Unix(1700000000, 0)
	}

	obj := canonical(pod)
	if g.p(0.05) {
		obj = withFutureFields(g, obj)
	}
	return Case{ID: fmt.Sprintf("gen/%d", i), Object: obj, V1beta1: g.p(0.1)}
}

// withFutureFields adds fields that Kubernetes added after k8s.io/api v0.31 (upstream's), as a
// newer apiserver sends them.
func withFutureFields(g gen, raw []byte) []byte {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		panic(err)
	}
	spec := obj(m["spec"])
	switch g.n(1, 1, 1, 1) {
	case 0:
		spec["hostnameOverride"] = "custom-host" // 1.34
	case 1:
		spec["resources"] = map[string]any{"limits": map[string]any{"cpu": "1"}} // pod-level resources, 1.32
	case 2:
		for _, c := range arr(spec["containers"]) {
			obj(c)["restartPolicyRules"] = []any{map[string]any{"action": "Restart", "exitCodes": map[string]any{"operator": "In", "values": []any{42}}}} // 1.34
		}
	case 3:
		for _, c := range arr(spec["initContainers"]) {
			obj(c)["lifecycle"] = map[string]any{"stopSignal": "SIGUSR1"} // 1.33
		}
		spec["hostnameOverride"] = "h"
	}
	out, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return out
}

// admitting are the pool's ServiceAccounts without an expiration annotation or with a valid one.
func admitting(pool []saSpec) []saSpec {
	var out []saSpec
	for _, sa := range pool {
		v, ok := sa.Annotations[wh.ServiceAccountTokenExpiryAnnotation]
		valid := !ok || v == ""
		for _, x := range validExpirations {
			valid = valid || v == x
		}
		if valid {
			out = append(out, sa)
		}
	}
	return out
}
