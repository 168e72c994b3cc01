package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"time"

	wh "github.com/Azure/azure-workload-identity/pkg/webhook"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"monis.app/mlog"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Profile is one configuration of both webhooks: wid's process at URL was started with the flags and
// environment that mean what Env, Audience, CustomSuffix, CustomAudience and LogLevel mean upstream.
type Profile struct {
	Name string `json:"name"`
	// URL of wid's /mutate-v1-pod.
	URL string `json:"url"`
	// Upstream's environment (pkg/config: AZURE_TENANT_ID, AZURE_ENVIRONMENT, PROXY_IMAGE, ...).
	Env map[string]string `json:"env"`
	// Upstream's --audience, --custom-token-endpoint-annotation-suffix, --custom-token-endpoint-audience.
	Audience       string `json:"audience"`
	CustomSuffix   string `json:"custom_suffix"`
	CustomAudience string `json:"custom_audience"`
	// Upstream's --log-level (mlog): the injected proxy is told this level.
	LogLevel string `json:"log_level"`
	// How many generated pods, and their seed (0: the run's seed).
	Generated int    `json:"generated"`
	Seed      uint64 `json:"seed"`
}

// upstreamEnv are the variables pkg/config reads (with envconfig's CONFIG_ twins).
var upstreamEnv = []string{
	"AZURE_ENVIRONMENT", "AZURE_ENVIRONMENT_FILEPATH", "AZURE_TENANT_ID", "PROXY_IMAGE", "PROXY_INIT_IMAGE",
	"AZURE_KUBERNETES_TOKEN_PROXY", "AZURE_KUBERNETES_SNI_NAME", "AZURE_KUBERNETES_CA_DATA",
	"AZURE_KUBERNETES_CA_CONFIGMAP_NAME", "AZURE_KUBERNETES_CA_CTB_SIGNER_NAME", "AZURE_KUBERNETES_CA_CTB_LABEL_SELECTOR",
}

// apiClients are what upstream's manager hands NewPodMutator: a cache-backed client (a cluster-wide
// ServiceAccount informer, started on first use) and a direct API reader.
type apiClients struct {
	rest   *rest.Config
	scheme *runtime.Scheme
	cached client.Client
	reader client.Reader
	direct client.Client
}

func newAPIClients(ctx context.Context, cfg *rest.Config) (*apiClients, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := cache.New(cfg, cache.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		return nil, fmt.Errorf("the ServiceAccount cache did not sync")
	}
	direct, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	cached, err := client.New(cfg, client.Options{Scheme: scheme, Cache: &client.CacheOptions{Reader: c}})
	if err != nil {
		return nil, err
	}
	return &apiClients{rest: cfg, scheme: scheme, cached: cached, reader: direct, direct: direct}, nil
}

var envMu sync.Mutex

// newUpstream builds upstream's handler for a profile, exactly as cmd/webhook/main.go registers it.
func newUpstream(api *apiClients, p Profile) (http.Handler, error) {
	envMu.Lock()
	defer envMu.Unlock()
	for _, k := range upstreamEnv {
		_ = os.Unsetenv(k)
		_ = os.Unsetenv("CONFIG_" + k)
	}
	for k, v := range p.Env {
		if err := os.Setenv(k, v); err != nil {
			return nil, err
		}
	}
	m, err := wh.NewPodMutator(api.cached, api.reader, p.Audience, api.scheme, api.rest, p.CustomSuffix, p.CustomAudience)
	if err != nil {
		return nil, fmt.Errorf("upstream NewPodMutator (profile %s): %w", p.Name, err)
	}
	return &admission.Webhook{Handler: m}, nil
}

func setUpstreamLogLevel(level string) error {
	return mlog.ValidateAndSetLogLevelAndFormatGlobally(context.Background(), mlog.LogSpec{
		Level: mlog.LogLevel(level), Format: mlog.FormatJSON,
	})
}

// callUpstream serves one AdmissionReview body through upstream's handler in-process.
func callUpstream(h http.Handler, body []byte) ([]byte, error) {
	req := httptest.NewRequest(http.MethodPost, "/mutate-v1-pod", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return nil, fmt.Errorf("upstream answered HTTP %d: %s", rec.Code, rec.Body.String())
	}
	return rec.Body.Bytes(), nil
}

type widClient struct{ http *http.Client }

func newWidClient(caFile string) (*widClient, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", caFile)
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 16,
		Proxy:               nil,
	}
	return &widClient{http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}, nil
}

func (w *widClient) call(url string, body []byte) ([]byte, error) {
	req, err := http.NewRequest(http.MethodPost, url+"?timeout=10s", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("wid answered HTTP %d: %s", resp.StatusCode, out)
	}
	return out, nil
}

// outcome is one side's answer, decoded.
type outcome struct {
	raw        map[string]any // the whole AdmissionReview response
	apiVersion string
	kind       string
	uid        string
	allowed    bool
	patchType  string
	patch      []byte // JSON
	hasStatus  bool
	code       float64
	message    string
	reason     string
	pod        any // the submitted pod with the patch applied (allowed only)
	patchErr   error
}

func parseOutcome(body []byte, object []byte) (*outcome, error) {
	v, err := decode(body)
	if err != nil {
		return nil, fmt.Errorf("response is not JSON: %v: %s", err, body)
	}
	root := obj(v)
	if root == nil {
		return nil, fmt.Errorf("response is not an object: %s", body)
	}
	o := &outcome{raw: root, apiVersion: str(root["apiVersion"]), kind: str(root["kind"])}
	resp := obj(root["response"])
	if resp == nil {
		return nil, fmt.Errorf("response has no .response: %s", body)
	}
	o.uid = str(resp["uid"])
	o.allowed, _ = resp["allowed"].(bool)
	o.patchType = str(resp["patchType"])
	if st := obj(resp["status"]); st != nil {
		o.hasStatus = true
		o.code, _ = st["code"].(float64)
		o.message = str(st["message"])
		o.reason = str(st["reason"])
	}
	if p, ok := resp["patch"].(string); ok && p != "" {
		raw, err := base64.StdEncoding.DecodeString(p)
		if err != nil {
			return nil, fmt.Errorf("patch is not base64: %v", err)
		}
		o.patch = raw
	}
	if o.allowed {
		patched := object
		if len(o.patch) > 0 {
			// The apiserver applies admission patches with evanphx/json-patch (v4 semantics).
			p, err := jsonpatch.DecodePatch(o.patch)
			if err == nil {
				patched, err = p.Apply(object)
			}
			if err != nil {
				o.patchErr = err
				return o, nil
			}
		}
		o.pod, err = decode(patched)
		if err != nil {
			o.patchErr = err
		}
	}
	return o, nil
}

func (o *outcome) describe() string {
	if o.allowed {
		n := 0
		var ops []any
		if json.Unmarshal(o.patch, &ops) == nil {
			n = len(ops)
		}
		return fmt.Sprintf("allowed (%d patch operations)", n)
	}
	return fmt.Sprintf("denied %v %q", o.code, o.message)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
