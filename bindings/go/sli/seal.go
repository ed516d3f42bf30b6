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

// Keyring is a set of AES-256 keys for sealed blobs (database fields), one of them the primary,
// which seals; opening finds the key by the ID in the blob's header, so keys rotate without
// re-encrypting old blobs. A sealed blob is AES-256-GCM with SealOverhead (33) bytes of overhead.
//
// A Keyring is immutable and safe for concurrent use by many goroutines, as libsli's sli_keyring
// is; Close may come at any time (calls after it fail with ErrClosed).
type Keyring struct {
	mu sync.RWMutex // read-held by every call on kr; write-held by Close
	kr *C.sli_keyring
}

func newKeyring(kr *C.sli_keyring) *Keyring {
	k := &Keyring{kr: kr}
	runtime.SetFinalizer(k, (*Keyring).Close)
	return k
}

// GenerateKeyring returns a keyring holding one fresh random key, the primary.
func GenerateKeyring() (*Keyring, error) {
	var kr *C.sli_keyring
	var em *C.char
	if err := check(C.go_keyring_generate(&em, &kr), em); err != nil {
		return nil, err
	}
	return newKeyring(kr), nil
}

// LoadKeyring reads a keyring file, as `sli keyring new` and Save write it. A failure's message
// names the file and the line. (libsli's keyring files are not passphrase-protected: they are
// written mode 0600; protect them as any key file.)
func LoadKeyring(path string) (*Keyring, error) {
	var kr *C.sli_keyring
	msg := make([]byte, 512)
	p := cstr([]byte(path))
	rc := C.sli_keyring_load_file(&kr, cbytes(p), cbytes(msg), C.size_t(len(msg)))
	if err := checkMsg(rc, msg); err != nil {
		return nil, err
	}
	return newKeyring(kr), nil
}

// Save writes the keyring to path atomically (a temporary file renamed), mode 0600.
func (k *Keyring) Save(path string) error {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.kr == nil {
		return errClosed("keyring")
	}
	var em *C.char
	p := cstr([]byte(path))
	return check(C.go_keyring_save_file(&em, k.kr, cbytes(p)), em)
}

// Rotate returns a new keyring with these keys (still opening) and a fresh primary; k is
// unchanged.
func (k *Keyring) Rotate() (*Keyring, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.kr == nil {
		return nil, errClosed("keyring")
	}
	var kr *C.sli_keyring
	var em *C.char
	if err := check(C.go_keyring_rotate(&em, &kr, k.kr), em); err != nil {
		return nil, err
	}
	return newKeyring(kr), nil
}

// handle returns the C keyring as an integer for the hot-path wrappers (k.mu is read-held).
func (k *Keyring) handle() C.uintptr_t { return C.uintptr_t(uintptr(unsafe.Pointer(k.kr))) }

// KeyIDs returns the keys' IDs, the primary first (nil after Close).
func (k *Keyring) KeyIDs() []uint32 {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.kr == nil {
		return nil
	}
	n := int(C.sli_keyring_count(k.kr))
	ids := make([]uint32, n)
	for i := range ids {
		ids[i] = uint32(C.sli_keyring_key_id(k.kr, C.size_t(i)))
	}
	return ids
}

// Created returns each key's creation time, the primary first (nil after Close).
func (k *Keyring) Created() []time.Time {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.kr == nil {
		return nil
	}
	n := int(C.sli_keyring_count(k.kr))
	ts := make([]time.Time, n)
	for i := range ts {
		ts[i] = time.Unix(int64(C.sli_keyring_key_created(k.kr, C.size_t(i))), 0)
	}
	return ts
}

// Seal returns plaintext sealed with the primary key, bound to the associated data ad (a column
// name, a row ID: the blob opens only with the same ad). The result is len(plaintext)+33 bytes.
func (k *Keyring) Seal(plaintext, ad []byte) ([]byte, error) { return k.SealTo(nil, plaintext, ad) }

// SealTo appends the sealed blob to dst and returns the extended slice, as crypto/cipher's
// AEAD.Seal does: with a dst of enough capacity, reused from call to call, it allocates nothing.
// dst's free capacity must not overlap plaintext.
func (k *Keyring) SealTo(dst, plaintext, ad []byte) ([]byte, error) {
	ret, out := extend(dst, len(plaintext)+SealOverhead)
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.kr == nil {
		return dst, errClosed("keyring")
	}
	r := C.go_seal2(k.handle(), bptr(out), C.size_t(len(out)), bptr(plaintext), C.size_t(len(plaintext)),
		bptr(ad), C.size_t(len(ad)))
	if err := check(r.rc, r.em); err != nil {
		return dst, err
	}
	return ret[:len(dst)+int(r.n)], nil
}

// Open returns the plaintext of a sealed blob. A changed, cut or extended blob, or another ad, is
// ErrPayload; a key this keyring lacks ErrNoMatch; a blob too short or of an unknown version
// ErrHeader. A failed Open returns no plaintext at all.
func (k *Keyring) Open(blob, ad []byte) ([]byte, error) { return k.OpenTo(nil, blob, ad) }

// OpenTo appends the plaintext of blob to dst and returns the extended slice (see SealTo). On
// failure it returns dst unchanged, its free capacity zeroed by libsli: no partial plaintext.
func (k *Keyring) OpenTo(dst, blob, ad []byte) ([]byte, error) {
	size := len(blob) - SealOverhead
	if size < 0 {
		size = 0
	}
	ret, out := extend(dst, size)
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.kr == nil {
		return dst, errClosed("keyring")
	}
	r := C.go_open2(k.handle(), bptr(out), C.size_t(len(out)), bptr(blob), C.size_t(len(blob)), bptr(ad),
		C.size_t(len(ad)))
	if err := check(r.rc, r.em); err != nil {
		return dst, err
	}
	return ret[:len(dst)+int(r.n)], nil
}

// extend returns dst grown by n bytes (reallocated if its capacity is short) and those n bytes.
func extend(dst []byte, n int) (ret, tail []byte) {
	if total := len(dst) + n; cap(dst) >= total {
		ret = dst[:total]
	} else {
		ret = make([]byte, total)
		copy(ret, dst)
	}
	return ret, ret[len(dst):]
}

// Close frees the keyring, wiping its keys (libsli does, on its last reference). Calls after it
// fail with ErrClosed; a second Close does nothing.
func (k *Keyring) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.kr != nil {
		C.sli_keyring_free(k.kr)
		k.kr = nil
		runtime.SetFinalizer(k, nil)
	}
	return nil
}

// SealedKeyID returns the ID of the key that sealed blob, read from its header (the blob is not
// opened or authenticated). ErrHeader for a blob too short or of an unknown version.
func SealedKeyID(blob []byte) (uint32, error) {
	var id C.uint32_t
	var em *C.char
	if err := check(C.go_sealed_key_id(&em, bptr(blob), C.size_t(len(blob)), &id), em); err != nil {
		return 0, err
	}
	return uint32(id), nil
}
