package sli

/*
#include "sli_go.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
)

// KeyType is the kind of a Key.
type KeyType int

// The key types of sli_key_generate.
const (
	KeyRSA     KeyType = C.SLI_KEY_RSA     // RSA (signatures RSA-PSS with SHA-256)
	KeyEC      KeyType = C.SLI_KEY_EC      // ECDSA over P-256, P-384 or P-521 (with SHA-256)
	KeyEd25519 KeyType = C.SLI_KEY_ED25519 // Ed25519 (pure EdDSA)
	KeyX25519  KeyType = C.SLI_KEY_X25519  // X25519 (age identities; cannot sign)
)

// String returns "rsa", "ec", "ed25519" or "x25519".
func (t KeyType) String() string {
	switch t {
	case KeyRSA:
		return "rsa"
	case KeyEC:
		return "ec"
	case KeyEd25519:
		return "ed25519"
	case KeyX25519:
		return "x25519"
	}
	return fmt.Sprintf("KeyType(%d)", int(t))
}

// Key is a private key (which also acts as its public key) or a public key alone. Immutable and
// safe for concurrent use. Signatures are those `openssl dgst -sha256` (RSA-PSS with a 32-byte
// salt for RSA) and `openssl pkeyutl -rawin` (Ed25519) make and check.
type Key struct {
	mu sync.RWMutex
	k  *C.sli_key
}

func newKey(k *C.sli_key) *Key {
	key := &Key{k: k}
	runtime.SetFinalizer(key, (*Key).Close)
	return key
}

// GenerateKey makes a new key pair: KeyEC with bits 256 (0 means 256), 384 or 521; KeyRSA with
// bits 2048 (0 means 2048), 3072 or 4096 (below 2048 is ErrWeakKey); KeyEd25519 and KeyX25519
// with bits 0.
func GenerateKey(t KeyType, bits int) (*Key, error) {
	var k *C.sli_key
	var em *C.char
	if err := check(C.go_key_generate(&em, &k, C.int(t), C.int(bits), 0), em); err != nil {
		return nil, err
	}
	return newKey(k), nil
}

// LoadKey reads a key file: a PEM private key (PKCS#8, PKCS#1 or SEC1; encrypted with password
// when password is not nil), an unencrypted OpenSSH private key, a PEM public key or an OpenSSH
// public-key line. A wrong password is ErrPassword; the message names the file.
func LoadKey(path string, password []byte) (*Key, error) {
	var k *C.sli_key
	msg := make([]byte, 512)
	p := cstr([]byte(path))
	var pw *C.char
	if password != nil {
		b := cstr(password)
		defer wipe(b)
		pw = cbytes(b)
	}
	rc := C.sli_key_load_file(&k, cbytes(p), pw, cbytes(msg), C.size_t(len(msg)))
	if err := checkMsg(rc, msg); err != nil {
		return nil, err
	}
	return newKey(k), nil
}

// use runs f with the C key, or returns ErrClosed.
func (k *Key) use(f func(*C.sli_key) error) error {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.k == nil {
		return errClosed("key")
	}
	return f(k.k)
}

// Type returns the key's type (0 after Close).
func (k *Key) Type() KeyType {
	var t KeyType
	_ = k.use(func(c *C.sli_key) error { t = KeyType(C.sli_key_type(c)); return nil })
	return t
}

// Bits returns the key's size: the RSA modulus, the curve's size, 255 for the 25519 keys.
func (k *Key) Bits() int {
	var n int
	_ = k.use(func(c *C.sli_key) error { n = int(C.sli_key_bits(c)); return nil })
	return n
}

// HasPrivate reports whether k holds a private key.
func (k *Key) HasPrivate() bool {
	var h bool
	_ = k.use(func(c *C.sli_key) error { h = C.sli_key_has_private(c) == 1; return nil })
	return h
}

// PrivatePEM returns the private key as PEM PKCS#8, encrypted (PBES2, PBKDF2-HMAC-SHA256,
// AES-256-CBC) with passphrase when it is not nil.
func (k *Key) PrivatePEM(passphrase []byte) ([]byte, error) {
	var out []byte
	err := k.use(func(c *C.sli_key) error {
		var pw *C.char
		if passphrase != nil {
			b := cstr(passphrase)
			defer wipe(b)
			pw = cbytes(b)
		}
		var p *C.char
		var n C.size_t
		var em *C.char
		if err := check(C.go_key_private_pem(&em, c, pw, &p, &n), em); err != nil {
			return err
		}
		out = takeAlloc(p, n)
		return nil
	})
	return out, err
}

// PublicPEM returns the public key as PEM SubjectPublicKeyInfo.
func (k *Key) PublicPEM() ([]byte, error) {
	var out []byte
	err := k.use(func(c *C.sli_key) error {
		var p *C.char
		var n C.size_t
		var em *C.char
		if err := check(C.go_key_public_pem(&em, c, &p, &n), em); err != nil {
			return err
		}
		out = takeAlloc(p, n)
		return nil
	})
	return out, err
}

// OpenSSHPublic returns the OpenSSH public-key line ("ssh-ed25519 AAAA… comment") of an RSA or
// Ed25519 key, without a newline; other types are ErrUnsupported.
func (k *Key) OpenSSHPublic(comment string) (string, error) {
	var out []byte
	err := k.use(func(c *C.sli_key) error {
		var p *C.char
		var n C.size_t
		var em *C.char
		cm := cstr([]byte(comment))
		if err := check(C.go_key_ssh_public(&em, c, cbytes(cm), &p, &n), em); err != nil {
			return err
		}
		out = takeAlloc(p, n)
		return nil
	})
	return strings.TrimRight(string(out), "\r\n"), err
}

// OpenSSHPrivate returns an RSA or Ed25519 private key as an unencrypted OpenSSH private key,
// what ssh-keygen writes (protect it with `ssh-keygen -p`).
func (k *Key) OpenSSHPrivate(comment string) ([]byte, error) {
	var out []byte
	err := k.use(func(c *C.sli_key) error {
		var p *C.char
		var n C.size_t
		var em *C.char
		cm := cstr([]byte(comment))
		if err := check(C.go_key_ssh_private(&em, c, cbytes(cm), &p, &n), em); err != nil {
			return err
		}
		out = takeAlloc(p, n)
		return nil
	})
	return out, err
}

// Sign returns k's signature over msg. X25519 keys cannot sign (ErrUnsupported).
func (k *Key) Sign(msg []byte) ([]byte, error) {
	var sig []byte
	err := k.use(func(c *C.sli_key) error {
		sig = make([]byte, int(C.sli_key_sig_max_size(c))+1)
		n := C.size_t(len(sig))
		var em *C.char
		if err := check(C.go_key_sign(&em, c, bptr(sig), &n, bptr(msg), C.size_t(len(msg))), em); err != nil {
			return err
		}
		sig = sig[:n]
		return nil
	})
	if err != nil {
		return nil, err
	}
	return sig, nil
}

// Verify returns nil if sig is k's signature over msg, else ErrSignature (or another error).
func (k *Key) Verify(sig, msg []byte) error {
	return k.use(func(c *C.sli_key) error {
		var em *C.char
		return check(C.go_key_verify(&em, c, bptr(sig), C.size_t(len(sig)), bptr(msg),
			C.size_t(len(msg))), em)
	})
}

// Close frees the key, wiping private material (on libsli's last reference: identities made from
// it keep theirs). Calls after it fail with ErrClosed.
func (k *Key) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.k != nil {
		C.sli_key_free(k.k)
		k.k = nil
		runtime.SetFinalizer(k, nil)
	}
	return nil
}

// Signer makes or checks, over a message written to it in pieces (an io.Writer: io.Copy a file
// into it), the signature Key.Sign makes. ECDSA and RSA hash as they go (constant memory);
// Ed25519 keeps the message until the end. One signature per Signer; not for concurrent use.
type Signer struct {
	mu     sync.Mutex
	s      *C.sli_signer
	sigMax int // the key's largest signature (the C signer holds its own reference to the key)
}

func (k *Key) newSigner(verify bool) (*Signer, error) {
	var s *C.sli_signer
	var sigMax int
	err := k.use(func(c *C.sli_key) error {
		sigMax = int(C.sli_key_sig_max_size(c))
		v := C.int(0)
		if verify {
			v = 1
		}
		var em *C.char
		return check(C.go_signer_new(&em, &s, c, v), em)
	})
	if err != nil {
		return nil, err
	}
	sg := &Signer{s: s, sigMax: sigMax}
	runtime.SetFinalizer(sg, (*Signer).Close)
	return sg, nil
}

// NewSigner returns a Signer that signs with private key k.
func (k *Key) NewSigner() (*Signer, error) { return k.newSigner(false) }

// NewVerifier returns a Signer that checks a signature of k with Verify.
func (k *Key) NewVerifier() (*Signer, error) { return k.newSigner(true) }

// Write feeds the next piece of the message; it never returns a short count without an error.
func (s *Signer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.s == nil {
		return 0, errClosed("signer")
	}
	var em *C.char
	if err := check(C.go_signer_update(&em, s.s, bptr(p), C.size_t(len(p))), em); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Sign returns the signature of the message written (a Signer from NewSigner).
func (s *Signer) Sign() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.s == nil {
		return nil, errClosed("signer")
	}
	sig := make([]byte, s.sigMax+1)
	n := C.size_t(len(sig))
	var em *C.char
	if err := check(C.go_signer_sign_final(&em, s.s, bptr(sig), &n), em); err != nil {
		return nil, err
	}
	return sig[:n], nil
}

// Verify returns nil if sig is the signature of the message written (a Signer from
// NewVerifier), else ErrSignature.
func (s *Signer) Verify(sig []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.s == nil {
		return errClosed("signer")
	}
	var em *C.char
	return check(C.go_signer_verify_final(&em, s.s, bptr(sig), C.size_t(len(sig))), em)
}

// Close frees the signer. Calls after it fail with ErrClosed.
func (s *Signer) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.s != nil {
		C.sli_signer_free(s.s)
		s.s = nil
		runtime.SetFinalizer(s, nil)
	}
	return nil
}
