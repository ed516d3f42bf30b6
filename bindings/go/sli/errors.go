package sli

/*
#include "sli_go.h"
*/
import "C"

import (
	"io"
	"net"
	"os"
	"unsafe"
)

// Error is a failing libsli call: Code is the negative SLI_E_* code, Name its symbolic name
// ("SLI_E_PAYLOAD"), Message what libsli said (naming the file, the peer, the argument at
// fault). Err, when not nil, is the Go error behind it (the inner connection's, say).
//
// errors.Is(err, ErrPayload) compares codes. An SLI_E_TRUNCATED error also matches
// io.ErrUnexpectedEOF, an SLI_E_CLOSED one net.ErrClosed, and an SLI_E_TIMEOUT one
// os.ErrDeadlineExceeded; Error implements net.Error (Timeout is true for SLI_E_TIMEOUT).
type Error struct {
	Name    string
	Code    int
	Message string
	Err     error
}

// Error returns "NAME: message".
func (e *Error) Error() string {
	if e.Message == "" {
		return e.Name
	}
	return e.Name + ": " + e.Message
}

// Unwrap returns the Go error behind e, if any.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error with the same code (the sentinels), or the standard
// error that e's code stands for (see Error).
func (e *Error) Is(target error) bool {
	switch t := target.(type) {
	case *Error:
		return t.Code == e.Code
	}
	switch target {
	case io.ErrUnexpectedEOF:
		return e.Code == C.SLI_E_TRUNCATED
	case net.ErrClosed:
		return e.Code == C.SLI_E_CLOSED
	case os.ErrDeadlineExceeded:
		return e.Code == C.SLI_E_TIMEOUT
	}
	return false
}

// Timeout reports whether e is SLI_E_TIMEOUT (the handshake took longer than its timeout).
func (e *Error) Timeout() bool { return e.Code == C.SLI_E_TIMEOUT }

// Temporary reports false: libsli's failures are not retried. (It completes net.Error.)
func (e *Error) Temporary() bool { return false }

func sentinel(code C.int) *Error {
	return &Error{Code: int(code), Name: C.GoString(C.sli_err_name(code)),
		Message: C.GoString(C.sli_strerror(code))}
}

// Sentinels for errors.Is, one per SLI_E_* code.
var (
	ErrClosed         = sentinel(C.SLI_E_CLOSED)           // the connection or object was closed
	ErrTruncated      = sentinel(C.SLI_E_TRUNCATED)        // the peer left without close_notify
	ErrIO             = sentinel(C.SLI_E_IO)               // the transport failed
	ErrTimeout        = sentinel(C.SLI_E_TIMEOUT)          // the handshake timed out
	ErrAlert          = sentinel(C.SLI_E_ALERT)            // the peer sent a fatal alert
	ErrProto          = sentinel(C.SLI_E_PROTO)            // the peer broke the protocol
	ErrNoSharedCipher = sentinel(C.SLI_E_NO_SHARED_CIPHER) // no cipher suite in common
	ErrVersion        = sentinel(C.SLI_E_VERSION)          // no protocol version in common
	ErrNotTLS         = sentinel(C.SLI_E_NOT_TLS)          // the peer does not speak TLS
	ErrUntrusted      = sentinel(C.SLI_E_UNTRUSTED)        // the chain ends in an unknown root
	ErrExpired        = sentinel(C.SLI_E_EXPIRED)          // the peer's certificate expired
	ErrNotYetValid    = sentinel(C.SLI_E_NOT_YET_VALID)    // the peer's certificate is not valid yet
	ErrHostname       = sentinel(C.SLI_E_HOSTNAME)         // the certificate is not for that name
	ErrRevoked        = sentinel(C.SLI_E_REVOKED)          // the certificate is revoked
	ErrBadSignature   = sentinel(C.SLI_E_BAD_SIGNATURE)    // a certificate signature is bad
	ErrSelfSigned     = sentinel(C.SLI_E_SELF_SIGNED)      // the peer's certificate is self-signed
	ErrNoPeerCert     = sentinel(C.SLI_E_NO_PEER_CERT)     // the peer sent no certificate
	ErrVerify         = sentinel(C.SLI_E_VERIFY)           // another verification failure
	ErrPEM            = sentinel(C.SLI_E_PEM)              // bad PEM
	ErrPEMTruncated   = sentinel(C.SLI_E_PEM_TRUNCATED)    // a PEM file was cut
	ErrLineEndings    = sentinel(C.SLI_E_LINE_ENDINGS)     // lone-CR line endings
	ErrNotPEM         = sentinel(C.SLI_E_NOT_PEM)          // not PEM at all (DER, say)
	ErrPassword       = sentinel(C.SLI_E_PASSWORD)         // a wrong or missing password
	ErrKeyMismatch    = sentinel(C.SLI_E_KEY_MISMATCH)     // the key is not the certificate's
	ErrWeakKey        = sentinel(C.SLI_E_WEAK_KEY)         // a key too weak to use
	ErrCiphers        = sentinel(C.SLI_E_CIPHERS)          // a refused cipher list
	ErrFile           = sentinel(C.SLI_E_FILE)             // a file could not be read or written
	ErrNoIdentity     = sentinel(C.SLI_E_NO_IDENTITY)      // a server without a certificate
	ErrConfig         = sentinel(C.SLI_E_CONFIG)           // a setting could not be used
	ErrKeyEncrypted   = sentinel(C.SLI_E_KEY_ENCRYPTED)    // a key protected in a way sli cannot open
	ErrHeader         = sentinel(C.SLI_E_HEADER)           // not a blob/file of a known format
	ErrHeaderMAC      = sentinel(C.SLI_E_HEADER_MAC)       // a header failed authentication
	ErrPayload        = sentinel(C.SLI_E_PAYLOAD)          // modified, cut or extended, or another ad
	ErrArmor          = sentinel(C.SLI_E_ARMOR)            // bad base64 or ASCII armor
	ErrNoMatch        = sentinel(C.SLI_E_NO_MATCH)         // no key or identity given opens it
	ErrSignature      = sentinel(C.SLI_E_SIGNATURE)        // a signature does not verify
	ErrInval          = sentinel(C.SLI_E_INVAL)            // an invalid argument
	ErrState          = sentinel(C.SLI_E_STATE)            // a call out of order
	ErrBufsize        = sentinel(C.SLI_E_BUFSIZE)          // a buffer too small
	ErrUnsupported    = sentinel(C.SLI_E_UNSUPPORTED)      // not supported for this kind
	ErrNoMem          = sentinel(C.SLI_E_NOMEM)            // out of memory
	ErrInternal       = sentinel(C.SLI_E_INTERNAL)         // a bug in libsli
)

// newError makes an *Error for code with message msg (sli_strerror's text if msg is empty).
func newError(code int, msg string) *Error {
	if msg == "" {
		msg = C.GoString(C.sli_strerror(C.int(code)))
	}
	return &Error{Code: code, Name: C.GoString(C.sli_err_name(C.int(code))), Message: msg}
}

// check turns rc and the message a go_* wrapper copied into em into an error (nil if rc >= 0).
// It frees em.
func check(rc C.int, em *C.char) error {
	var msg string
	if em != nil {
		msg = C.GoString(em)
		C.free(unsafe.Pointer(em))
	}
	if rc >= 0 {
		return nil
	}
	return newError(int(rc), msg)
}

// checkMsg is check for calls that fill an out_msg buffer.
func checkMsg(rc C.int, buf []byte) error {
	if rc >= 0 {
		return nil
	}
	n := 0
	for n < len(buf) && buf[n] != 0 {
		n++
	}
	return newError(int(rc), string(buf[:n]))
}

// errClosed is the error of a call on an object already closed.
func errClosed(what string) error {
	return &Error{Code: int(C.SLI_E_CLOSED), Name: "SLI_E_CLOSED", Message: "use of a closed " + what}
}
