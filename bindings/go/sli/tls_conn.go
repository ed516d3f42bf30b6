package sli

/*
#include "sli_go.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"runtime/cgo"
	"sync"
	"sync/atomic"
	"time"
)

// Conn is a TLS connection over any net.Conn (a TCP connection, a net.Pipe, a Unix socket, …),
// made by Server or Client. It implements net.Conn: Read and Write may run at the same time from
// two goroutines, deadlines pass to the inner connection (a timeout is a net.Error whose Timeout
// is true, and a Read that timed out may be retried), and Close sends close_notify before
// closing the inner connection.
//
// Read returns io.EOF only after the peer's close_notify; a peer that closed the transport
// without it gives an error matching ErrTruncated (and io.ErrUnexpectedEOF).
//
// libsli runs the protocol over callbacks (sli_conn_new_cbs) that only move bytes between
// memory buffers; the network I/O happens in Go, outside the lock that guards the C connection.
type Conn struct {
	s *connState
}

// connState is what the transport callbacks reach, through a cgo.Handle (Conn itself is not
// referenced by it, so that an unreachable Conn is collected and its finalizer frees the C side).
type connState struct {
	inner  net.Conn
	server bool

	mu      sync.Mutex // guards everything below it, and every C call on c
	c       *C.sli_conn
	handle  cgo.Handle
	initErr error
	in      []byte // ciphertext read from inner, not yet given to libsli
	inEOF   bool   // inner reached its end
	inErr   error  // inner failed (other than a timeout)
	inGen   uint64 // counts changes to in / inEOF / inErr
	out     []byte // ciphertext from libsli, not yet written to inner
	cbPanic string // a panic recovered in a callback
	closed  bool

	hsMu   sync.Mutex // one handshake at a time
	hsDone atomic.Bool
	hsErr  error

	readMu  sync.Mutex // one Read at a time
	readErr error      // sticky end of reading: io.EOF or a failure
	writeMu sync.Mutex // one Write (or close_notify) at a time
	fillMu  sync.Mutex // one goroutine reads inner at a time
	rbuf    []byte     // fillMu's read buffer

	flushing bool      // a flusher is writing out to inner (mu)
	flushed  sync.Cond // signalled when flushing ends (mu)
	spare    []byte    // the other half of out's double buffer (the flusher's)
	writeErr error     // sticky: a failed write to inner breaks the record stream (mu)

	dlMu         sync.Mutex
	readDeadline time.Time // the user's, restored after a handshake-deadline read
}

func newConn(inner net.Conn, ctx *Context, server bool, name string) *Conn {
	s := &connState{inner: inner, server: server}
	s.flushed.L = &s.mu
	c := &Conn{s: s}
	runtime.SetFinalizer(c, func(c *Conn) { c.s.free() })
	if ctx == nil {
		s.initErr = newError(int(C.SLI_E_INVAL), "a nil context")
		return c
	}
	if !server && name == "" {
		s.initErr = newError(int(C.SLI_E_INVAL), "a client connection needs the server's name (the name it verifies)")
		return c
	}
	ctx.mu.RLock()
	defer ctx.mu.RUnlock()
	if ctx.c == nil {
		s.initErr = errClosed("context")
		return c
	}
	if ctx.server != server {
		s.initErr = newError(int(C.SLI_E_INVAL), fmt.Sprintf("a %s connection on a %s context",
			side(server), side(ctx.server)))
		return c
	}
	s.handle = cgo.NewHandle(s)
	var sn []byte
	var snp *C.char
	if !server {
		sn = cstr([]byte(name))
		snp = cbytes(sn)
	}
	var em *C.char
	if err := check(C.go_conn_new(&em, &s.c, ctx.c, C.uintptr_t(s.handle), snp), em); err != nil {
		s.handle.Delete()
		s.handle = 0
		s.c = nil
		s.initErr = err
		return c
	}
	if a, ok := inner.RemoteAddr().(*net.TCPAddr); ok && a != nil {
		ip := a.IP.To4()
		if ip == nil {
			ip = a.IP.To16()
		}
		if ip != nil {
			C.go_conn_set_peer(s.c, bptr(ip), C.size_t(len(ip)), C.int(a.Port))
		}
	}
	return c
}

func side(server bool) string {
	if server {
		return "server"
	}
	return "client"
}

// Server returns a TLS server connection over conn with the settings of the server context ctx.
// The handshake runs on the first Read or Write, or on Handshake. Close closes conn too.
func Server(conn net.Conn, ctx *Context) *Conn { return newConn(conn, ctx, true, "") }

// Client returns a TLS client connection over conn with the settings of the client context ctx;
// serverName is sent as SNI and verified against the server's certificate (a name or an IP
// address). The handshake runs on the first Read or Write, or on Handshake.
func Client(conn net.Conn, ctx *Context, serverName string) *Conn {
	return newConn(conn, ctx, false, serverName)
}

// free releases the C connection and the handle (not the inner connection).
func (s *connState) free() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.c != nil {
		C.sli_conn_free(s.c)
		s.c = nil
	}
	if s.handle != 0 {
		s.handle.Delete()
		s.handle = 0
	}
	s.in, s.out = nil, nil
}

func (c *Conn) free() {
	c.s.free()
	runtime.SetFinalizer(c, nil)
}

// connError builds the error of a failed C call. s.mu is held.
func (s *connState) connError(rc C.ssize_t) error {
	e := newError(int(rc), C.GoString(C.sli_conn_error(s.c)))
	if s.cbPanic != "" {
		e.Message = "panic in the transport callback: " + s.cbPanic + " (" + e.Message + ")"
	} else if rc == C.SLI_E_IO && s.inErr != nil {
		e.Err = s.inErr
		if e.Message == "" {
			e.Message = s.inErr.Error()
		} else {
			e.Message += " (" + s.inErr.Error() + ")"
		}
	}
	return e
}

// call runs f on the C connection under s.mu. It returns f's result, the inbound generation
// seen, the handshake deadline (ms, -1 for none) and, for a failure other than a WANT, its error.
func (s *connState) call(f func(*C.sli_conn) C.ssize_t) (C.ssize_t, uint64, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.initErr != nil {
		return C.SLI_E_STATE, 0, -1, s.initErr
	}
	if s.c == nil {
		return C.SLI_E_CLOSED, 0, -1, errClosed("connection")
	}
	rc := f(s.c)
	if rc < 0 && rc != C.SLI_WANT_READ && rc != C.SLI_WANT_WRITE {
		return rc, s.inGen, -1, s.connError(rc)
	}
	dl := int64(-1)
	if rc == C.SLI_WANT_READ && !s.hsDone.Load() {
		dl = int64(C.sli_conn_deadline_ms(s.c))
	}
	return rc, s.inGen, dl, nil
}

// flush writes what libsli produced to inner, in libsli's order, one flusher at a time. With
// wait (Write, Close) it returns once all of it is written, or the write error. Without (Read,
// Handshake) a goroutine writes it: a read must never wait for the peer to read (over a
// net.Pipe, which has no buffer, a server's session tickets would otherwise block its
// handshake until the client's next Read, and a request written by a client that waits for the
// server's Read would deadlock).
func (s *connState) flush(wait bool) error {
	s.mu.Lock()
	if !s.flushing && len(s.out) > 0 && s.writeErr == nil {
		s.flushing = true
		if !wait {
			s.mu.Unlock()
			go s.flushLoop()
			return nil
		}
		s.mu.Unlock()
		s.flushLoop()
		s.mu.Lock()
	}
	for wait && s.flushing {
		s.flushed.Wait()
	}
	err := s.writeErr
	s.mu.Unlock()
	return err
}

// flushLoop writes s.out to inner until it is empty; s.flushing is set by the caller.
func (s *connState) flushLoop() {
	s.mu.Lock()
	for len(s.out) > 0 && s.writeErr == nil {
		data := s.out
		s.out = s.spare[:0]
		s.mu.Unlock()
		_, err := s.inner.Write(data)
		s.mu.Lock()
		s.spare = data[:0]
		if err != nil {
			s.writeErr = err
		}
	}
	s.flushing = false
	s.flushed.Broadcast()
	s.mu.Unlock()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// fill reads the inner connection once into s.in, unless it changed since generation gen (then
// the caller just retries its C call). hsMS >= 0 is the handshake's time left: the read is then
// bounded by it, and its expiry returns nil so that libsli reports SLI_E_TIMEOUT.
func (s *connState) fill(gen uint64, hsMS int64) error {
	s.fillMu.Lock()
	defer s.fillMu.Unlock()
	s.mu.Lock()
	changed := s.inGen != gen || s.inEOF || s.inErr != nil
	s.mu.Unlock()
	if changed {
		return nil
	}
	if s.rbuf == nil {
		s.rbuf = make([]byte, 32<<10)
	}
	var hsDeadline time.Time
	if hsMS >= 0 {
		hsDeadline = time.Now().Add(time.Duration(hsMS)*time.Millisecond + 5*time.Millisecond)
		s.dlMu.Lock()
		d := s.readDeadline
		if d.IsZero() || hsDeadline.Before(d) {
			d = hsDeadline
		}
		_ = s.inner.SetReadDeadline(d)
		s.dlMu.Unlock()
	}
	n, err := s.inner.Read(s.rbuf)
	var user time.Time
	if hsMS >= 0 {
		s.dlMu.Lock()
		user = s.readDeadline
		_ = s.inner.SetReadDeadline(user)
		s.dlMu.Unlock()
	}
	timeout := err != nil && isTimeout(err)
	s.mu.Lock()
	if n > 0 {
		s.in = append(s.in, s.rbuf[:n]...)
	}
	if err != nil && !timeout {
		if errors.Is(err, io.EOF) {
			s.inEOF = true
		} else {
			s.inErr = err
		}
	}
	if n > 0 || (err != nil && !timeout) {
		s.inGen++
	}
	s.mu.Unlock()
	if timeout && n == 0 {
		if hsMS >= 0 && (user.IsZero() || time.Now().Before(user)) {
			return nil // the handshake's deadline, not the user's: libsli says SLI_E_TIMEOUT
		}
		return err
	}
	return nil
}

// Handshake runs the TLS handshake if it has not run yet; Read and Write call it. A failure is
// kept: later calls return it. The handshake is bounded by the context's handshake_timeout
// (ErrTimeout) and by the read deadline (a timeout error, after which it may be called again).
func (c *Conn) Handshake() error {
	defer runtime.KeepAlive(c) // the finalizer must not free s while a call runs
	s := c.s
	if s.hsDone.Load() {
		return nil
	}
	s.hsMu.Lock()
	defer s.hsMu.Unlock()
	for !s.hsDone.Load() {
		if s.hsErr != nil {
			return s.hsErr
		}
		rc, gen, dl, err := s.call(func(x *C.sli_conn) C.ssize_t { return C.ssize_t(C.sli_conn_handshake(x)) })
		if ferr := s.flush(false); ferr != nil && err == nil {
			err = ferr
		}
		switch {
		case err != nil:
			if !isTimeout(err) || isSliError(err) {
				s.hsErr = err
			}
			return err
		case rc == 0:
			s.hsDone.Store(true)
		case rc == C.SLI_WANT_READ:
			if err := s.fill(gen, dl); err != nil {
				return err
			}
		}
	}
	return nil
}

func isSliError(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// Read reads application data. It returns io.EOF after the peer's close_notify, an error
// matching ErrTruncated if the peer left without it, and a timeout net.Error at the read
// deadline (Read may then be called again).
func (c *Conn) Read(p []byte) (int, error) {
	defer runtime.KeepAlive(c)
	s := c.s
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	s.readMu.Lock()
	defer s.readMu.Unlock()
	if s.readErr != nil {
		return 0, s.readErr
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		rc, gen, _, err := s.call(func(x *C.sli_conn) C.ssize_t {
			return C.sli_conn_read(x, unsafePointer(p), C.size_t(len(p)))
		})
		// what the read made the engine send (a KeyUpdate answer, say) goes out meanwhile; a
		// failed write side is Write's to report: reads go on with what the peer sends
		s.flush(false)
		switch {
		case err != nil:
			if !isTimeout(err) || isSliError(err) {
				s.readErr = err
			}
			return 0, err
		case rc > 0:
			return int(rc), nil
		case rc == 0:
			s.readErr = io.EOF
			return 0, io.EOF
		case rc == C.SLI_WANT_READ:
			if err := s.fill(gen, -1); err != nil {
				return 0, err
			}
		}
	}
}

const maxWrite = 64 << 10 // plaintext per sli_conn_write call: four records

// Write writes application data; it returns len(p) or an error. A failed write to the inner
// connection (a write deadline, say) breaks the record stream: later writes return that error.
func (c *Conn) Write(p []byte) (int, error) {
	defer runtime.KeepAlive(c)
	s := c.s
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	done := 0
	for done < len(p) {
		chunk := p[done:]
		if len(chunk) > maxWrite {
			chunk = chunk[:maxWrite]
		}
		rc, gen, _, err := s.call(func(x *C.sli_conn) C.ssize_t {
			return C.sli_conn_write(x, unsafePointer(chunk), C.size_t(len(chunk)))
		})
		if ferr := s.flush(true); ferr != nil && err == nil {
			return done, ferr
		}
		switch {
		case err != nil:
			return done, err
		case rc > 0:
			done += int(rc)
		case rc == C.SLI_WANT_READ:
			if err := s.fill(gen, -1); err != nil {
				return done, err
			}
		}
	}
	return done, nil
}

// CloseWrite sends close_notify: the peer reads io.EOF, and this side can go on reading until
// the peer's own close_notify (a TLS half-close). Writes after it fail.
func (c *Conn) CloseWrite() error {
	s := c.s
	if !s.hsDone.Load() {
		return newError(int(C.SLI_E_STATE), "CloseWrite before the handshake completed")
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.closeNotify()
}

// closeNotify sends close_notify; s.writeMu is held.
func (s *connState) closeNotify() error {
	_, _, _, err := s.call(func(x *C.sli_conn) C.ssize_t { return C.ssize_t(C.sli_conn_close(x)) })
	if ferr := s.flush(true); ferr != nil && err == nil {
		err = ferr
	}
	return err
}

// Close sends close_notify (if the handshake completed; bounded by a 5 s write deadline), closes
// the inner connection and frees the C side, wiping its keys. A second Close returns ErrClosed.
func (c *Conn) Close() error {
	s := c.s
	s.mu.Lock()
	closed := s.closed
	s.closed = true
	s.mu.Unlock()
	if closed {
		return errClosed("connection")
	}
	var err error
	if s.hsDone.Load() && s.initErr == nil {
		_ = s.inner.SetWriteDeadline(time.Now().Add(5 * time.Second))
		s.writeMu.Lock()
		err = s.closeNotify()
		s.writeMu.Unlock()
	}
	if cerr := s.inner.Close(); err == nil {
		err = cerr
	}
	c.free()
	if errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe) {
		err = nil // the peer closed first: nothing was lost on our side
	}
	return err
}

// LocalAddr returns the inner connection's local address.
func (c *Conn) LocalAddr() net.Addr { return c.s.inner.LocalAddr() }

// RemoteAddr returns the inner connection's remote address.
func (c *Conn) RemoteAddr() net.Addr { return c.s.inner.RemoteAddr() }

// SetDeadline sets the read and write deadlines of the inner connection.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets the inner connection's read deadline (the handshake's reads too).
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.s.dlMu.Lock()
	defer c.s.dlMu.Unlock()
	c.s.readDeadline = t
	return c.s.inner.SetReadDeadline(t)
}

// SetWriteDeadline sets the inner connection's write deadline. A write that times out breaks
// the connection's record stream (later writes fail), as in crypto/tls.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.s.inner.SetWriteDeadline(t) }

// NetConn returns the inner connection. Reading or writing it directly breaks the TLS stream.
func (c *Conn) NetConn() net.Conn { return c.s.inner }

// ConnectionState describes a connection once its handshake completed.
type ConnectionState struct {
	Version         string       // "TLSv1.2" or "TLSv1.3"
	Cipher          string       // the cipher suite
	ALPN            string       // the negotiated application protocol, or ""
	ServerName      string       // the SNI name the client sent (server) or asked for (client)
	Resumed         bool         // the session was resumed
	Secured         bool         // the handshake completed
	PeerCertificate *Certificate // the peer's leaf certificate, or nil
}

func (s *connState) str(f func(*C.sli_conn) *C.char) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c == nil {
		return ""
	}
	return C.GoString(f(s.c))
}

func (s *connState) flag(f func(*C.sli_conn) C.int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.c != nil && f(s.c) == 1
}

// Version returns the negotiated protocol, "TLSv1.2" or "TLSv1.3" ("" before the handshake).
func (c *Conn) Version() string {
	return c.s.str(func(x *C.sli_conn) *C.char { return C.sli_conn_version(x) })
}

// Cipher returns the negotiated cipher suite's name.
func (c *Conn) Cipher() string {
	return c.s.str(func(x *C.sli_conn) *C.char { return C.sli_conn_cipher(x) })
}

// ALPN returns the negotiated application protocol, or "".
func (c *Conn) ALPN() string {
	return c.s.str(func(x *C.sli_conn) *C.char { return C.sli_conn_alpn(x) })
}

// ServerName returns the SNI name the client sent (server side) or asked for (client side).
func (c *Conn) ServerName() string {
	return c.s.str(func(x *C.sli_conn) *C.char { return C.sli_conn_servername(x) })
}

// IsResumed reports whether the session was resumed.
func (c *Conn) IsResumed() bool {
	return c.s.flag(func(x *C.sli_conn) C.int { return C.sli_conn_is_resumed(x) })
}

// IsSecured reports whether the handshake completed.
func (c *Conn) IsSecured() bool {
	return c.s.flag(func(x *C.sli_conn) C.int { return C.sli_conn_is_secured(x) })
}

// PeerCertificate returns the peer's leaf certificate, or nil. It stays valid after Close.
func (c *Conn) PeerCertificate() *Certificate {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c == nil {
		return nil
	}
	p := C.sli_conn_peer_cert(s.c)
	if p == nil {
		return nil
	}
	return newCertificate(C.sli_cert_up_ref(p))
}

// ConnectionState returns the connection's parameters.
func (c *Conn) ConnectionState() ConnectionState {
	return ConnectionState{Version: c.Version(), Cipher: c.Cipher(), ALPN: c.ALPN(),
		ServerName: c.ServerName(), Resumed: c.IsResumed(), Secured: c.IsSecured(),
		PeerCertificate: c.PeerCertificate()}
}

var _ net.Conn = (*Conn)(nil)
