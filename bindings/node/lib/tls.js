'use strict';
// tls.js — TLS over a connection the program already has, with sli's policies (TLS 1.2+, ECDHE,
// AEAD, verification on for clients): a stream.Duplex (TLSSocket) over a net.Socket or any other
// Duplex, through libsli's callback transport. The engine's transport callbacks (in C) only move
// bytes between two buffers: ciphertext from the socket's 'data' goes in, the engine's records
// come out and are written to the socket here. No JS runs inside libsli.
//
//   const ctx = tls.Context.server({ cert: 'site.pem', key: 'site.key' });
//   tls.createServer(ctx, (s) => s.pipe(s)).listen(8443);
//   const c = tls.connect({ host: '127.0.0.1', port: 8443, servername: 'localhost',
//                           ctx: tls.Context.client({ ca: 'ca.pem' }) });
const net = require('node:net');
const { Duplex } = require('node:stream');
const { N, kHandle, kToken, checkToken, typeError, handleOf } = require('./native');
const { SliError } = require('./errors');
const { wrapCertificate } = require('./certs');

const WANT_READ = -1001;
const WANT_WRITE = -1002;
const READ_SIZE = 64 * 1024; // plaintext taken from the engine per call
const INBOUND_HIGH = 256 * 1024; // ciphertext held before the transport is paused
const EPIPE = 32;
const EIO = 5;

const SETTINGS = N.settingNames(); // SLI_SETTING_MAP's names, in the order they are applied

/** 'minVersion' or 'min_version' → 'SLI_MIN_VERSION' */
function settingName(key) {
  return 'SLI_' + key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

function settingPairs(settings) {
  if (settings === undefined || settings === null) settings = {};
  if (typeof settings !== 'object') throw typeError('settings must be an object');
  const pairs = [];
  for (const [key, value] of Object.entries(settings)) {
    if (value === undefined || value === null || value === false) continue;
    let v;
    if (value === true) v = '1';
    else if (Array.isArray(value)) v = value.join(',');
    else if (typeof value === 'string' || typeof value === 'number') v = String(value);
    else if (value instanceof URL) v = require('node:url').fileURLToPath(value);
    else throw typeError(`setting ${key} must be a string, a number, a boolean or an array`);
    pairs.push([settingName(key), v]);
  }
  // the engine's order (a key's password file before the key); names it does not know go last
  // and are refused by it (SLI_E_INVAL)
  const rank = (n) => { const i = SETTINGS.indexOf(n); return i < 0 ? SETTINGS.length : i; };
  return pairs.sort((a, b) => rank(a[0]) - rank(b[0]));
}

/**
 * A server or client context: settings shared by many connections. Settings are the names of
 * SLI_SETTING_MAP (api/sli.h) without the SLI_ prefix, in lower case or camelCase: cert, key, ca,
 * crl, client_cert, policy, ciphers, min_version, max_version, alpn, ticket_keys,
 * session_resumption, handshake_timeout, password_file, insecure, insecure_keylog.
 */
class Context {
  /** @private use Context.server() or Context.client() */
  constructor(token, handle, isServer) {
    checkToken(token, 'Context', 'Context.server() or Context.client()');
    this[kHandle] = handle;
    /** Whether this is a server context. */
    this.isServer = isServer;
  }

  /** Replaces the settings for connections made from now on (live ones keep theirs). */
  reload(settings) {
    N.ctxReload(this[kHandle], settingPairs(settings));
  }

  /** Counters since the context was made: {handshakes, resumed, failed, bytesIn, bytesOut, live}. */
  stats() {
    return N.ctxStats(this[kHandle]);
  }

  /** Lets the context go (connections keep their own reference). */
  close() {
    N.close(this[kHandle]);
  }
}

/**
 * A server context (without cert and key: the per-install default identity). Callable with or
 * without `new`.
 */
Context.server = function server(settings) {
  return new Context(kToken, N.ctxNew(true, settingPairs(settings)), true);
};

/** A client context: it verifies servers (against `ca`, else the system's roots). */
Context.client = function client(settings) {
  return new Context(kToken, N.ctxNew(false, settingPairs(settings)), false);
};

function isDuplex(s) {
  return s && typeof s.write === 'function' && typeof s.on === 'function' &&
    typeof s.end === 'function';
}

function errnoOf(err) {
  const e = err && typeof err.errno === 'number' ? Math.abs(err.errno) : 0;
  return e > 0 && e < 4096 ? e : EIO;
}

/**
 * One TLS connection over a transport stream, itself a stream.Duplex of plaintext. Emits 'secure'
 * after the handshake; 'end' only after the peer's close_notify; a peer that leaves without it
 * is an 'error' with code SLI_E_TRUNCATED. end() sends close_notify (reading goes on until the
 * peer's). Made by secure(), connect() or createServer().
 */
class TLSSocket extends Duplex {
  #h;
  #sock;
  #ctx;
  #secured = false;
  #wantData = false;
  #inPump = false;
  #again = false;
  #wq = null; // the write in progress: {buf, off, cb}
  #finalCb = null;
  #closeSent = false;
  #peerEnded = false;
  #waitDrain = false;
  #paused = false;
  #timer = null;
  #info = null;
  #peerCert;
  #on;

  /** @private use secure(), connect() or createServer() */
  constructor(token, socket, ctx, { servername, allowHalfOpen = false, session, ...rest } = {}) {
    checkToken(token, 'TLSSocket', 'tls.secure(), tls.connect() or tls.createServer()');
    if (!isDuplex(socket)) throw typeError('socket must be a net.Socket or another Duplex stream');
    const ch = handleOf(ctx, Context, 'ctx');
    if (ctx.isServer && servername) throw typeError('servername is for a client context');
    if (!ctx.isServer && (typeof servername !== 'string' || !servername)) {
      throw typeError('a client connection needs servername (the name it verifies), a string');
    }
    super({ allowHalfOpen, ...rest });
    this.#sock = socket;
    this.#ctx = ctx; // kept: the context lives as long as its connections' JS objects
    this.#h = N.connNew(ch, ctx.isServer ? null : servername);
    if (session) N.connSessionImport(this.#h, session);
    const setPeer = () => {
      if (this.#h !== null && socket.remoteAddress) {
        N.connSetPeer(this.#h, socket.remoteAddress, socket.remotePort || 0);
      }
    };
    // the first flight waits for a connecting socket: the engine then knows the peer's address
    // (a client context's sessions are kept by server name and address)
    const begin = () => { setPeer(); this.#pump(); };
    if (socket.connecting) socket.once('connect', begin);
    else process.nextTick(begin);
    this.#on = {
      data: (d) => this.#onData(d),
      end: () => this.#onEnd(0),
      close: () => this.#onEnd(0, EPIPE),
      error: (err) => this.#onError(err),
      drain: () => { this.#waitDrain = false; this.#pump(); },
    };
    for (const [ev, fn] of Object.entries(this.#on)) socket.on(ev, fn);
  }

  #onData(d) {
    if (this.destroyed || this.#h === null) return;
    const held = N.connFeed(this.#h, d);
    if (held >= INBOUND_HIGH && !this.#paused && typeof this.#sock.pause === 'function') {
      this.#paused = true;
      this.#sock.pause();
    }
    this.#pump();
  }

  #onEnd(errno, writeErrno = 0) {
    if (this.destroyed || this.#h === null) return;
    N.connEof(this.#h, errno, writeErrno);
    this.#pump();
  }

  #onError(err) {
    if (this.destroyed || this.#h === null) return;
    N.connEof(this.#h, errnoOf(err), errnoOf(err));
    this.#pump();
    if (!this.destroyed) {
      this.destroy(new SliError(-1201, 'SLI_E_IO', `the transport failed: ${err && err.message}`));
    }
  }

  // Drives the engine as far as the buffers allow: handshake, pending write, close_notify, reads.
  // Any exception — the engine's SliError, or one thrown by a listener of ours ('data', 'secure')
  // — fails the connection with that error: it never reads as an end of stream.
  #pump() {
    if (this.#inPump) {
      this.#again = true;
      return;
    }
    if (this.destroyed || this.#h === null) return;
    this.#inPump = true;
    try {
      do {
        this.#again = false;
        this.#step();
      } while (this.#again && !this.destroyed);
    } catch (err) {
      this.destroy(err);
    } finally {
      this.#inPump = false;
    }
  }

  #step() {
    const h = this.#h;
    if (!this.#secured) {
      const rc = N.connHandshake(h);
      this.#flush();
      if (rc !== 0) return this.#armTimer();
      this.#secured = true;
      this.#clearTimer();
      this.emit('secure');
      if (this.destroyed) return;
    }
    if (this.#wq) this.#writeSome();
    if (this.#finalCb && !this.#wq && !this.#closeSent) {
      const rc = N.connClose(h);
      this.#flush();
      if (rc === 0) {
        this.#closeSent = true;
        const cb = this.#finalCb;
        this.#finalCb = null;
        cb();
      }
    }
    // reads go on while the readable side is under its high-water mark, asked for or not (as
    // net.Socket reads): a peer's close_notify or its leaving is seen even by a program that never
    // reads — else such a connection, its socket and its engine would live for ever
    while ((this.#wantData || this.readableLength < this.readableHighWaterMark) &&
           !this.#peerEnded && !this.destroyed) {
      const r = N.connRead(h, READ_SIZE);
      if (typeof r === 'number') break; // the engine wants more ciphertext
      this.#flush();
      if (r === null) {
        this.#peerEnded = true;
        this.push(null);
        this.read(0); // nothing left unread: 'end' now, as net.Socket does at its EOF
        break;
      }
      if (!this.push(r)) this.#wantData = false;
    }
    if (this.destroyed) return;
    this.#flush();
    if (this.#paused && N.connInbound(h) < INBOUND_HIGH / 2) {
      this.#paused = false;
      this.#sock.resume();
    }
  }

  #writeSome() {
    const q = this.#wq;
    for (let guard = 0; q.off < q.buf.length && guard < 1e6; guard++) {
      if (this.#waitDrain) return;
      const n = N.connWrite(this.#h, q.buf, q.off);
      this.#flush();
      if (n < 0) {
        if (n === WANT_WRITE) continue; // the outbound buffer was full; it was just flushed
        return; // WANT_READ: on the next bytes from the peer
      }
      q.off += n;
    }
    if (this.#waitDrain) return; // all taken; the callback once the socket drains
    this.#wq = null;
    q.cb();
  }

  // the engine's outbound records to the transport
  #flush() {
    const out = N.connTake(this.#h);
    if (out === null) return;
    const s = this.#sock;
    if (s.destroyed || s.writableEnded) return; // gone: the engine learns it at its next write
    if (!s.write(out)) this.#waitDrain = true;
  }

  #armTimer() {
    if (this.#timer) return;
    const ms = N.connDeadline(this.#h);
    if (ms < 0) return;
    this.#timer = setTimeout(() => { this.#timer = null; this.#pump(); }, ms + 1);
  }

  #clearTimer() {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  _read() {
    this.#wantData = true;
    this.#pump();
  }

  _write(chunk, encoding, callback) {
    if (this.#closeSent) return callback(new SliError(-1101, 'SLI_E_CLOSED', 'write after end'));
    this.#wq = { buf: chunk, off: 0, cb: callback };
    this.#pump();
  }

  _final(callback) {
    this.#finalCb = callback;
    this.#pump();
  }

  _destroy(err, callback) {
    this.#clearTimer();
    const s = this.#sock;
    for (const [ev, fn] of Object.entries(this.#on)) s.removeListener(ev, fn);
    if (this.#h !== null) {
      try {
        this.#info = N.connInfo(this.#h);
        if (this.#peerCert === undefined && this.#info.isSecured) this.#peerCert = this.#takePeerCert();
      } catch { /* keep what we had */ }
      N.close(this.#h); // frees the engine's connection and drops its strong reference
      this.#h = null;
    }
    if (this.#wq) { // a write the engine never took
      const q = this.#wq;
      this.#wq = null;
      process.nextTick(q.cb, err || new SliError(-1101, 'SLI_E_CLOSED', 'the connection was destroyed'));
    }
    // both close_notify exchanged: end the transport; else (an error, destroy()) cut it, so that
    // the peer sees a truncation, never a clean end
    if (!err && this.#closeSent && this.#peerEnded) s.end();
    else s.destroy();
    callback(err);
  }

  #infoNow() {
    if (this.#h !== null) return N.connInfo(this.#h);
    return this.#info || {};
  }

  #takePeerCert() {
    const ch = N.connPeerCert(this.#h);
    return ch ? wrapCertificate(ch) : null;
  }

  /** Whether the handshake completed. */
  get isSecured() { return !!this.#infoNow().isSecured; }
  /** "TLSv1.3" or "TLSv1.2" (null before the handshake). */
  get version() { return this.#infoNow().version ?? null; }
  /** The negotiated cipher suite's name. */
  get cipher() { return this.#infoNow().cipher ?? null; }
  /** The negotiated ALPN protocol, or null. */
  get alpn() { return this.#infoNow().alpn ?? null; }
  /** The SNI name the client sent (server side) or asked for (client side), or null. */
  get servername() { return this.#infoNow().servername ?? null; }
  /** Whether the session was resumed. */
  get isResumed() { return !!this.#infoNow().isResumed; }
  /** The peer's address as libsli names it in messages ("127.0.0.1:443"), or null. */
  get peerAddress() { return this.#infoNow().peerAddr ?? null; }
  /** The transport (a net.Socket, say). */
  get socket() { return this.#sock; }
  /** The context this connection was made from. */
  get context() { return this.#ctx; }
  /** The transport's remote address and port, when it is a net.Socket. */
  get remoteAddress() { return this.#sock.remoteAddress; }
  get remotePort() { return this.#sock.remotePort; }

  /** The peer's leaf certificate (a Certificate), or null. */
  get peerCertificate() {
    if (this.#peerCert !== undefined) return this.#peerCert;
    if (this.#h === null || !this.#infoNow().isSecured) return null;
    this.#peerCert = this.#takePeerCert();
    return this.#peerCert;
  }

  /**
   * The session, once the handshake is complete, for a client in another process to resume
   * (secure(…, {session})). It holds secrets: keep it as a key.
   */
  exportSession() {
    if (this.#h === null) throw new SliError(-1802, 'SLI_E_STATE', 'the TLS connection is closed');
    return N.connSessionExport(this.#h);
  }

  /** Passes setNoDelay to the transport (when it has it); returns this. */
  setNoDelay(noDelay) {
    if (typeof this.#sock.setNoDelay === 'function') this.#sock.setNoDelay(noDelay);
    return this;
  }
}

/**
 * TLS over `socket` (a connected net.Socket or any Duplex of bytes), with `ctx`: a TLSSocket. A
 * client needs {servername}, the name it sends (SNI) and verifies. Options: allowHalfOpen (false:
 * answer the peer's close_notify with ours), session (an exportSession() to resume).
 */
function secure(socket, ctx, options = {}) {
  return new TLSSocket(kToken, socket, ctx, options);
}

/**
 * A TCP connection to {host, port} with TLS on it (`ctx` a client Context; `servername` defaults
 * to `host`). `onSecure` is called once the handshake completes.
 */
function connect({ host = '127.0.0.1', port, ctx, servername, ...options } = {}, onSecure) {
  const sock = net.connect({ host, port, allowHalfOpen: true });
  let t;
  try {
    t = secure(sock, ctx, { servername: servername ?? host, ...options });
  } catch (err) {
    sock.destroy();
    throw err;
  }
  if (onSecure) t.once('secure', onSecure);
  return t;
}

/**
 * A net.Server whose connections are TLSSockets with `ctx` (a server Context). `onConnection`
 * (the 'secureConnection' event) gets each after its handshake; a handshake that fails, or a
 * later error on a connection with no 'error' listener of the program's, is a 'tlsClientError'
 * event (err, tlsSocket) on the server, never an uncaught error.
 */
function createServer(ctx, options, onConnection) {
  if (typeof options === 'function') {
    onConnection = options;
    options = {};
  }
  handleOf(ctx, Context, 'ctx');
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    let t;
    try {
      t = secure(sock, ctx, options || {});
    } catch (err) {
      sock.destroy();
      server.emit('tlsClientError', err, null);
      return;
    }
    // a failed handshake, or later a failure nobody else listens for (a client gone without
    // close_notify from a handler that never reads, say): 'tlsClientError', never an uncaught error
    let secured = false;
    t.on('error', (err) => {
      if (!secured || t.listenerCount('error') === 1) server.emit('tlsClientError', err, t);
    });
    t.once('secure', () => {
      secured = true;
      server.emit('secureConnection', t);
    });
  });
  if (onConnection) server.on('secureConnection', onConnection);
  return server;
}

module.exports = { Context, TLSSocket, secure, connect, createServer };
