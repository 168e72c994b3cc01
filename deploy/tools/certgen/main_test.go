package main

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
)

func TestCAAndServer(t *testing.T) {
	dir := t.TempDir()
	if err := cmdCA([]string{"-out", dir, "-cn", "test-ca"}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "srv")
	err := cmdServer([]string{"-ca-cert", filepath.Join(dir, "ca.crt"), "-ca-key", filepath.Join(dir, "ca.key"),
		"-out", out, "-dns", "svc.ns.svc", "-ip", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(out, "tls.crt"), filepath.Join(out, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(out, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.crt is not PEM")
	}
	for _, name := range []string{"svc.ns.svc", "127.0.0.1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if st, _ := os.Stat(filepath.Join(out, "tls.key")); st.Mode().Perm() != 0o600 {
		t.Errorf("tls.key mode %v", st.Mode().Perm())
	}
}

func TestRSA(t *testing.T) {
	f := filepath.Join(t.TempDir(), "sa.key")
	if err := cmdRSA([]string{"-out", f}); err != nil {
		t.Fatal(err)
	}
	if _, err := readKey(f); err != nil {
		t.Fatal(err)
	}
}
