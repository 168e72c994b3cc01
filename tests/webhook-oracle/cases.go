package main

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"

	wh "github.com/Azure/azure-workload-identity/pkg/webhook"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Case is one pod submitted to both webhooks.
type Case struct {
	ID     string // "e2e/…" (tests/e2e/test_webhook.py), "unit/…" (upstream's webhook_test.go), "gen/N"
	Object []byte // request.object as sent
	// The AdmissionReview version (v1 unless set).
	V1beta1 bool
	// LateSA: the runner creates this ServiceAccount (suffixed with the profile) just before the
	// request and points the pod at it, so neither side has it cached yet (upstream's "not in cache").
	LateSA bool
	// Namespace of the request ("" = the run's namespace).
	Namespace string
}

const (
	tokenMountPath = wh.VolumeMountPath // /var/run/secrets/azure/wi
	legacyName     = "azure-identity-token"
	legacyMount    = "/var/run/secrets/azure/tokens"
	customKey      = "azure.workload.identity/use-identity-binding"
	customKeyUpper = "azure.workload.identity/use-Identity-Binding"
)

// volumeName is upstream's buildVolumeName (unexported there): the prefix and 30 hex digits of
// SHA-256(pod name).
func volumeName(podName string) string {
	return wh.ProjectedVolumeNamePrefix + fmt.Sprintf("%x", sha256.Sum256([]byte(podName)))[:30]
}

// seenName is the name upstream hashes: metadata.name, or generateName + " (prefix)".
func seenName(pod *corev1.Pod) string {
	if pod.Name != "" {
		return pod.Name
	}
	return pod.GenerateName + " (prefix)"
}

// saSpec is one ServiceAccount of the pool created in the run's namespace.
type saSpec struct {
	Name        string
	Annotations map[string]string
}

const (
	clientA = "11111111-aaaa-4aaa-8aaa-111111111111"
	clientB = "22222222-bbbb-4bbb-8bbb-222222222222"
	tenantB = "33333333-cccc-4ccc-8ccc-333333333333"
)

// expirationValues are annotation values for the token lifetime: valid, out of range, unparsable,
// and texts whose Go quoting in the denial is not trivial.
var expirationValues = []string{
	"3600", "4800", "7200", "86400", "3599", "86401", "100", "0", "-3600", "+4800", "04800",
	"invalid", "3600s", "", " 3600", "3600 ", "1_000", "99999999999999999999", "-99999999999999999999",
	"3.6e3", "0x1000", "３６００", "3600\u00a0", "36\u00ad00", "\u200b3600", "36\"00", "36\\00", "\t3600",
	"9223372036854775807", "9223372036854775808", "\ue000", "36\u2028", "\u0085",
}

func saPool() []saSpec {
	exp := wh.ServiceAccountTokenExpiryAnnotation
	cid, tid := wh.ClientIDAnnotation, wh.TenantIDAnnotation
	pool := []saSpec{
		{"sa-plain", nil},
		{"sa-client", map[string]string{cid: clientA}},
		{"sa-client-tenant", map[string]string{cid: clientB, tid: tenantB}},
		{"sa-tenant-empty", map[string]string{cid: clientA, tid: ""}},
		{"sa-client-empty", map[string]string{cid: ""}},
		{"sa-tenant-only", map[string]string{tid: tenantB}},
		{"sa-odd-values", map[string]string{cid: "client id with spaces/ünïcode", tid: "tenant\twith\ttabs"}},
		{"sa-noise", map[string]string{"example.com/other": "x", cid: clientB}},
		// test_webhook.py's ServiceAccounts.
		{"app-sa", map[string]string{cid: clientA}},
		{"sa-7200", map[string]string{cid: clientA, exp: "7200"}},
		{"sa-empty", map[string]string{exp: ""}},
		{"other-tenant", map[string]string{tid: "11111111-2222-3333-4444-555555555555"}},
		{"sa-100-service-account", map[string]string{exp: "100"}},
		{"sa-invalid-service-account", map[string]string{exp: "invalid"}},
		// webhook_test.go's ServiceAccount.
		{"sa", map[string]string{cid: "clientID", exp: "4800"}},
	}
	for i, v := range expirationValues {
		pool = append(pool, saSpec{fmt.Sprintf("sa-exp-%02d", i), map[string]string{cid: clientA, exp: v}})
	}
	return pool
}

func canonical(pod *corev1.Pod) []byte {
	pod.APIVersion, pod.Kind = "v1", "Pod"
	b, err := json.Marshal(pod)
	if err != nil {
		panic(err)
	}
	return b
}

func ctr(name string, env ...corev1.EnvVar) corev1.Container {
	return corev1.Container{Name: name, Image: "registry.invalid/" + name + ":1", Env: env}
}

func env(name, value string) corev1.EnvVar { return corev1.EnvVar{Name: name, Value: value} }

type podOpt func(*corev1.Pod)

func newPod(name string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{wh.UseWorkloadIdentityLabel: "true"}},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken: ptr.To(false),
			Containers:                   []corev1.Container{ctr("app")},
		},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func withSA(sa string) podOpt { return func(p *corev1.Pod) { p.Spec.ServiceAccountName = sa } }
func withAnn(kv ...string) podOpt {
	return func(p *corev1.Pod) {
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			p.Annotations[kv[i]] = kv[i+1]
		}
	}
}
func withContainers(cs ...corev1.Container) podOpt {
	return func(p *corev1.Pod) { p.Spec.Containers = cs }
}
func withInit(cs ...corev1.Container) podOpt {
	return func(p *corev1.Pod) { p.Spec.InitContainers = cs }
}
func withNamespace(ns string) podOpt { return func(p *corev1.Pod) { p.Namespace = ns } }

// desiredVolume is the token volume as upstream writes it (default audience), plus the
// apiserver's defaultMode when defaulted.
func desiredVolume(name string, exp int64, aud string, defaulted bool) corev1.Volume {
	v := corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
			Path: wh.TokenFilePath, ExpirationSeconds: ptr.To(exp), Audience: aud,
		}}},
	}}}
	if defaulted {
		v.Projected.DefaultMode = ptr.To[int32](420)
	}
	return v
}

// injectedAs gives the pod what an earlier admission under another name left: the token volume of
// that name (as the apiserver stored it), its mount and the variables in every container.
func injectedAs(earlier string, tenant, authority string, skip map[string]bool) podOpt {
	return func(p *corev1.Pod) {
		name := volumeName(earlier)
		p.Spec.Volumes = append(p.Spec.Volumes, desiredVolume(name, 3600, wh.DefaultAudience, true))
		add := func(cs []corev1.Container) {
			for i := range cs {
				if skip[cs[i].Name] {
					continue
				}
				have := map[string]bool{}
				for _, e := range cs[i].Env {
					have[e.Name] = true
				}
				for _, e := range []corev1.EnvVar{
					env(wh.AzureClientIDEnvVar, clientA), env(wh.AzureTenantIDEnvVar, tenant),
					env(wh.AzureFederatedTokenFileEnvVar, tokenMountPath+"/"+wh.TokenFilePath),
					env(wh.AzureAuthorityHostEnvVar, authority),
				} {
					if !have[e.Name] && e.Value != "" {
						cs[i].Env = append(cs[i].Env, e)
					}
				}
				cs[i].VolumeMounts = append(cs[i].VolumeMounts, corev1.VolumeMount{Name: name, MountPath: tokenMountPath, ReadOnly: true})
			}
		}
		add(p.Spec.InitContainers)
		add(p.Spec.Containers)
	}
}

func namedCases() []Case {
	var cases []Case
	add := func(id string, pod *corev1.Pod) {
		cases = append(cases, Case{ID: id, Object: canonical(pod)})
	}
	exp := wh.ServiceAccountTokenExpiryAnnotation
	skip := wh.SkipContainersAnnotation
	proxy := wh.InjectProxySidecarAnnotation
	port := wh.ProxySidecarPortAnnotation

	// tests/e2e/test_webhook.py, pod by pod.
	add("e2e/labelled_pod_is_mutated", newPod("demo", withSA("app-sa"), withContainers(ctr("app", env("EXISTING", "kept")))))
	add("e2e/init_containers_are_mutated_too", newPod("init-too", withSA("app-sa"),
		withInit(ctr("init-1"), ctr("init-2", env("A", "1"))), withContainers(ctr("main"), ctr("sidecar"))))
	add("e2e/skip_containers", newPod("skipping", withSA("app-sa"), withAnn(skip, " init-skip ;sidecar-skip"),
		withInit(ctr("init-skip"), ctr("init")), withContainers(ctr("main"), ctr("sidecar-skip"), ctr("sidecar"))))
	gen := newPod("", withSA("app-sa"))
	gen.GenerateName = "web-7d4b9c8f6-"
	add("e2e/generate_name_pod_is_mutated", gen)
	add("e2e/default_service_account", newPod("default-sa"))
	add("e2e/token_expiration_from_service_account", newPod("exp-sa", withSA("sa-7200")))
	add("e2e/token_expiration_pod_wins", newPod("exp-pod", withSA("sa-7200"), withAnn(exp, "86400")))
	add("e2e/token_expiration_empty_is_unset", newPod("exp-empty", withSA("sa-empty")))
	add("e2e/tenant_annotation_and_missing_client_id", newPod("tenant", withSA("other-tenant")))
	add("e2e/existing_variables_are_not_replaced", newPod("preset", withSA("app-sa"), withContainers(corev1.Container{
		Name: "app", Image: "registry.invalid/app:1",
		Env: []corev1.EnvVar{env("AZURE_CLIENT_ID", "chosen-by-the-app"), {Name: "AZURE_AUTHORITY_HOST",
			ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "authority"}}}},
	})))
	add("e2e/resubmitting_a_mutated_pod/first", newPod("first", withSA("app-sa")))
	add("e2e/resubmitting_a_mutated_pod/again", newPod("again", withSA("app-sa"), injectedAs("first", "tenant-of-first", "https://login.microsoftonline.com/", nil)))
	unlabelled := newPod("unlabelled", withSA("app-sa"), withInit(ctr("init")))
	unlabelled.Labels = map[string]string{"app": "plain"}
	add("e2e/unlabelled_pod_reaching_the_handler", unlabelled)
	falseLabel := newPod("label-false", withSA("app-sa"))
	falseLabel.Labels = map[string]string{wh.UseWorkloadIdentityLabel: "false"}
	add("e2e/label_false_reaching_the_handler", falseLabel)
	for _, where := range []string{"service-account", "pod"} {
		for _, v := range []string{"100", "invalid"} {
			sa := "sa-" + v + "-" + where
			if where == "pod" {
				add("e2e/bad_expiration_denied/"+where+"/"+v, newPod("bad-"+v, withSA("sa-plain"), withAnn(exp, v)))
			} else {
				add("e2e/bad_expiration_denied/"+where+"/"+v, newPod("bad-"+v, withSA(sa)))
			}
		}
	}
	add("e2e/expiration_out_of_range_above", newPod("above", withSA("app-sa"), withAnn(exp, "86401")))

	// Upstream's pkg/webhook/webhook_test.go (v1.6.0), behaviour by behaviour, through Handle.
	add("unit/TestGetServiceAccountTokenExpiration/pod_annotation_invalid", newPod("pod", withSA("sa-plain"), withAnn(exp, "3600s")))
	add("unit/TestGetServiceAccountTokenExpiration/sa_annotation_invalid", newPod("pod", withSA(poolName("3600s"))))
	add("unit/TestGetServiceAccountTokenExpiration/below_3600", newPod("pod", withSA(poolName("3599"))))
	add("unit/TestGetServiceAccountTokenExpiration/above_86400", newPod("pod", withSA(poolName("86401"))))
	add("unit/TestGetServiceAccountTokenExpiration/valid_on_sa", newPod("pod", withSA(poolName("4800"))))
	add("unit/TestGetServiceAccountTokenExpiration/pod_preferred", newPod("pod", withSA(poolName("4800")), withAnn(exp, "4000")))
	add("unit/TestGetClientID/not_present", newPod("pod", withSA("sa-plain")))
	add("unit/TestGetClientID/present", newPod("pod", withSA("sa-client")))
	add("unit/TestGetTenantID/annotation_defined", newPod("pod", withSA("sa-client-tenant")))
	add("unit/TestGetTenantID/annotation_not_defined", newPod("pod", withSA("sa-client")))
	add("unit/TestGetTenantID/annotation_empty", newPod("pod", withSA("sa-tenant-empty")))
	add("unit/TestGetSkipContainers/none", newPod("pod", withSA("sa-client"), withContainers(ctr("container1"), ctr("container2"))))
	add("unit/TestGetSkipContainers/one", newPod("pod", withSA("sa-client"), withAnn(skip, "container1"), withContainers(ctr("container1"), ctr("container2"))))
	add("unit/TestGetSkipContainers/multiple", newPod("pod", withSA("sa-client"), withAnn(skip, "container1;container2"), withContainers(ctr("container1"), ctr("container2"), ctr("container3"))))
	add("unit/TestGetSkipContainers/extra_space", newPod("pod", withSA("sa-client"), withAnn(skip, "container1 ; container2"), withContainers(ctr("container1"), ctr("container2"), ctr("container3"))))
	add("unit/TestAddProjectedVolume/no_volumes", newPod("pod", withSA("sa-client")))
	withVol := func(v corev1.Volume) podOpt {
		return func(p *corev1.Pod) { p.Spec.Volumes = append(p.Spec.Volumes, v) }
	}
	add("unit/TestAddProjectedVolume/volume_already_exists", newPod("pod", withSA("sa-client"), withVol(desiredVolume(volumeName("pod"), 3600, wh.DefaultAudience, false))))
	add("unit/TestAddProjectedVolume/volume_already_exists_defaulted", newPod("pod", withSA("sa-client"), withVol(desiredVolume(volumeName("pod"), 3600, wh.DefaultAudience, true))))
	overridden := desiredVolume(volumeName("pod"), 3600, "aud", false)
	overridden.Projected.Sources[0].ServiceAccountToken.Path = "my-projected-volume"
	add("unit/TestAddProjectedVolume/overridden_with_desired_audience", newPod("pod", withSA("sa-client"), withVol(overridden)))
	add("unit/TestAddEnvironmentVariables/added", newPod("pod", withSA("sa-client"), withContainers(ctr("cont1"))))
	add("unit/TestAddEnvironmentVariables/existing_not_replaced", newPod("pod", withSA("sa-client"), withContainers(ctr("cont1",
		env(wh.AzureClientIDEnvVar, "myClientID"), env(wh.AzureTenantIDEnvVar, "myTenantID"),
		env(wh.AzureFederatedTokenFileEnvVar, tokenMountPath+"/"+wh.TokenFilePath), env(wh.AzureAuthorityHostEnvVar, "https://login.microsoftonline.com/")))))
	add("unit/TestAddEnvironmentVariables/added_to_existing_list", newPod("pod", withSA("sa-client"), withContainers(ctr("cont1", env("MY_ENV_VAR", "test")))))
	add("unit/TestAddEnvironmentVariables/not_added_when_empty", newPod("pod", withSA("sa-tenant-empty"), withContainers(ctr("cont1"))))
	add("unit/TestAddProjectServiceAccountTokenVolumeMount/added", newPod("pod", withSA("sa-client"), withContainers(ctr("cont1"))))
	withMount := ctr("cont1")
	withMount.VolumeMounts = []corev1.VolumeMount{{Name: "my-volume-mount", MountPath: "/var/run/pods"}}
	add("unit/TestAddProjectServiceAccountTokenVolumeMount/added_to_existing", newPod("pod", withSA("sa-client"), withContainers(withMount),
		withVol(corev1.Volume{Name: "my-volume-mount", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})))
	add("unit/TestHandle/service_account_in_cache", newPod("pod", withSA("sa"), withNamespace("ns1"), withInit(ctr("init-container")), withContainers(ctr("container"))))
	cases = append(cases, Case{ID: "unit/TestHandle/service_account_not_in_cache", LateSA: true,
		Object: canonical(newPod("pod", withSA("late"), withInit(ctr("init-container")), withContainers(ctr("container"))))})
	add("unit/TestHandle/default_service_account", newPod("pod", withInit(ctr("init-container")), withContainers(ctr("container"))))
	noLabel := newPod("pod", withSA("sa"), withInit(ctr("init-container")), withContainers(ctr("container")))
	noLabel.Labels = nil
	add("unit/TestHandle/no_label", noLabel)
	// Verbatim from TestHandle (#1312: an old typed round trip dropped the init container's restartPolicy).
	cases = append(cases, Case{ID: "unit/TestHandle/restart_policy_in_init_container", Object: []byte(
		`{"metadata":{"name":"pod","namespace":"ns1","creationTimestamp":null,"labels":{"azure.workload.identity/use":"true"}},` +
			`"spec":{"serviceAccountName":"sa","initContainers":[{"name":"init-container","image":"init-container-image","restartPolicy":"Always"}],` +
			`"containers":[{"name":"container","image":"image","resources":{}}]}}`)})
	add("unit/TestMutateContainers/no_containers", newPod("pod", withSA("sa-client"), withContainers()))
	add("unit/TestMutateContainers/one_container", newPod("pod", withSA("sa-client"), withContainers(ctr("cont1"))))
	add("unit/TestMutateContainers/one_skipped", newPod("pod", withSA("sa-client"), withAnn(skip, "cont2"), withContainers(ctr("cont1"), ctr("cont2"))))
	add("unit/TestInjectProxyInitContainer/no_init_containers", newPod("pod", withSA("sa-client"), withAnn(proxy, "true")))
	add("unit/TestInjectProxyInitContainer/manually_injected", newPod("pod", withSA("sa-client"), withAnn(proxy, "true"),
		withInit(corev1.Container{Name: wh.ProxyInitContainerName, Image: "my-proxy-init"})))
	add("unit/TestInjectProxyInitContainer/existing_init_containers", newPod("pod", withSA("sa-client"), withAnn(proxy, "true"), withInit(ctr("init1"))))
	add("unit/TestInjectProxySidecarContainer/no_containers", newPod("pod", withSA("sa-client"), withAnn(proxy, "true"), withContainers()))
	add("unit/TestInjectProxySidecarContainer/manually_injected", newPod("pod", withSA("sa-client"), withAnn(proxy, "true"),
		withContainers(corev1.Container{Name: wh.ProxySidecarContainerName, Image: "my-proxy"}, ctr("app"))))
	add("unit/TestInjectProxySidecarContainer/existing_containers", newPod("pod", withSA("sa-client"), withAnn(proxy, "true"), withContainers(ctr("cont1"), ctr("cont2"))))
	add("unit/TestShouldInjectProxySidecar/not_annotated", newPod("pod", withSA("sa-client")))
	add("unit/TestShouldInjectProxySidecar/annotated_true", newPod("pod", withSA("sa-client"), withAnn(proxy, "true")))
	add("unit/TestShouldInjectProxySidecar/annotated_false_is_presence", newPod("pod", withSA("sa-client"), withAnn(proxy, "false")))
	add("unit/TestGetProxyPort/no_port_annotation", newPod("pod", withSA("sa-client"), withAnn(proxy, "true", "other", "x")))
	add("unit/TestGetProxyPort/8080", newPod("pod", withSA("sa-client"), withAnn(proxy, "true", port, "8080")))
	add("unit/TestGetProxyPort/invalid", newPod("pod", withSA("sa-client"), withAnn(proxy, "true", port, "invalid")))
	cases = append(cases, Case{ID: "unit/TestHandleError/failed_to_decode_pod", Object: []byte(`"invalid"`)})
	add("unit/TestHandleError/service_account_not_found", newPod("pod", withSA("sa-missing")))
	hostNet := newPod("pod", withSA("sa"), withAnn(proxy, "true"))
	hostNet.Spec.HostNetwork = true
	add("unit/TestHandleError/host_network", hostNet)
	add("unit/TestHandleError/invalid_proxy_port", newPod("pod", withSA("sa"), withAnn(proxy, "true", port, "invalid")))
	add("unit/TestHandleError/invalid_sa_token_expiry", newPod("pod", withSA("sa"), withAnn(exp, "invalid")))

	// The custom token endpoint (upstream's e2e: suffix identity-binding), on every profile.
	add("unit/custom_endpoint/opted_in", newPod("pod", withSA("sa-client"), withAnn(customKey, "true")))
	add("unit/custom_endpoint/opted_in_upper", newPod("pod", withSA("sa-client"), withAnn(customKeyUpper, "TRUE")))
	add("unit/custom_endpoint/opted_out", newPod("pod", withSA("sa-client"), withAnn(customKey, "false")))
	add("unit/custom_endpoint/with_proxy", newPod("pod", withSA("sa-client"), withAnn(customKey, "True", proxy, "", port, "9000"),
		withInit(ctr("init1"))))

	// A few malformed requests (the apiserver never sends these; both must refuse them).
	for i, raw := range []string{`null`, `[]`, `{"spec":{"containers":"x"}}`, `{"metadata":{"annotations":{"a":1}}}`,
		`{"spec":{"containers":[{"name":"a","env":[{"name":1}]}]}}`, `{"spec":{"serviceAccountName":7}}`} {
		cases = append(cases, Case{ID: fmt.Sprintf("malformed/%d", i), Object: []byte(raw)})
	}
	// v1beta1 reviews.
	for _, c := range cases[:4] {
		cases = append(cases, Case{ID: c.ID + "/v1beta1", Object: c.Object, V1beta1: true})
	}
	return cases
}

// poolName is the pool ServiceAccount whose expiration annotation is v.
func poolName(v string) string {
	for i, x := range expirationValues {
		if x == v {
			return fmt.Sprintf("sa-exp-%02d", i)
		}
	}
	panic("no pool ServiceAccount with expiration " + v)
}
