package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// TLS serving: a certificate and key from files, or — when asked — a
// self-signed pair generated on the first start and kept in the data
// directory (reused afterwards, so browsers that accepted it keep working).

// tlsEnabled reports whether the node serves https itself.
func (c *Config) tlsEnabled() bool { return c.TLS.Cert != "" || c.TLS.SelfSigned }

// scheme is the scheme the node serves.
func (c *Config) scheme() string {
	if c.tlsEnabled() {
		return "https"
	}
	return "http"
}

func (c *Config) validateTLS() error {
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		return errors.New("tls: --tls-cert and --tls-key go together")
	}
	if c.TLS.Cert != "" && c.TLS.SelfSigned {
		return errors.New("tls: --tls-self-signed is for when there is no certificate; drop one of them")
	}
	return nil
}

// selfSignedFiles are where the generated pair is kept.
func selfSignedFiles(data string) (cert, key string) {
	dir := filepath.Join(data, "tls")
	return filepath.Join(dir, "self-signed.crt"), filepath.Join(dir, "self-signed.key")
}

// serverTLS builds the listener's TLS configuration; nil without TLS. The
// second result names a self-signed certificate created by this call.
func serverTLS(c *Config) (*tls.Config, string, error) {
	if !c.tlsEnabled() {
		return nil, "", nil
	}
	certFile, keyFile, created := c.TLS.Cert, c.TLS.Key, ""
	if c.TLS.SelfSigned {
		certFile, keyFile = selfSignedFiles(c.Data)
		if _, err := os.Stat(certFile); errors.Is(err, os.ErrNotExist) {
			if err := writeSelfSigned(certFile, keyFile, tlsHosts(c)); err != nil {
				return nil, "", fmt.Errorf("tls: self-signed certificate: %w", err)
			}
			created = certFile
		}
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, "", fmt.Errorf("tls: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}, created, nil
}

// tlsHosts are the names a self-signed certificate covers: localhost, the
// loopback addresses, the listen host and the public URL's host.
func tlsHosts(c *Config) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, _, err := net.SplitHostPort(c.Addr); err == nil && h != "" {
		hosts = append(hosts, h)
	}
	if u, err := url.Parse(c.BaseURL); err == nil && u.Hostname() != "" {
		hosts = append(hosts, u.Hostname())
	}
	return hosts
}

func writeSelfSigned(certFile, keyFile string, hosts []string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "TeamFlow (self-signed)", Organization: []string{"TeamFlow"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(2, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	seen := map[string]bool{}
	for _, h := range hosts {
		if seen[h] {
			continue
		}
		seen[h] = true
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}
