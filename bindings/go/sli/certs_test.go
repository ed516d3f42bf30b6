package sli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCertCSROpenSSLVerifies(t *testing.T) {
	openssl := tool(t, "openssl")
	k, _ := GenerateKey(KeyEC, 0)
	csr, err := CreateCSR(k, "/CN=db.example.com/O=Acme", []string{"DNS:db.example.com", "IP:10.0.0.5"})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "r.csr")
	os.WriteFile(p, csr, 0o600)
	out := string(run(t, nil, openssl, "req", "-in", p, "-noout", "-verify", "-text"))
	if !strings.Contains(out, "DNS:db.example.com") || !strings.Contains(out, "IP Address:10.0.0.5") {
		t.Fatalf("openssl req: %s", out)
	}
	_, err = CreateCSR(k, "not a subject", nil)
	wantCode(t, err, ErrInval)
	_, err = CreateCSR(k, "/CN=x", []string{"bogus"})
	wantCode(t, err, ErrInval)
}

func TestCertSelfSignedInspect(t *testing.T) {
	openssl := tool(t, "openssl")
	k, _ := GenerateKey(KeyEC, 0)
	pem, err := SelfSigned(k, "/CN=localhost/O=Acme", []string{"DNS:localhost", "IP:127.0.0.1"}, 30, false)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCertificate(pem)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.Subject(), "CN = localhost") || c.Subject() != c.Issuer() {
		t.Fatalf("subject %q issuer %q", c.Subject(), c.Issuer())
	}
	sans := c.SANs()
	if len(sans) != 2 || sans[0] != "DNS:localhost" || sans[1] != "IP:127.0.0.1" {
		t.Fatalf("SANs %v", sans)
	}
	life := c.NotAfter().Sub(c.NotBefore())
	if life < 29*24*time.Hour || life > 31*24*time.Hour || time.Since(c.NotBefore()) > time.Hour+24*time.Hour {
		t.Fatalf("validity %v – %v", c.NotBefore(), c.NotAfter())
	}
	p := filepath.Join(t.TempDir(), "c.pem")
	os.WriteFile(p, pem, 0o600)
	out := string(run(t, nil, openssl, "x509", "-in", p, "-noout", "-fingerprint", "-sha256"))
	if !strings.Contains(out, c.FingerprintSHA256()) || len(strings.Split(c.FingerprintSHA256(), ":")) != 32 {
		t.Fatalf("fingerprint %s vs openssl %s", c.FingerprintSHA256(), out)
	}
	loaded, err := LoadCertificate(p)
	if err != nil || loaded.FingerprintSHA256() != c.FingerprintSHA256() {
		t.Fatalf("LoadCertificate: %v", err)
	}
	if again, err := ParseCertificate(c.PEM()); err != nil || again.Subject() != c.Subject() {
		t.Fatalf("PEM round trip: %v", err)
	}
	c.Close()
	c.Close()
	if c.Subject() != "" || c.SANs() != nil || !c.NotAfter().IsZero() {
		t.Fatal("a closed certificate answered")
	}
	_, err = ParseCertificate([]byte("garbage"))
	wantCode(t, err, ErrPEM)
	_, err = ParseCertificate(pem[:len(pem)/2])
	if err == nil {
		t.Fatal("half a certificate parsed")
	}
	_, err = LoadCertificate(filepath.Join(t.TempDir(), "missing.pem"))
	if e, ok := err.(*Error); !ok || !strings.Contains(e.Message, "missing.pem") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestCertCAIssues(t *testing.T) {
	openssl := tool(t, "openssl")
	d := t.TempDir()
	caKey, _ := GenerateKey(KeyEC, 0)
	ca, err := SelfSigned(caKey, "/CN=Test CA", nil, 10, true)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, _ := GenerateKey(KeyEd25519, 0)
	csr, _ := CreateCSR(leafKey, "/CN=svc", []string{"DNS:svc"})
	leaf, err := Issue(ca, caKey, csr, 5)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(d, "ca.pem"), ca, 0o600)
	os.WriteFile(filepath.Join(d, "leaf.pem"), leaf, 0o600)
	out := string(run(t, nil, openssl, "verify", "-CAfile", filepath.Join(d, "ca.pem"), filepath.Join(d, "leaf.pem")))
	if !strings.Contains(out, ": OK") {
		t.Fatalf("openssl verify: %s", out)
	}
	lc, _ := ParseCertificate(leaf)
	if !strings.Contains(lc.Issuer(), "Test CA") {
		t.Fatalf("issuer %q", lc.Issuer())
	}
	other, _ := GenerateKey(KeyEC, 0)
	_, err = Issue(ca, other, csr, 0)
	wantCode(t, err, ErrKeyMismatch)
	notCA, _ := SelfSigned(other, "/CN=not a ca", nil, 1, false)
	_ = notCA
	bad := []byte(strings.Replace(string(csr), "A", "B", 1))
	if _, err := Issue(ca, caKey, bad, 0); err == nil {
		t.Fatal("a changed request was issued")
	}
}
