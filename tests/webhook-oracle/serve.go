package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"strconv"

	wh "github.com/Azure/azure-workload-identity/pkg/webhook"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"monis.app/mlog"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/log"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

// runServe is upstream's webhook process (cmd/webhook/main.go of v1.6.0) for the admission
// benchmark: the same controller-runtime manager, webhook server options and pod mutator, wired the
// same way, with two changes a benchmark needs: it listens on --listen (upstream's binary always
// binds :9443 on every interface) and it has no certificate rotator, health or metrics server
// (upstream runs those with --disable-cert-rotation and the addresses set; none is on the path of
// an admission). Configuration as upstream: KUBECONFIG, AZURE_TENANT_ID and the rest of pkg/config.
func runServe(args []string) (bool, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:9443", "address of POST /mutate-v1-pod (HTTPS)")
	certDir := fs.String("cert-dir", "/certs", "directory of tls.crt and tls.key")
	logLevel := fs.String("log-level", "info", "upstream's --log-level")
	if err := fs.Parse(args); err != nil {
		return false, err
	}
	host, portText, err := net.SplitHostPort(*listen)
	if err != nil {
		return false, fmt.Errorf("--listen: %w", err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return false, fmt.Errorf("--listen: %w", err)
	}
	ctx := ctrl.SetupSignalHandler()
	if err := mlog.ValidateAndSetLogLevelAndFormatGlobally(ctx, mlog.LogSpec{
		Level: mlog.LogLevel(*logLevel), Format: mlog.FormatJSON,
	}); err != nil {
		return false, err
	}
	log.SetLogger(mlog.Logr())
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return false, err
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:         scheme,
		LeaderElection: false,
		Metrics:        metricsserver.Options{BindAddress: "0"},
		WebhookServer: webhook.NewServer(webhook.Options{
			Host:    host,
			Port:    port,
			CertDir: *certDir,
			TLSOpts: []func(c *tls.Config){func(c *tls.Config) { c.MinVersion = tls.VersionTLS13 }},
		}),
		MapperProvider: apiutil.NewDynamicRESTMapper,
	})
	if err != nil {
		return false, err
	}
	mutator, err := wh.NewPodMutator(mgr.GetClient(), mgr.GetAPIReader(), "", mgr.GetScheme(), mgr.GetConfig(), "", "")
	if err != nil {
		return false, err
	}
	mgr.GetWebhookServer().Register("/mutate-v1-pod", &webhook.Admission{Handler: mutator})
	return true, mgr.Start(ctx)
}
