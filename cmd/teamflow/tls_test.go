package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestSelfSignedTLS: asked for, a self-signed pair is made on the first
// start under the data directory, reused on the next, and serves https to
// a client that trusts it for localhost and 127.0.0.1.
func TestSelfSignedTLS(t *testing.T) {
	c := defaultConfig()
	c.Data, c.Addr = t.TempDir(), "127.0.0.1:0"
	c.TLS.SelfSigned = true
	c.BaseURL = ""
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.BaseURL, "https://") {
		t.Fatalf("base URL %q", c.BaseURL)
	}
	cfg, created, err := serverTLS(&c)
	if err != nil || created == "" {
		t.Fatalf("first start: %v %q", err, created)
	}
	certFile, keyFile := selfSignedFiles(c.Data)
	first, _ := os.ReadFile(certFile)
	if st, err := os.Stat(keyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	if _, again, err := serverTLS(&c); err != nil || again != "" {
		t.Fatalf("second start made another certificate: %v %q", err, again)
	}
	if second, _ := os.ReadFile(certFile); !bytes.Equal(first, second) {
		t.Fatal("the certificate changed between starts")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			t.Error("request without TLS")
		}
	})}
	go srv.Serve(tls.NewListener(ln, cfg))
	t.Cleanup(func() { srv.Close() })
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(first)
	port := ln.Addr().(*net.TCPAddr).Port
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for _, host := range []string{"localhost", "127.0.0.1"} {
		resp, err := client.Get("https://" + net.JoinHostPort(host, strconv.Itoa(port)) + "/")
		if err != nil {
			t.Fatalf("https to %s: %v", host, err)
		}
		resp.Body.Close()
	}
}

func TestTLSConfigChecks(t *testing.T) {
	for name, set := range map[string]func(*Config){
		"cert without key":     func(c *Config) { c.TLS.Cert = "a.crt" },
		"self-signed and cert": func(c *Config) { c.TLS.Cert, c.TLS.Key, c.TLS.SelfSigned = "a.crt", "a.key", true },
		"bad proxy":            func(c *Config) { c.HTTP.TrustedProxies = "10.0.0.0/8, not-an-address" },
	} {
		c := defaultConfig()
		c.Data = t.TempDir()
		set(&c)
		if err := c.validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
