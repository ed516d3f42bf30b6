package sli

/*
#include <errno.h>
#include <sli.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime/cgo"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// testHookTransport, when set (by tests), runs inside each transport callback, as a user's code
// would if it ran there: a panic in it must fail the connection, never crash or read as an end.
var testHookTransport atomic.Pointer[func(s *connState, dir string)]

// The transport callbacks of sli_conn_new_cbs. They run inside a C call that the goroutine
// holding connState.mu made, so they touch the buffers without further locking; they never block
// and never touch the network: they move bytes between libsli and in-memory buffers that the Go
// side fills from, and flushes to, the inner net.Conn.

// failOnPanic, deferred by each callback, turns a panic inside it into a transport failure of
// that connection (SLI_E_IO with -EIO, the panic's text kept for the error), never a crash of
// the process nor an end of stream.
func failOnPanic(s **connState, ret *C.ssize_t) {
	if r := recover(); r != nil {
		if *s != nil {
			(*s).cbPanic = fmt.Sprint(r)
		}
		*ret = -C.EIO
	}
}

//export goSliRead
func goSliRead(conn *C.sli_conn, buf unsafe.Pointer, n C.size_t, arg unsafe.Pointer) (ret C.ssize_t) {
	var s *connState
	defer failOnPanic(&s, &ret)
	s = cgo.Handle(uintptr(arg)).Value().(*connState)
	if hook := testHookTransport.Load(); hook != nil {
		(*hook)(s, "read")
	}
	switch {
	case len(s.in) > 0:
		k := copy(unsafe.Slice((*byte)(buf), int(n)), s.in)
		s.in = s.in[k:]
		return C.ssize_t(k)
	case s.inEOF:
		return 0
	case s.inErr != nil:
		var errno syscall.Errno
		if errors.As(s.inErr, &errno) && errno != 0 {
			return -C.ssize_t(errno)
		}
		return C.SLI_E_IO
	}
	return C.SLI_WANT_READ
}

//export goSliWrite
func goSliWrite(conn *C.sli_conn, buf unsafe.Pointer, n C.size_t, arg unsafe.Pointer) (ret C.ssize_t) {
	var s *connState
	defer failOnPanic(&s, &ret)
	s = cgo.Handle(uintptr(arg)).Value().(*connState)
	if hook := testHookTransport.Load(); hook != nil {
		(*hook)(s, "write")
	}
	s.out = append(s.out, unsafe.Slice((*byte)(buf), int(n))...)
	return C.ssize_t(n)
}
