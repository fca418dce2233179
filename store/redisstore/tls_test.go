package redisstore

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/redistest"
)

// TestOpenTLS: a rediss:// URL opens a Redis that has TLS, and one that
// names a server without TLS fails at once, saying so, instead of waiting
// for every dial's timeout and reporting a deadline.
func TestOpenTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "redis.crt"), filepath.Join(dir, "redis.key")
	writeSelfSigned(t, cert, key)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsPort := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	plain := redistest.Server(t, "--tls-port", tlsPort, "--tls-cert-file", cert, "--tls-key-file", key, "--tls-auth-clients", "no")
	prefix := "&prefix=" + redistest.Prefix(t)

	s, err := Open(t.Context(), "rediss://127.0.0.1:"+tlsPort+"/0?skip_verify=true"+prefix)
	if err != nil {
		t.Fatalf("Open over TLS: %v", err)
	}
	if err := s.Probe(t.Context(), time.Now()); err != nil {
		t.Errorf("a write over TLS: %v", err)
	}
	s.Close()

	for _, scheme := range []string{"rediss", "rediss+cluster"} {
		u := scheme + strings.TrimPrefix(plain, "redis") + "?skip_verify=true" + prefix
		if scheme == "rediss+cluster" {
			u = scheme + strings.TrimSuffix(strings.TrimPrefix(plain, "redis"), "/0") + "?" + prefix[1:]
		}
		_, err := Open(t.Context(), u)
		want := "the server answers Redis without TLS, and the URL asks for TLS (" + scheme + "://): use " + strings.Replace(scheme, "rediss", "redis", 1) + ":// for it"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%s) on a server without TLS: %v; want it to say %q", scheme, err, want)
		}
	}
}

// writeSelfSigned writes a self-signed certificate for 127.0.0.1 and its
// key, as PEM files.
func writeSelfSigned(t *testing.T, certFile, keyFile string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
}
