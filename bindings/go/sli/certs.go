package sli

/*
#include "sli_go.h"
*/
import "C"

import (
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// Certificate is a parsed X.509 certificate, with the chain that came with it. Immutable and
// safe for concurrent use.
type Certificate struct {
	mu sync.RWMutex
	c  *C.sli_cert
}

func newCertificate(c *C.sli_cert) *Certificate {
	x := &Certificate{c: c}
	runtime.SetFinalizer(x, (*Certificate).Close)
	return x
}

// LoadCertificate reads a PEM certificate chain file, leaf first. Bad input gets a named code
// (ErrNotPEM, ErrPEMTruncated, ErrLineEndings, ErrFile, …) and a message naming the file.
func LoadCertificate(path string) (*Certificate, error) {
	var c *C.sli_cert
	msg := make([]byte, 512)
	p := cstr([]byte(path))
	if err := checkMsg(C.sli_cert_load_file(&c, cbytes(p), cbytes(msg), C.size_t(len(msg))), msg); err != nil {
		return nil, err
	}
	return newCertificate(c), nil
}

// ParseCertificate reads a PEM certificate chain held in memory, leaf first.
func ParseCertificate(pem []byte) (*Certificate, error) {
	var c *C.sli_cert
	msg := make([]byte, 512)
	if err := checkMsg(C.sli_cert_load_mem(&c, cbytes(pem), C.size_t(len(pem)), cbytes(msg),
		C.size_t(len(msg))), msg); err != nil {
		return nil, err
	}
	return newCertificate(c), nil
}

func (c *Certificate) str(f func(*C.sli_cert) *C.char) string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.c == nil {
		return ""
	}
	return C.GoString(f(c.c))
}

// Subject returns the subject on one line, as `openssl x509 -noout -subject` prints it
// ("C = FR, O = Acme, CN = db.example.com"); "" after Close.
func (c *Certificate) Subject() string {
	return c.str(func(x *C.sli_cert) *C.char { return C.sli_cert_subject(x) })
}

// Issuer returns the issuer on one line.
func (c *Certificate) Issuer() string {
	return c.str(func(x *C.sli_cert) *C.char { return C.sli_cert_issuer(x) })
}

// FingerprintSHA256 returns the SHA-256 fingerprint of the DER certificate as upper-case hex
// pairs separated by colons, as `openssl x509 -fingerprint -sha256` prints it.
func (c *Certificate) FingerprintSHA256() string {
	return c.str(func(x *C.sli_cert) *C.char { return C.sli_cert_fingerprint_sha256(x) })
}

// PEM returns the certificate and the chain that came with it, as PEM.
func (c *Certificate) PEM() []byte {
	return []byte(c.str(func(x *C.sli_cert) *C.char { return C.sli_cert_chain_pem(x) }))
}

// SANs returns the subject alternative names: "DNS:name", "IP:addr", "email:x", "URI:x".
func (c *Certificate) SANs() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.c == nil {
		return nil
	}
	n := int(C.sli_cert_san_count(c.c))
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		if s := C.sli_cert_san(c.c, C.size_t(i)); s != nil {
			out = append(out, C.GoString(s))
		}
	}
	return out
}

func (c *Certificate) unix(f func(*C.sli_cert) C.int64_t) time.Time {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.c == nil {
		return time.Time{}
	}
	return time.Unix(int64(f(c.c)), 0)
}

// NotBefore returns the start of the validity period.
func (c *Certificate) NotBefore() time.Time {
	return c.unix(func(x *C.sli_cert) C.int64_t { return C.sli_cert_not_before(x) })
}

// NotAfter returns the end of the validity period.
func (c *Certificate) NotAfter() time.Time {
	return c.unix(func(x *C.sli_cert) C.int64_t { return C.sli_cert_not_after(x) })
}

// Close frees the certificate.
func (c *Certificate) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.c != nil {
		C.sli_cert_free(c.c)
		c.c = nil
		runtime.SetFinalizer(c, nil)
	}
	return nil
}

// csans is a C array of C strings, freed by free.
type csans struct {
	arr []*C.char
}

func makeSANs(sans []string) csans {
	s := csans{arr: make([]*C.char, len(sans)+1)}
	for i, x := range sans {
		s.arr[i] = C.CString(x)
	}
	return s
}

func (s csans) free() {
	for _, p := range s.arr {
		if p != nil {
			C.free(unsafe.Pointer(p))
		}
	}
}

// CreateCSR makes a PKCS#10 certificate request signed by key (RSA, ECDSA or Ed25519). subject
// is written as OpenSSL's command line does: "/CN=db.example.com/O=Acme/C=FR" (fields CN, C,
// ST, L, O, OU, emailAddress); sans are "DNS:…", "IP:…", "email:…" or "URI:…". A malformed
// subject or SAN is ErrInval. The result is PEM.
func CreateCSR(key *Key, subject string, sans []string) ([]byte, error) {
	var out []byte
	err := key.use(func(k *C.sli_key) error {
		s := makeSANs(sans)
		defer s.free()
		subj := cstr([]byte(subject))
		var p *C.char
		var n C.size_t
		var em *C.char
		if err := check(C.go_csr_create(&em, k, cbytes(subj), &s.arr[0], C.size_t(len(sans)), &p, &n), em); err != nil {
			return err
		}
		out = takeAlloc(p, n)
		return nil
	})
	return out, err
}

// SelfSigned makes a self-signed certificate (PEM) for key, valid for days days (0 means 365):
// for servers and clients, or with ca a CA certificate that Issue can issue from.
func SelfSigned(key *Key, subject string, sans []string, days int, ca bool) ([]byte, error) {
	var out []byte
	err := key.use(func(k *C.sli_key) error {
		s := makeSANs(sans)
		defer s.free()
		subj := cstr([]byte(subject))
		var flags C.uint32_t
		if ca {
			flags = C.SLI_CERT_CA
		}
		var p *C.char
		var n C.size_t
		var em *C.char
		if err := check(C.go_selfsign(&em, k, cbytes(subj), &s.arr[0], C.size_t(len(sans)), C.int(days), flags, &p, &n), em); err != nil {
			return err
		}
		out = takeAlloc(p, n)
		return nil
	})
	return out, err
}

// Issue issues a leaf certificate (PEM; CA:FALSE, serverAuth and clientAuth) for the request
// csrPEM, signed by caKey under the CA certificate caCertPEM, valid days days (0 means 365). A
// request whose signature fails is ErrSignature, a CA certificate that is not caKey's
// ErrKeyMismatch, one that is not a CA ErrConfig.
func Issue(caCertPEM []byte, caKey *Key, csrPEM []byte, days int) ([]byte, error) {
	var out []byte
	err := caKey.use(func(k *C.sli_key) error {
		var p *C.char
		var n C.size_t
		var em *C.char
		if err := check(C.go_ca_issue(&em, cbytes(caCertPEM), C.size_t(len(caCertPEM)), k,
			cbytes(csrPEM), C.size_t(len(csrPEM)), C.int(days), &p, &n), em); err != nil {
			return err
		}
		out = takeAlloc(p, n)
		return nil
	})
	return out, err
}
