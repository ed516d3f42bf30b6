// Package sli is the Go binding of libsli (the secured layer interface): sealed blobs and
// keyrings, age file encryption streamed through io.Writer and io.Reader, keys and signatures,
// certificates, and TLS as a net.Conn over any net.Conn.
//
// Everything goes through libsli.so.1's C API (api/sli.h) with cgo; nothing is implemented a
// second time in Go. Build against the library with pkg-config (`pkg-config --cflags --libs
// libsli`): from a build tree, PKG_CONFIG_PATH=build/meson-uninstalled and
// LD_LIBRARY_PATH=build/plugin.
//
// Every failure is a *Error carrying the SLI_E_* name, the code and libsli's message; compare
// with errors.Is against the sentinels (ErrPayload, ErrNoMatch, ErrTruncated, …).
//
// Objects that hold C memory (Keyring, Key, Certificate, Recipient, Identity, Context, Conn) have
// a Close method that frees it at once, wiping secrets where libsli does; a finalizer frees what
// was not closed. Using an object after Close is an error (ErrClosed), never a crash.
package sli

/*
#cgo pkg-config: libsli
#include "sli_go.h"
*/
import "C"

import (
	"unsafe"
)

// SealOverhead is the number of bytes a sealed blob adds to its plaintext.
const SealOverhead = C.SLI_SEAL_OVERHEAD

// Version returns the version of the libsli.so.1 loaded at run time, such as "1.1.0".
func Version() string { return C.GoString(C.sli_version_string()) }

// zero is what an empty Go slice is passed to C as: a valid pointer to nothing read.
var zero [1]byte

// bptr returns a pointer to b's first byte for C (a pointer to a static byte when b is empty).
func bptr(b []byte) *C.uint8_t {
	if len(b) == 0 {
		return (*C.uint8_t)(unsafe.Pointer(&zero[0]))
	}
	return (*C.uint8_t)(unsafe.Pointer(&b[0]))
}

// cbytes is bptr for C functions that take char pointers.
func cbytes(b []byte) *C.char { return (*C.char)(unsafe.Pointer(bptr(b))) }

// cstr returns s as a NUL-terminated Go byte slice that C may read for the length of a call.
// Passing Go memory avoids a malloc, and wipe() zeroes it afterwards for secrets.
func cstr(s []byte) []byte {
	b := make([]byte, len(s)+1)
	copy(b, s)
	return b
}

// wipe zeroes b.
func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}

// takeAlloc copies and frees (sli_free wipes it) a NUL-terminated buffer libsli allocated.
func takeAlloc(p *C.char, n C.size_t) []byte {
	if p == nil {
		return nil
	}
	b := C.GoBytes(unsafe.Pointer(p), C.int(n))
	C.sli_free(unsafe.Pointer(p), n)
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}

// unsafePointer returns b's first byte as an unsafe.Pointer for C (see bptr).
func unsafePointer(b []byte) unsafe.Pointer { return unsafe.Pointer(bptr(b)) }
