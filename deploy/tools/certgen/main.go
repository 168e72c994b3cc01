// Command certgen makes the few certificates and keys a wid deployment and its tests need, with the
// Go standard library only (no openssl):
//
//	certgen ca     -out DIR [-cn NAME] [-days N]
//	    DIR/ca.crt, DIR/ca.key: a self-signed CA (ECDSA P-256).
//	certgen server -ca-cert F -ca-key F -out DIR [-dns a,b] [-ip 127.0.0.1,::1] [-cn NAME] [-days N]
//	    DIR/tls.crt, DIR/tls.key: a serving certificate (ServerAuth) signed by the CA, and DIR/ca.crt
//	    (a copy of the CA certificate), the layout of a kubernetes.io/tls Secret mounted at /certs.
//	    The CA key may be PKCS#8, PKCS#1 or SEC 1 PEM, so wid serve's local CA (DATA_DIR/ca.pem and
//	    DATA_DIR/ca.key) can sign too.
//	certgen rsa    -out FILE [-bits 2048]
//	    an RSA private key (PKCS#1 PEM), e.g. a service-account signing key for kube-apiserver.
//
// Private keys are written with mode 0600. Existing files are overwritten.
package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "ca":
		err = cmdCA(os.Args[2:])
	case "server":
		err = cmdServer(os.Args[2:])
	case "rsa":
		err = cmdRSA(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "certgen %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: certgen ca|server|rsa [flags] (certgen CMD -h for the flags)")
	os.Exit(64)
}

func cmdCA(args []string) error {
	fs := flag.NewFlagSet("ca", flag.ExitOnError)
	out := fs.String("out", "", "output directory (ca.crt, ca.key)")
	cn := fs.String("cn", "wid-ca", "common name")
	days := fs.Int("days", 3650, "validity in days")
	_ = fs.Parse(args)
	if *out == "" {
		return errors.New("-out is required")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: *cn, Organization: []string{"wid"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Duration(*days) * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          keyID(&key.PublicKey),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	if err := writePEM(filepath.Join(*out, "ca.crt"), "CERTIFICATE", der, 0o644); err != nil {
		return err
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(filepath.Join(*out, "ca.key"), "PRIVATE KEY", pk, 0o600)
}

func cmdServer(args []string) error {
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	caCert := fs.String("ca-cert", "", "CA certificate (PEM)")
	caKey := fs.String("ca-key", "", "CA private key (PEM: PKCS#8, PKCS#1 or SEC 1)")
	out := fs.String("out", "", "output directory (tls.crt, tls.key, ca.crt)")
	dns := fs.String("dns", "", "comma-separated DNS names")
	ips := fs.String("ip", "", "comma-separated IP addresses")
	cn := fs.String("cn", "", "common name (default: the first DNS name or IP)")
	days := fs.Int("days", 365, "validity in days")
	_ = fs.Parse(args)
	if *caCert == "" || *caKey == "" || *out == "" {
		return errors.New("-ca-cert, -ca-key and -out are required")
	}
	ca, caPEM, err := readCert(*caCert)
	if err != nil {
		return err
	}
	signer, err := readKey(*caKey)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Duration(*days) * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, d := range split(*dns) {
		tmpl.DNSNames = append(tmpl.DNSNames, d)
	}
	for _, s := range split(*ips) {
		ip := net.ParseIP(s)
		if ip == nil {
			return fmt.Errorf("-ip: %q is not an IP address", s)
		}
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	}
	if len(tmpl.DNSNames) == 0 && len(tmpl.IPAddresses) == 0 {
		return errors.New("give at least one -dns name or -ip address")
	}
	tmpl.Subject.CommonName = *cn
	if *cn == "" {
		if len(tmpl.DNSNames) > 0 {
			tmpl.Subject.CommonName = tmpl.DNSNames[0]
		} else {
			tmpl.Subject.CommonName = tmpl.IPAddresses[0].String()
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl.SubjectKeyId = keyID(&key.PublicKey)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, signer)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	if err := writePEM(filepath.Join(*out, "tls.crt"), "CERTIFICATE", der, 0o644); err != nil {
		return err
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writePEM(filepath.Join(*out, "tls.key"), "PRIVATE KEY", pk, 0o600); err != nil {
		return err
	}
	if filepath.Clean(filepath.Join(*out, "ca.crt")) == filepath.Clean(*caCert) {
		return nil
	}
	return os.WriteFile(filepath.Join(*out, "ca.crt"), caPEM, 0o644)
}

func cmdRSA(args []string) error {
	fs := flag.NewFlagSet("rsa", flag.ExitOnError)
	out := fs.String("out", "", "output file")
	bits := fs.Int("bits", 2048, "key size")
	_ = fs.Parse(args)
	if *out == "" {
		return errors.New("-out is required")
	}
	key, err := rsa.GenerateKey(rand.Reader, *bits)
	if err != nil {
		return err
	}
	return writePEM(*out, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key), 0o600)
}

func split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n.Add(n, big.NewInt(1))
}

func keyID(pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	sum := sha256.Sum256(der)
	return sum[:20]
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	data := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readCert(path string) (*x509.Certificate, []byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, nil, fmt.Errorf("%s: no CERTIFICATE block", path)
		}
		if b.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", path, err)
			}
			if !c.IsCA {
				return nil, nil, fmt.Errorf("%s: not a CA certificate", path)
			}
			return c, pem.EncodeToMemory(b), nil
		}
	}
}

func readKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, fmt.Errorf("%s: no private key block", path)
		}
		switch b.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			s, ok := k.(crypto.Signer)
			if !ok {
				return nil, fmt.Errorf("%s: unsupported key type %T", path, k)
			}
			return s, nil
		case "RSA PRIVATE KEY":
			return x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			return x509.ParseECPrivateKey(b.Bytes)
		}
	}
}
