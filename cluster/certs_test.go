package cluster

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
)

// GenerateCerts makes node certificates of one CA, valid for loopback and
// the node's name, usable for both ends of mutual TLS; it reuses the CA for
// nodes added later and never overwrites a node's certificate.
func TestGenerateCerts(t *testing.T) {
	dir := t.TempDir()
	if err := GenerateCerts(dir, []string{"node1", "10.1.2.3"}); err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(filepath.Join(dir, CAFile))
	if err := GenerateCerts(dir, []string{"tf4.example.com"}); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, CAFile)); string(again) != string(caPEM) {
		t.Fatal("a second run replaced the CA")
	}
	if err := GenerateCerts(dir, []string{"node1"}); err == nil {
		t.Fatal("overwrote node1's certificate")
	}
	if err := GenerateCerts(dir, []string{"../evil"}); err == nil {
		t.Fatal("accepted a name with a path in it")
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	for name, host := range map[string]string{"node1": "node1", "10.1.2.3": "10.1.2.3", "tf4.example.com": "tf4.example.com"} {
		certPath, keyPath := CertFiles(dir, name)
		data, err := os.ReadFile(certPath)
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(data)
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range []string{host, "127.0.0.1", "localhost"} {
			if err := cert.VerifyHostname(h); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Fatalf("%s as client: %v", name, err)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Fatalf("%s as server: %v", name, err)
		}
		if pub, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve.Params().Name != "P-256" {
			t.Fatalf("%s: key is not ECDSA P-256", name)
		}
		if st, _ := os.Stat(keyPath); st.Mode().Perm() != 0o600 {
			t.Fatalf("%s key mode %v", name, st.Mode().Perm())
		}
		if _, err := LoadTLS(filepath.Join(dir, CAFile), certPath, keyPath); err != nil {
			t.Fatal(err)
		}
	}
}
