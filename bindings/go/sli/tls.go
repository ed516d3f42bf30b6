package sli

/*
#include "sli_go.h"
*/
import "C"

import (
	"net"
	"runtime"
	"sort"
	"strings"
	"sync"
)

// Config holds TLS settings by the names of SLI_SETTING_MAP (api/sli.h): the same names as the
// sli command's TLS flags and the preload shim's variables, given with or without the "SLI_"
// prefix, in any case, '-' or '_' ("cert", "key", "ca", "crl", "client_cert", "policy",
// "ciphers", "min_version", "max_version", "alpn", "ticket_keys", "session_resumption",
// "handshake_timeout", "insecure", …). Values are strings ("1" for on). A Config is applied in
// the order of SLI_SETTING_MAP, whatever the map's order; an unknown name or a malformed value
// is refused by libsli (ErrInval) when the context is made.
type Config map[string]string

// SettingNames returns the names of SLI_SETTING_MAP ("SLI_CERT", …) in the order they apply.
func SettingNames() []string {
	var out []string
	for i := 0; ; i++ {
		p := C.go_setting_name(C.size_t(i))
		if p == nil {
			return out
		}
		out = append(out, C.GoString(p))
	}
}

// settingName is the SLI_SETTING_MAP name of a Config key: "min-version" → "SLI_MIN_VERSION".
func settingName(k string) string {
	n := strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(k), "-", "_"))
	if !strings.HasPrefix(n, "SLI_") {
		n = "SLI_" + n
	}
	return n
}

// ordered returns the settings of cfg in SLI_SETTING_MAP's order, unknown names last (sorted).
func (cfg Config) ordered() [][2]string {
	rank := map[string]int{}
	for i, n := range SettingNames() {
		rank[n] = i
	}
	out := make([][2]string, 0, len(cfg))
	for k, v := range cfg {
		out = append(out, [2]string{settingName(k), v})
	}
	sort.Slice(out, func(i, j int) bool {
		ri, oki := rank[out[i][0]]
		rj, okj := rank[out[j][0]]
		switch {
		case oki && okj:
			return ri < rj
		case oki != okj:
			return oki
		}
		return out[i][0] < out[j][0]
	})
	return out
}

// Context is a client or server TLS context: settings for many connections, with sli's
// policies (TLS 1.2 and 1.3, ECDHE, AEAD; clients verify the server's certificate and name).
// Safe for concurrent use.
type Context struct {
	mu     sync.RWMutex
	c      *C.sli_ctx
	server bool
}

func newContext(cfg Config, server bool) (*Context, error) {
	cc := C.sli_config_new()
	if cc == nil {
		return nil, newError(int(C.SLI_E_NOMEM), "sli_config_new")
	}
	defer C.sli_config_free(cc)
	for _, kv := range cfg.ordered() {
		name, val := cstr([]byte(kv[0])), cstr([]byte(kv[1]))
		if rc := C.sli_config_set_option(cc, cbytes(name), cbytes(val)); rc < 0 {
			return nil, newError(int(rc), C.GoString(C.sli_config_error(cc)))
		}
	}
	var ctx *C.sli_ctx
	var rc C.int
	if server {
		rc = C.sli_ctx_new_server(&ctx, cc, 0)
	} else {
		rc = C.sli_ctx_new_client(&ctx, cc, 0)
	}
	if rc < 0 {
		return nil, newError(int(rc), C.GoString(C.sli_config_error(cc)))
	}
	x := &Context{c: ctx, server: server}
	runtime.SetFinalizer(x, (*Context).Close)
	return x, nil
}

// NewServerContext makes a server context. Without "cert" and "key" it serves the per-install
// default identity (a self-signed certificate libsli generates once).
func NewServerContext(cfg Config) (*Context, error) { return newContext(cfg, true) }

// NewClientContext makes a client context: it verifies servers against "ca" (else the system's
// roots) and the name given to Client.
func NewClientContext(cfg Config) (*Context, error) { return newContext(cfg, false) }

// IsServer reports whether ctx is a server context.
func (ctx *Context) IsServer() bool { return ctx.server }

// Close frees the context; connections made from it keep their own reference.
func (ctx *Context) Close() error {
	ctx.mu.Lock()
	defer ctx.mu.Unlock()
	if ctx.c != nil {
		C.sli_ctx_free(ctx.c)
		ctx.c = nil
		runtime.SetFinalizer(ctx, nil)
	}
	return nil
}

// listener is the net.Listener of NewListener.
type listener struct {
	net.Listener
	ctx *Context
}

// Accept waits for the next connection and returns it as a server *Conn (the handshake runs on
// its first Read or Write, or on Handshake).
func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Server(c, l.ctx), nil
}

// NewListener returns a listener whose Accept gives TLS server connections over the
// connections inner accepts.
func NewListener(inner net.Listener, ctx *Context) net.Listener {
	return &listener{Listener: inner, ctx: ctx}
}

// Listen listens on network and address (as net.Listen does) and serves TLS with ctx.
func Listen(network, address string, ctx *Context) (net.Listener, error) {
	if ctx == nil || !ctx.server {
		return nil, newError(int(C.SLI_E_INVAL), "Listen needs a server context")
	}
	l, err := net.Listen(network, address)
	if err != nil {
		return nil, err
	}
	return NewListener(l, ctx), nil
}

// Dial connects to address (as net.Dial does), runs the TLS handshake with ctx, verifying the
// server against the host part of address, and returns the connection.
func Dial(network, address string, ctx *Context) (*Conn, error) {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	raw, err := net.Dial(network, address)
	if err != nil {
		return nil, err
	}
	c := Client(raw, ctx, host)
	if err := c.Handshake(); err != nil {
		_ = raw.Close()
		c.free()
		return nil, err
	}
	return c, nil
}
