package cluster

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
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Certificate files written by GenerateCerts, in its directory:
//
//	ca.crt, ca.key         the cluster CA (keep ca.key offline once the nodes have their certificates)
//	<node>.crt, <node>.key one per node name
const (
	CAFile    = "ca.crt"
	CAKeyFile = "ca.key"
)

// CertFiles returns the paths GenerateCerts uses for a node's certificate
// and key in dir.
func CertFiles(dir, node string) (cert, key string) {
	name := fileName(node)
	return filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
}

// GenerateCerts makes a cluster CA in dir (or reuses the one already there,
// so that a node added later gets a certificate of the same CA) and a
// certificate for each node: ECDSA P-256, usable as server and client
// certificate (mutual TLS), valid for 127.0.0.1, ::1, localhost and the node
// name itself (a host name or an IP address). It refuses to overwrite an
// existing node certificate. Keys are written with mode 0600.
func GenerateCerts(dir string, nodes []string) error {
	if len(nodes) == 0 {
		return errors.New("cluster: certs: no node names")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cluster: certs: %w", err)
	}
	for _, n := range nodes {
		if n == "" || fileName(n) != n {
			return fmt.Errorf("cluster: certs: node name %q: use letters, digits, '.', '-' and '_' only", n)
		}
		cert, _ := CertFiles(dir, n)
		if _, err := os.Stat(cert); err == nil {
			return fmt.Errorf("cluster: certs: %s exists; remove it to issue a new one", cert)
		}
	}
	caCert, caKey, err := loadOrMakeCA(dir)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return fmt.Errorf("cluster: certs: %w", err)
		}
		tmpl, err := template(n, 2*365*24*time.Hour)
		if err != nil {
			return err
		}
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if n != "localhost" {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return fmt.Errorf("cluster: certs: %w", err)
		}
		certPath, keyPath := CertFiles(dir, n)
		if err := writeKey(keyPath, key); err != nil {
			return err
		}
		if err := writePEM(certPath, "CERTIFICATE", der, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// LoadTLS builds the mutual-TLS configuration of a node from the CA
// certificate and the node's certificate and key: it presents the node's
// certificate both as server and as client, and accepts only peers whose
// certificates the CA signed. TLS 1.3 only.
func LoadTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	pemCA, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("cluster: tls: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemCA) {
		return nil, fmt.Errorf("cluster: tls: no certificate in %s", caFile)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("cluster: tls: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}, nil
}

func loadOrMakeCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPath, keyPath := filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile)
	certPEM, cerr := os.ReadFile(certPath)
	keyPEM, kerr := os.ReadFile(keyPath)
	if cerr == nil && kerr == nil {
		cb, _ := pem.Decode(certPEM)
		kb, _ := pem.Decode(keyPEM)
		if cb == nil || kb == nil {
			return nil, nil, fmt.Errorf("cluster: certs: %s or %s is not PEM", certPath, keyPath)
		}
		cert, err := x509.ParseCertificate(cb.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("cluster: certs: %s: %w", certPath, err)
		}
		key, err := x509.ParseECPrivateKey(kb.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("cluster: certs: %s: %w", keyPath, err)
		}
		return cert, key, nil
	}
	if cerr == nil || kerr == nil {
		return nil, nil, fmt.Errorf("cluster: certs: %s and %s must both exist or both be absent", certPath, keyPath)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: certs: %w", err)
	}
	tmpl, err := template("TeamFlow cluster CA", 10*365*24*time.Hour)
	if err != nil {
		return nil, nil, err
	}
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.MaxPathLenZero = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: certs: %w", err)
	}
	if err := writeKey(keyPath, key); err != nil {
		return nil, nil, err
	}
	if err := writePEM(certPath, "CERTIFICATE", der, 0o644); err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func template(cn string, validity time.Duration) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("cluster: certs: %w", err)
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"TeamFlow"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
	}, nil
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("cluster: certs: %w", err)
	}
	return writePEM(path, "EC PRIVATE KEY", der, 0o600)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("cluster: certs: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: typ, Bytes: der}); err != nil {
		f.Close()
		return fmt.Errorf("cluster: certs: %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("cluster: certs: %s: %w", path, err)
	}
	return nil
}

// fileName keeps the characters safe in a file name.
func fileName(node string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return -1
	}, node)
}
