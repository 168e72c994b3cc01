package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"time"
)

// runJWKS compares `azwi jwks` (upstream's CLI, built from the same module) with `wid jwks` on
// generated keys, in every PEM form keyutil.PublicKeysFromFile reads.
func runJWKS(args []string) (bool, error) {
	fs := flag.NewFlagSet("jwks", flag.ContinueOnError)
	widBin := fs.String("wid", "", "wid binary")
	azwiBin := fs.String("azwi", "", "azwi binary")
	dir := fs.String("dir", "", "scratch directory")
	doc := fs.String("doc", "", "docs/webhook-oracle.md")
	if err := fs.Parse(args); err != nil {
		return false, err
	}
	if *doc != "" {
		if err := checkDoc(*doc); err != nil {
			return false, err
		}
	}
	start := time.Now()
	var files []string
	equiv := map[string]string{} // key file -> the same key as an SPKI public key file
	write := func(name string, blocks ...*pem.Block) string {
		var b bytes.Buffer
		for _, bl := range blocks {
			_ = pem.Encode(&b, bl)
		}
		p := filepath.Join(*dir, name)
		if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
			panic(err)
		}
		return p
	}
	var all []*pem.Block
	for _, bits := range []int{2048, 3072, 4096} {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			return false, err
		}
		spki, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
		p8, _ := x509.MarshalPKCS8PrivateKey(k)
		pub := write(fmt.Sprintf("rsa%d-public-key.pem", bits), &pem.Block{Type: "PUBLIC KEY", Bytes: spki})
		for _, f := range []*pem.Block{
			{Type: "PUBLIC KEY", Bytes: spki},
			{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.PublicKey)},
			{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)},
			{Type: "PRIVATE KEY", Bytes: p8},
		} {
			p := write(fmt.Sprintf("rsa%d-%s.pem", bits, strings.ReplaceAll(strings.ToLower(f.Type), " ", "-")), f)
			files = append(files, p)
			equiv[p] = pub
		}
		all = append(all, &pem.Block{Type: "PUBLIC KEY", Bytes: spki})
	}
	for _, curve := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		k, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			return false, err
		}
		spki, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
		sec1, _ := x509.MarshalECPrivateKey(k)
		p8, _ := x509.MarshalPKCS8PrivateKey(k)
		name := strings.ToLower(curve.Params().Name)
		pub := write(name+"-public-key.pem", &pem.Block{Type: "PUBLIC KEY", Bytes: spki})
		for _, p := range []string{pub,
			write(name+"-ec-private-key.pem", &pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}),
			write(name+"-private-key.pem", &pem.Block{Type: "PRIVATE KEY", Bytes: p8})} {
			files = append(files, p)
			equiv[p] = pub
		}
		all = append(all, &pem.Block{Type: "PUBLIC KEY", Bytes: spki})
	}
	multi := write("several-keys.pem", all...)
	equiv[multi] = multi
	files = append(files, multi)

	runs := [][]string{}
	for _, f := range files {
		runs = append(runs, []string{f})
	}
	runs = append(runs, []string{files[1], files[len(files)-3]}, []string{files[0], multi})
	bad := write("not-a-key.pem", &pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")})
	keyArgs := func(fs []string, comma bool) []string {
		if comma {
			return []string{"--public-keys", strings.Join(fs, ",")}
		}
		var out []string
		for _, f := range fs {
			out = append(out, "--public-keys", f)
		}
		return out
	}

	rows := map[string]int{}
	var unexplained []string
	compared := 0
	for i, fs := range runs {
		comma := i%2 == 0
		for _, toFile := range []bool{true, false} {
			compared++
			var names []string
			for _, f := range fs {
				names = append(names, filepath.Base(f))
			}
			where := fmt.Sprintf("%s (%s)", strings.Join(names, " + "), map[bool]string{true: "--output-file", false: "stdout"}[toFile])
			up, upErr := jwksOutput(*azwiBin, keyArgs(fs, comma), toFile, *dir, "azwi")
			wd, widErr := jwksOutput(*widBin, keyArgs(fs, comma), toFile, *dir, "wid")
			row := ""
			if upErr != nil && widErr == nil && strings.Contains(upErr.Error(), "data does not contain any valid RSA or ECDSA public keys") {
				// azwi (client-go keyutil) does not read PKCS#1 public keys nor PKCS#8 EC private keys;
				// wid must give what azwi gives for the same keys as SPKI public keys.
				var same []string
				for _, f := range fs {
					same = append(same, equiv[f])
				}
				up, upErr = jwksOutput(*azwiBin, keyArgs(same, comma), toFile, *dir, "azwi")
				row = "jwks-more-key-forms"
			}
			if upErr != nil || widErr != nil {
				unexplained = append(unexplained, fmt.Sprintf("%s: azwi error %v, wid error %v", where, upErr, widErr))
				continue
			}
			if row != "" {
				rows[row]++
			}
			if bytes.Equal(up, wd) {
				continue
			}
			a, errA := decode(up)
			b, errB := decode(wd)
			if errA != nil || errB != nil {
				unexplained = append(unexplained, fmt.Sprintf("%s: output is not JSON: azwi %v, wid %v\n      azwi: %q\n      wid:  %q", where, errA, errB, up, wd))
				continue
			}
			if !reflect.DeepEqual(a, b) {
				var es []entry
				diff(nil, a, b, &es)
				var lines []string
				for _, e := range es {
					lines = append(lines, strings.Replace(e.String(), "upstream", "azwi", 1))
				}
				unexplained = append(unexplained, fmt.Sprintf("%s: the JWKS differ:\n      - %s", where, strings.Join(lines, "\n      - ")))
				continue
			}
			if !toFile && bytes.Equal(append(bytes.Clone(up), '\n'), wd) {
				rows["jwks-stdout-newline"]++
				continue
			}
			unexplained = append(unexplained, fmt.Sprintf("%s: same JSON, other bytes:\n      azwi: %q\n      wid:  %q", where, up, wd))
		}
	}
	// A file without a key: both refuse (non-zero exit).
	compared++
	_, upErr := jwksOutput(*azwiBin, []string{"--public-keys", bad}, false, *dir, "azwi")
	_, widErr := jwksOutput(*widBin, []string{"--public-keys", bad}, false, *dir, "wid")
	if upErr == nil || widErr == nil {
		unexplained = append(unexplained, fmt.Sprintf("not-a-key.pem: azwi error %v, wid error %v", upErr, widErr))
	}

	fmt.Println("jwks oracle: azwi jwks (azure-workload-identity v1.6.0) vs wid jwks")
	fmt.Printf("outputs compared:            %d (%d key files: RSA 2048/3072/4096 as SPKI and PKCS#1 public, PKCS#1 and PKCS#8 private; EC P-256/384/521 as SPKI public, SEC1 and PKCS#8 private; all in one file)\n", compared, len(files))
	fmt.Println("differences by docs/webhook-oracle.md row:")
	for _, id := range []string{"jwks-more-key-forms", "jwks-stdout-newline"} {
		fmt.Printf("  %-24s %d\n", id, rows[id])
	}
	fmt.Printf("unexplained differences:     %d\n", len(unexplained))
	for _, u := range unexplained {
		fmt.Println("  " + u)
	}
	fmt.Printf("time: %.1fs\n", time.Since(start).Seconds())
	return len(unexplained) == 0, nil
}

// jwksOutput runs one CLI; with toFile it passes --output-file and returns the file (checking its
// mode is 0600, as azwi writes it), else stdout.
func jwksOutput(bin string, args []string, toFile bool, dir, tag string) ([]byte, error) {
	out := filepath.Join(dir, tag+"-out.json")
	_ = os.Remove(out)
	full := append([]string{"jwks"}, args...)
	if toFile {
		full = append(full, "--output-file", out)
	}
	cmd := exec.Command(bin, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%v: %s", err, firstLine(stderr.String()))
	}
	if !toFile {
		return stdout.Bytes(), nil
	}
	st, err := os.Stat(out)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm() != 0o600 {
		return nil, fmt.Errorf("%s has mode %v, not 0600", out, st.Mode().Perm())
	}
	if stdout.Len() > 0 {
		return nil, fmt.Errorf("wrote to stdout too: %q", stdout.String())
	}
	return os.ReadFile(out)
}
