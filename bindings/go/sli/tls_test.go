package sli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func serverCtx(t testing.TB, extra Config) *Context {
	t.Helper()
	cfg := Config{"cert": certFile(), "key": keyFile()}
	for k, v := range extra {
		cfg[k] = v
	}
	ctx, err := NewServerContext(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return ctx
}

func clientCtx(t testing.TB, extra Config) *Context {
	t.Helper()
	cfg := Config{"ca": caFile()}
	for k, v := range extra {
		cfg[k] = v
	}
	ctx, err := NewClientContext(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return ctx
}

// pipePair returns a server and a client Conn over net.Pipe (no file descriptor at all), with
// their handshakes done.
func pipePair(t testing.TB, sctx, cctx *Context) (*Conn, *Conn) {
	t.Helper()
	a, b := net.Pipe()
	s, c := Server(a, sctx), Client(b, cctx, "localhost")
	errc := make(chan error, 1)
	go func() { errc <- s.Handshake() }()
	if err := c.Handshake(); err != nil {
		t.Fatal("client handshake:", err)
	}
	if err := <-errc; err != nil {
		t.Fatal("server handshake:", err)
	}
	t.Cleanup(func() { closeBoth(s, c) })
	return s, c
}

// closeBoth closes the two ends of a pair, the pipe first: over net.Pipe, which has no buffer, a
// close_notify waits for the peer to read it (up to Close's 5 s bound).
func closeBoth(a, b *Conn) {
	a.NetConn().Close()
	b.NetConn().Close()
	a.Close()
	b.Close()
}

func within(t testing.TB, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Fatalf("%s did not finish within %v\n%s", what, d, buf[:n])
	}
}

func TestTLSOverPipe(t *testing.T) {
	within(t, 20*time.Second, "the pipe test", func() {
		s, c := pipePair(t, serverCtx(t, Config{"alpn": "h2,http/1.1"}), clientCtx(t, Config{"alpn": "h2"}))
		go func() {
			buf := make([]byte, 100)
			n, _ := s.Read(buf)
			s.Write(append([]byte("echo: "), buf[:n]...))
			s.Close()
		}()
		c.Write([]byte("hello"))
		got, err := io.ReadAll(c) // ends with io.EOF: close_notify came
		if err != nil || string(got) != "echo: hello" {
			t.Fatalf("read %q %v", got, err)
		}
		st := c.ConnectionState()
		if st.Version != "TLSv1.3" || st.Cipher == "" || st.ALPN != "h2" || !st.Secured || st.ServerName != "localhost" {
			t.Fatalf("state %+v", st)
		}
		leaf, _ := LoadCertificate(certFile())
		if st.PeerCertificate == nil || st.PeerCertificate.FingerprintSHA256() != leaf.FingerprintSHA256() {
			t.Fatal("peer certificate")
		}
		if s.PeerCertificate() != nil {
			t.Fatal("the server has no client certificate")
		}
	})
}

func TestTLSListenDialResume(t *testing.T) {
	within(t, 20*time.Second, "listen/dial", func() {
		sctx := serverCtx(t, nil)
		l, err := Listen("tcp", "127.0.0.1:0", sctx)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					io.Copy(c, c) // echo until the client's close_notify
				}()
			}
		}()
		cctx := clientCtx(t, nil)
		for i := 0; i < 2; i++ {
			c, err := Dial("tcp", l.Addr().String(), cctx)
			if err != nil {
				t.Fatal(err)
			}
			data := random(t, 1<<20)
			go c.Write(data)
			got := make([]byte, len(data))
			if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("echo of 1 MiB: %v", err)
			}
			// close_notify only now: BoringSSL ignores the session tickets that come after it
			c.CloseWrite()
			if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
				t.Fatalf("after the echo: %q %v", rest, err)
			}
			if i == 1 && !c.IsResumed() {
				t.Error("the second connection was not resumed")
			}
			if c.RemoteAddr().String() != l.Addr().String() {
				t.Fatalf("remote %v", c.RemoteAddr())
			}
			c.Close()
		}
		// the IP address as the name
		c, err := Dial("tcp", l.Addr().String(), cctx)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	})
}

// TestTLSConcurrentReadWrite: both sides write 8 MiB while they read 8 MiB, each from two
// goroutines, over net.Pipe (which has no buffer: a Write waits for the peer's Read).
func TestTLSConcurrentReadWrite(t *testing.T) {
	within(t, 60*time.Second, "full duplex", func() {
		s, c := pipePair(t, serverCtx(t, nil), clientCtx(t, nil))
		const size = 8 << 20
		var wg sync.WaitGroup
		sums := make([][32]byte, 4)
		for i, conn := range []*Conn{s, c} {
			data := random(t, size)
			sums[i*2] = sha256.Sum256(data)
			wg.Add(2)
			go func(conn *Conn) {
				defer wg.Done()
				for off := 0; off < size; off += 100000 {
					end := off + 100000
					if end > size {
						end = size
					}
					if _, err := conn.Write(data[off:end]); err != nil {
						t.Error(err)
						return
					}
				}
			}(conn)
			go func(conn *Conn, i int) {
				defer wg.Done()
				got := make([]byte, size)
				if _, err := io.ReadFull(conn, got); err != nil {
					t.Error(err)
				}
				sums[i] = sha256.Sum256(got)
			}(conn, 3-i*2)
		}
		wg.Wait()
		if sums[0] != sums[1] || sums[2] != sums[3] {
			t.Fatal("the data differ")
		}
	})
}

func TestTLSCryptoTLSInterop(t *testing.T) {
	within(t, 20*time.Second, "crypto/tls interop", func() {
		pool := x509.NewCertPool()
		caPEM, _ := os.ReadFile(caFile())
		pool.AppendCertsFromPEM(caPEM)
		// Go's crypto/tls client, our server
		a, b := net.Pipe()
		s := Server(a, serverCtx(t, nil))
		go func() {
			buf := make([]byte, 64)
			n, _ := s.Read(buf)
			s.Write(bytes.ToUpper(buf[:n]))
			s.Close()
		}()
		gc := tls.Client(b, &tls.Config{RootCAs: pool, ServerName: "localhost"})
		gc.Write([]byte("from crypto/tls"))
		got, err := io.ReadAll(gc)
		if err != nil || string(got) != "FROM CRYPTO/TLS" {
			t.Fatalf("crypto/tls client read %q %v", got, err)
		}
		gc.Close()
		// our client, Go's crypto/tls server
		pair, _ := tls.LoadX509KeyPair(certFile(), keyFile())
		for _, maxV := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			a, b = net.Pipe()
			gs := tls.Server(a, &tls.Config{Certificates: []tls.Certificate{pair}, MaxVersion: maxV})
			go func() {
				gs.Write([]byte("from crypto/tls server"))
				gs.Close()
			}()
			c := Client(b, clientCtx(t, nil), "localhost")
			got, err = io.ReadAll(c)
			if err != nil || string(got) != "from crypto/tls server" {
				t.Fatalf("our client read %q %v", got, err)
			}
			want := map[uint16]string{tls.VersionTLS12: "TLSv1.2", tls.VersionTLS13: "TLSv1.3"}[maxV]
			if c.Version() != want {
				t.Fatalf("version %s, want %s", c.Version(), want)
			}
			c.Close()
		}
	})
}

// freePort returns a port that was free a moment ago.
func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestTLSServesOpenSSLClient(t *testing.T) {
	openssl := tool(t, "openssl")
	for _, v := range []string{"1.2", "1.3"} {
		l, err := Listen("tcp", "127.0.0.1:0", serverCtx(t, Config{"max_version": v}))
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan string, 1)
		go func() {
			c, err := l.Accept()
			if err != nil {
				served <- err.Error()
				return
			}
			defer c.Close()
			c.Write([]byte("greeting from go\n"))
			c.(*Conn).CloseWrite()
			io.Copy(io.Discard, c)
			served <- c.(*Conn).Version()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, openssl, "s_client", "-connect", l.Addr().String(), "-CAfile", caFile(),
			"-verify_return_error", "-servername", "localhost", "-ign_eof")
		out, _ := cmd.CombinedOutput()
		cancel()
		l.Close()
		if !strings.Contains(string(out), "greeting from go") || !strings.Contains(string(out), "TLSv"+v) ||
			!strings.Contains(string(out), "Verify return code: 0 (ok)") {
			t.Fatalf("openssl s_client (TLS %s):\n%s", v, out)
		}
		if got := <-served; got != "TLSv"+v {
			t.Fatalf("server saw %s", got)
		}
	}
}

func TestTLSClientOfOpenSSLServer(t *testing.T) {
	openssl := tool(t, "openssl")
	port := freePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv := exec.CommandContext(ctx, openssl, "s_server", "-accept", fmt.Sprintf("127.0.0.1:%d", port),
		"-cert", certFile(), "-key", keyFile(), "-rev", "-naccept", "1", "-quiet")
	var serr bytes.Buffer
	srv.Stdout, srv.Stderr = &serr, &serr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Wait()
	defer srv.Process.Kill()
	var c *Conn
	var err error
	for i := 0; i < 100; i++ {
		if c, err = Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), clientCtx(t, nil)); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("dial openssl s_server: %v\n%s", err, serr.String())
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte("hello openssl\n"))
	buf := make([]byte, 0, 64)
	for !bytes.Contains(buf, []byte("lssnepo olleh")) {
		tmp := make([]byte, 64)
		n, err := c.Read(tmp)
		if err != nil {
			t.Fatalf("read %q: %v\n%s", buf, err, serr.String())
		}
		buf = append(buf, tmp[:n]...)
	}
	if c.Version() != "TLSv1.3" {
		t.Fatalf("version %s", c.Version())
	}
}

func TestTLSVerifyFailures(t *testing.T) {
	within(t, 20*time.Second, "verification", func() {
		for _, tc := range []struct {
			name string
			cctx *Context
			want *Error
		}{
			{"wrong.example", clientCtx(t, nil), ErrHostname},
			{"localhost", func() *Context { c, _ := NewClientContext(nil); return c }(), ErrUntrusted},
		} {
			a, b := net.Pipe()
			s := Server(a, serverCtx(t, nil))
			serr := make(chan error, 1)
			go func() { serr <- s.Handshake() }()
			c := Client(b, tc.cctx, tc.name)
			err := c.Handshake()
			wantCode(t, err, tc.want)
			if err2 := c.Handshake(); err2 != err {
				t.Fatal("a failed handshake is not sticky")
			}
			_, rerr := c.Read(make([]byte, 1))
			if rerr != err {
				t.Fatalf("read after a failed handshake: %v", rerr)
			}
			c.Close()
			if e := <-serr; e == nil {
				t.Fatal("the server's handshake succeeded")
			} else if _, ok := e.(*Error); !ok {
				t.Fatalf("server: %T %v", e, e)
			}
			s.Close()
		}
	})
}

func TestTLSPlainPeers(t *testing.T) {
	within(t, 20*time.Second, "plain peers", func() {
		// a plain-text client talks to our server (over TCP: the message names the peer)
		l, _ := Listen("tcp", "127.0.0.1:0", serverCtx(t, nil))
		defer l.Close()
		errc := make(chan error, 1)
		go func() {
			c, err := l.Accept()
			if err != nil {
				errc <- err
				return
			}
			defer c.Close()
			errc <- c.(*Conn).Handshake()
		}()
		raw, _ := net.Dial("tcp", l.Addr().String())
		raw.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
		err := <-errc
		raw.Close()
		var e *Error
		if !errors.As(err, &e) || e.Code > -1400 || e.Code < -1499 {
			t.Fatalf("a plain client: %v", err)
		}
		if !strings.Contains(e.Message, "127.0.0.1:") {
			t.Errorf("the message does not name the peer: %v", e)
		}
		// our client talks to a plain-text server
		pa, pb := net.Pipe()
		go func() { pa.Write([]byte("220 smtp.example.com ESMTP ready\r\n")); pa.Close() }()
		c := Client(pb, clientCtx(t, nil), "localhost")
		err = c.Handshake()
		if !errors.As(err, &e) || err == io.EOF {
			t.Fatalf("a plain server: %v", err)
		}
		c.Close()
		// a peer that says nothing and leaves
		qa, qb := net.Pipe()
		qa.Close()
		c = Client(qb, clientCtx(t, nil), "localhost")
		if err := c.Handshake(); err == nil || err == io.EOF {
			t.Fatalf("a peer gone at once: %v", err)
		}
	})
}

func TestTLSTruncation(t *testing.T) {
	within(t, 20*time.Second, "truncation", func() {
		for _, v := range []string{"1.2", "1.3"} {
			s, c := pipePair(t, serverCtx(t, Config{"max_version": v}), clientCtx(t, nil))
			go func() {
				buf := make([]byte, 4)
				io.ReadFull(c, buf) // the session tickets come before these bytes
				c.NetConn().Close() // gone without close_notify
			}()
			s.Write([]byte("data"))
			_, err := s.Read(make([]byte, 10))
			wantCode(t, err, ErrTruncated)
			if err == io.EOF || !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("truncation reads as %v", err)
			}
			if _, err2 := s.Read(make([]byte, 10)); !errors.Is(err2, ErrTruncated) {
				t.Fatalf("second read: %v", err2)
			}
		}
	})
}

func TestTLSHalfClose(t *testing.T) {
	within(t, 20*time.Second, "half-close", func() {
		s, c := pipePair(t, serverCtx(t, nil), clientCtx(t, nil))
		go func() {
			got, err := io.ReadAll(s) // until the client's close_notify
			if err != nil {
				t.Error(err)
			}
			s.Write(append([]byte("after your end: "), got...))
			s.Close()
		}()
		c.Write([]byte("request"))
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte("more")); err == nil {
			t.Fatal("a write after CloseWrite")
		}
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "after your end: request" {
			t.Fatalf("read %q %v", got, err)
		}
	})
}

func TestTLSDeadlines(t *testing.T) {
	within(t, 30*time.Second, "deadlines", func() {
		s, c := pipePair(t, serverCtx(t, nil), clientCtx(t, nil))
		// a read deadline: a timeout, then the connection still works
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		start := time.Now()
		_, err := c.Read(make([]byte, 10))
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read deadline: %v", err)
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("the deadline came late")
		}
		c.SetReadDeadline(time.Time{})
		go s.Write([]byte("still here"))
		buf := make([]byte, 10)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "still here" {
			t.Fatalf("after a timeout: %q %v", buf, err)
		}
		// a write deadline with nobody reading: a timeout, and the stream is broken after it
		s.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		_, err = s.Write(make([]byte, 1<<20))
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("write deadline: %v", err)
		}
		s.SetWriteDeadline(time.Time{})
		if _, err := s.Write([]byte("x")); err == nil {
			t.Fatal("a write after a timed-out write")
		}

		// the handshake timeout of the context: a client that never speaks
		a, b := net.Pipe()
		defer b.Close()
		hs := Server(a, serverCtx(t, Config{"handshake_timeout": "300"}))
		start = time.Now()
		err = hs.Handshake()
		wantCode(t, err, ErrTimeout)
		if !errors.As(err, &ne) || !ne.Timeout() || time.Since(start) > 5*time.Second {
			t.Fatalf("handshake timeout: %v after %v", err, time.Since(start))
		}
		hs.Close()

		// a read deadline during the handshake; the handshake may be retried after it
		a, b = net.Pipe()
		hs = Server(a, serverCtx(t, nil))
		hs.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		err = hs.Handshake()
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("handshake read deadline: %v", err)
		}
		hs.SetReadDeadline(time.Time{})
		cl := Client(b, clientCtx(t, nil), "localhost")
		errc := make(chan error, 1)
		go func() { errc <- cl.Handshake() }()
		if err := hs.Handshake(); err != nil {
			t.Fatalf("handshake after a timeout: %v", err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		closeBoth(hs, cl)
	})
}

// A write that timed out breaks the write side only: the peer's data and its close_notify are
// still read (as crypto/tls does), not the write's timeout over and over.
func TestTLSReadAfterWriteTimeout(t *testing.T) {
	within(t, 30*time.Second, "read after a write timeout", func() {
		l, err := Listen("tcp", "127.0.0.1:0", serverCtx(t, nil))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		release := make(chan struct{})
		go func() {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			sc := c.(*Conn)
			if sc.Handshake() == nil {
				sc.Write([]byte("hello"))
				sc.CloseWrite()
			}
			<-release // never reads: the client's big write fills the buffers
		}()
		defer close(release)
		c, err := Dial("tcp", l.Addr().String(), clientCtx(t, nil))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
		_, err = c.Write(make([]byte, 64<<20))
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("the write should time out: %v", err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "hello" {
			t.Fatalf("after the write timeout, Read gave %q, %v; want hello and io.EOF", got, err)
		}
	})
}

func TestTLSCallbackPanic(t *testing.T) {
	within(t, 20*time.Second, "a panicking callback", func() {
		s, c := pipePair(t, serverCtx(t, nil), clientCtx(t, nil))
		var armed atomic.Bool
		hook := func(st *connState, dir string) {
			if armed.Load() && st == c.s && dir == "read" {
				panic("boom in the transport")
			}
		}
		testHookTransport.Store(&hook)
		defer testHookTransport.Store(nil)
		go s.Write([]byte("data"))
		armed.Store(true)
		n, err := c.Read(make([]byte, 10))
		if n != 0 || err == nil || err == io.EOF {
			t.Fatalf("a panic read as %d, %v", n, err)
		}
		wantCode(t, err, ErrIO)
		if !strings.Contains(err.Error(), "boom in the transport") {
			t.Fatalf("the panic's message is lost: %v", err)
		}
		if _, err2 := c.Read(make([]byte, 10)); err2 == nil || err2 == io.EOF {
			t.Fatalf("the connection goes on after a panic: %v", err2)
		}
	})
}

// TestTLSGarbageCollected drops connections, contexts and certificates without Close, some in
// the middle of a handshake, and collects them.
func TestTLSGarbageCollected(t *testing.T) {
	within(t, 60*time.Second, "garbage collection", func() {
		sctx, cctx := serverCtx(t, nil), clientCtx(t, nil)
		for i := 0; i < 100; i++ {
			a, b := net.Pipe()
			s, c := Server(a, sctx), Client(b, cctx, "localhost")
			if i%2 == 0 {
				go s.Handshake()
				c.Handshake()
				_ = c.PeerCertificate()
			} else {
				go c.Handshake() // blocked on the pipe; the pipe is closed below
			}
			a.Close()
			b.Close()
			if i%10 == 0 {
				runtime.GC()
			}
		}
		for i := 0; i < 5; i++ {
			runtime.GC()
			time.Sleep(10 * time.Millisecond)
		}
		for i := 0; i < 20; i++ {
			NewServerContext(Config{"cert": certFile(), "key": keyFile()})
			kr, _ := GenerateKeyring()
			kr.Seal([]byte("x"), nil)
		}
		runtime.GC()
		runtime.GC()
	})
}

func TestTLSUseAfterClose(t *testing.T) {
	within(t, 20*time.Second, "use after close", func() {
		s, c := pipePair(t, serverCtx(t, nil), clientCtx(t, nil))
		go io.Copy(io.Discard, s)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); !errors.Is(err, ErrClosed) || !errors.Is(err, net.ErrClosed) {
			t.Fatalf("second Close: %v", err)
		}
		_, err := c.Read(make([]byte, 1))
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read after Close: %v", err)
		}
		if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Write after Close: %v", err)
		}
		if c.Version() != "" || c.IsSecured() || c.PeerCertificate() != nil {
			t.Fatal("a closed connection answered")
		}
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		if err := Client(b, nil, "localhost").Handshake(); !errors.Is(err, ErrInval) {
			t.Fatalf("nil context: %v", err)
		}
		if err := Client(b, clientCtx(t, nil), "").Handshake(); !errors.Is(err, ErrInval) {
			t.Fatalf("no server name: %v", err)
		}
		if err := Client(b, serverCtx(t, nil), "localhost").Handshake(); !errors.Is(err, ErrInval) {
			t.Fatalf("a server context for a client: %v", err)
		}
		closed := clientCtx(t, nil)
		closed.Close()
		closed.Close()
		if err := Client(b, closed, "localhost").Handshake(); !errors.Is(err, ErrClosed) {
			t.Fatalf("a closed context: %v", err)
		}
		if _, err := Listen("tcp", "127.0.0.1:0", clientCtx(t, nil)); err == nil {
			t.Fatal("Listen with a client context")
		}
	})
}

func TestTLSSettings(t *testing.T) {
	_, err := NewServerContext(Config{"cert": certFile(), "key": keyFile(), "min_version": "1.1"})
	var e *Error
	if !errors.As(err, &e) || !strings.HasPrefix(e.Name, "SLI_E_") || e.Message == "" {
		t.Fatalf("min_version 1.1: %v", err)
	}
	_, err = NewClientContext(Config{"no_such_setting": "1"})
	wantCode(t, err, ErrInval)
	_, err = NewServerContext(Config{"cert": filepath.Join(t.TempDir(), "missing.pem"), "key": keyFile()})
	if !errors.As(err, &e) || !strings.Contains(e.Message, "missing.pem") {
		t.Fatalf("a missing certificate: %v", err)
	}
	// key_password_file must come before the key: Config applies SLI_SETTING_MAP's order,
	// whatever the map's; names in any spelling
	d := t.TempDir()
	k, _ := LoadKey(keyFile(), nil)
	enc, _ := k.PrivatePEM([]byte("pw for the key"))
	os.WriteFile(filepath.Join(d, "enc.key"), enc, 0o600)
	os.WriteFile(filepath.Join(d, "pw"), []byte("pw for the key\n"), 0o600)
	for i := 0; i < 5; i++ {
		ctx, err := NewServerContext(Config{"SLI_KEY": filepath.Join(d, "enc.key"), "cert": certFile(),
			"Key-Password-File": filepath.Join(d, "pw"), "policy": "modern"})
		if err != nil {
			t.Fatalf("an encrypted key with its password file: %v", err)
		}
		ctx.Close()
	}
	names := SettingNames()
	if len(names) < 10 || names[0] != "SLI_KEY_PASSWORD_FILE" {
		t.Fatalf("setting names %v", names)
	}
	s, c := pipePair(t, serverCtx(t, Config{"policy": "modern"}), clientCtx(t, Config{"max_version": "1.3"}))
	if s.Version() != "TLSv1.3" || c.Version() != "TLSv1.3" {
		t.Fatal("modern")
	}
}

// TestTLSWithPythonBinding: a Go server serves the Python binding's client, and a blob sealed
// in Go opens in Python (the bindings interoperate over the same libsli).
func TestTLSWithPythonBinding(t *testing.T) {
	py := tool(t, "python3")
	pyDir, _ := filepath.Abs(filepath.Join("..", "..", "python"))
	if _, err := os.Stat(filepath.Join(pyDir, "sli", "tls.py")); err != nil {
		t.Skip("no Python binding at", pyDir)
	}
	l, err := Listen("tcp", "127.0.0.1:0", serverCtx(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64)
		n, _ := c.Read(buf)
		c.Write(append([]byte("go says: "), buf[:n]...))
		c.(*Conn).CloseWrite()
		io.Copy(io.Discard, c)
	}()
	kr, _ := GenerateKeyring()
	ring := filepath.Join(t.TempDir(), "ring")
	kr.Save(ring)
	blob, _ := kr.Seal([]byte("sealed in go"), []byte("ad"))
	os.WriteFile(ring+".blob", blob, 0o600)
	script := `
import socket, sys
import sli
from sli import tls
port, ca, ring = int(sys.argv[1]), sys.argv[2], sys.argv[3]
kr = sli.Keyring.load(ring)
print(kr.open(open(ring + ".blob", "rb").read(), ad=b"ad").decode())
s = socket.create_connection(("127.0.0.1", port))  # blocking: sli.tls wants it so
c = tls.Context.client(ca=ca).wrap(s, "localhost")
c.sendall(b"hi from python")
out = b""
while True:
    d = c.read()
    if not d:
        break
    out += d
print(out.decode())
c.close()
`
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "-c", script, fmt.Sprint(l.Addr().(*net.TCPAddr).Port), caFile(), ring)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+pyDir)
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != "sealed in go\ngo says: hi from python\n" {
		t.Fatalf("python: %v\n%s", err, out)
	}
}
