// Command webhook-oracle runs azure-workload-identity v1.6.0's own pod mutator (pkg/webhook, the
// podMutator built by NewPodMutator, served by controller-runtime's admission.Webhook as upstream's
// manager serves it) beside a running `wid webhook` on the same AdmissionReviews, applies each side's
// JSON patch to the submitted pod and compares the results. Every difference must be one that
// docs/webhook-oracle.md lists as intended; anything else is printed with a minimal diff and fails
// the run (exit 1).
//
//	webhook-oracle webhook --config FILE   the differential run (FILE: see Config)
//	webhook-oracle jwks --wid BIN --azwi BIN --dir DIR
//	                                       `azwi jwks` against `wid jwks` on generated keys
//	webhook-oracle ids --doc FILE          prints the ids of the table and checks them against the code
//	webhook-oracle serve --listen ADDR --cert-dir DIR
//	                                       upstream's webhook server, for the admission benchmark
//
// Exit codes: 0 no unexplained difference, 1 unexplained differences, 2 the run could not be made.
package main

import (
	"fmt"
	"os"
)

// stderr is the process's standard error (os.Stderr may be pointed at a log file for upstream).
var stderr = os.Stderr

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: webhook-oracle webhook|jwks|ids|serve [flags]")
		os.Exit(2)
	}
	var err error
	var ok bool
	switch os.Args[1] {
	case "webhook":
		ok, err = runWebhook(os.Args[2:])
	case "jwks":
		ok, err = runJWKS(os.Args[2:])
	case "ids":
		ok, err = runIDs(os.Args[2:])
	case "serve":
		ok, err = runServe(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(stderr, "webhook-oracle:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}
