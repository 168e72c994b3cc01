// Command coredns is CoreDNS with only the plugins the e2e suite needs to run the CoreDNS rewrite
// rules of the chart's Azure host names mode (deploy/README.md, "Azure host names in the cluster"):
// bind, errors, rewrite and hosts, in CoreDNS's own plugin order. The hosts plugin stands in for the
// kubernetes plugin, answering the wid Service's cluster name with an address.
//
//	coredns -conf Corefile
package main

import (
	"flag"
	"log"
	"os"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/rewrite"
)

func main() {
	// The order of plugin.cfg, which decides the order a query meets them whatever the Corefile says.
	dnsserver.Directives = []string{"bind", "errors", "rewrite", "hosts"}
	conf := flag.String("conf", "Corefile", "the Corefile")
	flag.Parse()
	corefile, err := os.ReadFile(*conf)
	if err != nil {
		log.Fatal(err)
	}
	instance, err := caddy.Start(caddy.CaddyfileInput{Contents: corefile, Filepath: *conf, ServerTypeName: "dns"})
	if err != nil {
		log.Fatal(err)
	}
	instance.Wait()
}
