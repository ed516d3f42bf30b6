'use strict';
// age.js — age v1 files (api/sli.h, "age v1 file encryption"), interoperable with the `age` tool:
// X25519 ("age1…"), SSH (ssh-ed25519, ssh-rsa) and passphrase recipients; streaming in constant
// memory through stream.Transform.
//
//   fs.createReadStream('db.dump')
//     .pipe(age.createEncryptStream([recipient]))
//     .pipe(fs.createWriteStream('db.dump.age'));
//
// A decrypt stream releases each 64 KiB chunk once it is authenticated, and fails with a SliError
// at the chunk that is changed or at a cut end; with {allOrNothing: true} it releases nothing
// before the end of the file is authenticated (the plaintext waits in memory, past 8 MiB in an
// unlinked temporary file in os.tmpdir(), closed when the stream ends or fails).
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Transform } = require('node:stream');
const { N, kHandle, kToken, checkToken, typeError, handleOf } = require('./native');
const { Key } = require('./keys');

const ARMOR = 1;
const PARALLEL = 2;
const BATCH = 1 << 20; // input gathered per update: 16 chunks, enough for SLI_AGE_PARALLEL
const SPOOL_MEMORY = 8 << 20;
// buffers on each side: a batch arriving, two of output ready while the next one is on the pool
const STREAM_DEFAULTS = { writableHighWaterMark: BATCH, readableHighWaterMark: 2 * BATCH }; // all-or-nothing plaintext kept in memory up to this much

/** Whom a file is encrypted to. */
class Recipient {
  /** @private use Recipient.parse(), Recipient.passphrase() or Recipient.fromKey() */
  constructor(token, handle) {
    checkToken(token, 'Recipient', 'Recipient.parse(), .passphrase() or .fromKey()');
    this[kHandle] = handle;
  }

  /** An "age1…" string or an OpenSSH public-key line ("ssh-ed25519 AAAA…", "ssh-rsa AAAA…"). */
  static parse(text) {
    if (typeof text !== 'string') throw typeError('recipient must be a string');
    return new Recipient(kToken, N.recipientParse(text.trim()));
  }

  /**
   * A passphrase (scrypt, work factor 2^log2N, 18 by default); a file with a passphrase
   * recipient has no other recipient.
   */
  static passphrase(passphrase, { log2N = 0 } = {}) {
    return new Recipient(kToken, N.recipientScrypt(passphrase, log2N));
  }

  /** The recipient of a Key: X25519 as "age1…", Ed25519 and RSA as age's SSH recipients. */
  static fromKey(key) {
    return new Recipient(kToken, N.recipientFromKey(handleOf(key, Key, 'key')));
  }

  /** "age1…" or the OpenSSH line (no comment). */
  toString() {
    return N.recipientEncode(this[kHandle]);
  }

  /** Lets it go now; later calls throw SLI_E_STATE. */
  close() {
    N.close(this[kHandle]);
  }
}

/** What opens a file. */
class Identity {
  /** @private use Identity.generate(), .parse(), .passphrase() or .fromKey() */
  constructor(token, handle) {
    checkToken(token, 'Identity', 'Identity.generate(), .parse(), .passphrase() or .fromKey()');
    this[kHandle] = handle;
  }

  /** A new X25519 identity. */
  static generate() {
    return new Identity(kToken, N.identityGenerate());
  }

  /** An "AGE-SECRET-KEY-1…" string. */
  static parse(text) {
    if (typeof text !== 'string') throw typeError('identity must be a string');
    return new Identity(kToken, N.identityParse(text.trim()));
  }

  /** The identity that opens files encrypted to this passphrase. */
  static passphrase(passphrase) {
    return new Identity(kToken, N.identityScrypt(passphrase));
  }

  /** An X25519 Key, or an SSH key (Ed25519, RSA ≥ 2048) for the files age encrypts to it. */
  static fromKey(key) {
    return new Identity(kToken, N.identityFromKey(handleOf(key, Key, 'key')));
  }

  /** Its Recipient ("age1…", or the SSH public key). */
  recipient() {
    return new Recipient(kToken, N.identityRecipient(this[kHandle]));
  }

  /** "AGE-SECRET-KEY-1…" (a secret). A passphrase identity has none (SLI_E_INVAL). */
  toString() {
    return N.identityEncode(this[kHandle]);
  }

  /** Lets it go now (its key wiped); later calls throw SLI_E_STATE. */
  close() {
    N.close(this[kHandle]);
  }
}

function list(items, Class, what) {
  const arr = Array.isArray(items) ? items : [items];
  return arr.map((x, i) => {
    if (typeof x === 'string') x = Class.parse(x);
    return handleOf(x, Class, `${what}[${i}]`);
  });
}

/**
 * Gathers pieces of input until a batch is worth a native call — copying each into a buffer of
 * its own: a writer may reuse its chunk as soon as its write callback has run, and the callback
 * runs before the batch is processed (found by review: a reused 2 MiB buffer was encrypted after
 * it had been refilled).
 */
class Gather {
  constructor() { this.buf = null; this.len = 0; }
  add(chunk) {
    const need = this.len + chunk.length;
    if (!this.buf || need > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(BATCH, need));
      if (this.len) this.buf.copy(grown, 0, 0, this.len);
      this.buf = grown;
    }
    chunk.copy(this.buf, this.len);
    this.len = need;
  }
  take() {
    const b = this.buf.subarray(0, this.len);
    this.buf = null;
    this.len = 0;
    return b;
  }
}

/**
 * What the encrypt and decrypt streams share: input gathered into 1 MiB batches, each sealed or
 * opened on libuv's thread pool while the main thread reads the next one and writes the last
 * one's output. At most one batch runs and one waits (the writer's callback held meanwhile), and
 * no batch starts while the readable side is over its high-water mark: memory stays bounded
 * whatever the speed of either end.
 */
class AgeTransform extends Transform {
  _h;
  #in = new Gather();
  #busy = false; // a batch is on the thread pool
  #blocked = false; // the readable side is full: wait for _read
  #waiting = null; // {batch, cb}: the next batch, its writer held
  #flushCb = null;

  // subclasses: _bound(n), _updateAsync(out, data, cb), _output(buf, done), _finish(cb)

  _transform(chunk, encoding, callback) {
    if (!this.#in.len && chunk.length >= BATCH && !this._offload &&
        !(this.#busy || this.#blocked || this.#waiting)) {
      this.#run(chunk); // processed now, before the callback hands the chunk back: no copy
      return callback();
    }
    this.#in.add(chunk);
    if (this.#in.len < BATCH) return callback();
    const batch = this.#in.take();
    if (this.#busy || this.#blocked || this.#waiting) {
      this.#waiting = { batch, cb: callback };
      return undefined;
    }
    this.#run(batch);
    return callback();
  }

  #run(batch) {
    this.#busy = true;
    let out;
    try {
      out = Buffer.allocUnsafe(this._bound(batch.length));
      const update = this._offload ? this._updateAsync.bind(this)
        : (o, d, cb) => { let n; try { n = this._update(o, d); } catch (e) { return cb(e); } return cb(null, n); };
      // busy until the output is handed on (pushed, or written to the spool): one batch at a time
      update(out, batch, (err, n) => {
        if (this.destroyed) return;
        if (err) return this.destroy(err);
        if (!n) {
          this.#busy = false;
          return this.#next();
        }
        try {
          this._output(out.subarray(0, n), (e, pushedAll) => {
            this.#busy = false;
            if (e) return this.destroy(e);
            if (pushedAll === false) this.#blocked = true;
            return this.#next();
          });
        } catch (e) {
          this.destroy(e); // a 'data' listener threw inside push()
        }
        return undefined;
      });
    } catch (err) {
      this.#busy = false;
      this.destroy(err);
    }
  }

  #next() {
    if (this.#busy || this.#blocked || this.destroyed) return;
    if (this.#waiting) {
      const { batch, cb } = this.#waiting;
      this.#waiting = null;
      this.#run(batch);
      cb();
    } else if (this.#flushCb) {
      const cb = this.#flushCb;
      this.#flushCb = null;
      this.#last(cb);
    }
  }

  // the remainder (under a batch, synchronously) and the end
  #last(callback) {
    try {
      const rest = this.#in.len ? this.#in.take() : null;
      let tail = null;
      if (rest) {
        const out = Buffer.allocUnsafe(this._bound(rest.length));
        const n = this._update(out, rest);
        if (n) tail = out.subarray(0, n);
      }
      this._finish(tail, callback);
    } catch (err) {
      callback(err);
    }
  }

  _flush(callback) {
    this.#flushCb = callback;
    this.#next();
  }

  _read(size) {
    if (this.#blocked) {
      this.#blocked = false;
      this.#next();
    }
    super._read(size);
  }

  _destroy(err, callback) {
    N.close(this._h); // freed now, or when the batch on the pool returns
    this.#waiting = null;
    callback(err);
  }
}

/**
 * A stream.Transform: plaintext in, an age file out. Made by createEncryptStream(). The output
 * is whole once the stream ends ('end' on its readable side).
 */
class EncryptStream extends AgeTransform {
  /** @private use createEncryptStream() */
  constructor(token, recipients, { armor = false, parallel = true, offload = false, ...streamOptions } = {}) {
    checkToken(token, 'EncryptStream', 'age.createEncryptStream()');
    const hs = list(recipients, Recipient, 'recipients');
    super({ ...STREAM_DEFAULTS, ...streamOptions });
    this._h = N.encNew(hs, (armor ? ARMOR : 0) | (parallel ? PARALLEL : 0));
    this._offload = offload;
  }

  _bound(n) { return N.encBound(this._h, n); }
  _update(out, data) { return N.encUpdate(this._h, out, data); }
  _updateAsync(out, data, cb) { N.encUpdateAsync(this._h, out, data, cb); }
  _output(buf, done) { done(null, this.push(buf)); }

  _finish(tail, callback) {
    if (tail) this.push(tail);
    const out = Buffer.allocUnsafe(N.encFinalBound(this._h));
    const n = N.encFinal(this._h, out);
    N.close(this._h);
    callback(null, out.subarray(0, n));
  }
}

/**
 * A stream.Transform: an age file in, its plaintext out. Made by createDecryptStream(). A changed
 * or cut file fails the stream with a SliError ('error'); 'end' comes only after the end of the
 * file is authenticated.
 */
class DecryptStream extends AgeTransform {
  #whole;
  #mem = []; // all-or-nothing: plaintext held in memory…
  #memLen = 0;
  #fd = null; // …or in an unlinked temporary file
  #fileLen = 0;
  #replay = null; // all-or-nothing: releasing the spool after the end was authenticated

  /** @private use createDecryptStream() */
  constructor(token, identities, { allOrNothing = false, parallel = true, offload = false, ...streamOptions } = {}) {
    checkToken(token, 'DecryptStream', 'age.createDecryptStream()');
    const hs = list(identities, Identity, 'identities');
    super({ ...STREAM_DEFAULTS, ...streamOptions });
    this._h = N.decNew(hs, parallel ? PARALLEL : 0);
    this._offload = offload;
    this.#whole = !!allOrNothing;
  }

  _bound(n) { return N.decBound(this._h, n); }
  _update(out, data) { return N.decUpdate(this._h, out, data); }
  _updateAsync(out, data, cb) { N.decUpdateAsync(this._h, out, data, cb); }

  _output(buf, done) {
    if (!this.#whole) return done(null, this.push(buf));
    return this.#spool(buf, (err) => done(err, true));
  }

  #spool(out, callback) {
    if (this.#fd === null && this.#memLen + out.length <= SPOOL_MEMORY) {
      this.#mem.push(out);
      this.#memLen += out.length;
      return callback();
    }
    if (this.#fd === null) {
      // a private directory, a file created exclusively (0600) and unlinked at once: nothing
      // remains on disk whatever becomes of the process, and closing it releases the space
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sli-age-'));
      const file = path.join(dir, 'plaintext');
      try {
        this.#fd = fs.openSync(file, 'wx+', 0o600);
      } finally {
        try { fs.unlinkSync(file); } catch { /* not created */ }
        fs.rmdirSync(dir);
      }
      const held = this.#mem;
      this.#mem = [];
      this.#memLen = 0;
      held.push(out);
      return this.#writeAll(held, 0, callback);
    }
    return this.#writeAll([out], 0, callback);
  }

  #writeAll(bufs, i, callback) {
    if (i === bufs.length) return callback();
    if (this.#fd === null) return callback(new Error('sli: the stream was closed'));
    const b = bufs[i];
    fs.write(this.#fd, b, 0, b.length, this.#fileLen, (err, n) => {
      if (err) return callback(err);
      this.#fileLen += n;
      if (n < b.length) bufs[i] = b.subarray(n);
      else i++;
      return this.#writeAll(bufs, i, callback);
    });
    return undefined;
  }

  _finish(tail, callback) {
    const out = Buffer.allocUnsafe(N.decFinalBound(this._h));
    const n = N.decFinal(this._h, out); // the end of the file is authenticated here
    N.close(this._h);
    const last = n ? out.subarray(0, n) : null;
    if (!this.#whole) {
      if (tail) this.push(tail);
      return callback(null, last);
    }
    const rest = [tail, last].filter(Boolean);
    if (this.#fd === null) { // all of it in memory (8 MiB at most)
      for (const b of this.#mem) this.push(b);
      this.#mem = [];
      for (const b of rest) this.push(b);
      return callback();
    }
    return this.#writeAll(rest, 0, (err) => {
      if (err) return callback(err);
      this.#replay = { pos: 0, reading: false, done: callback };
      return this.#pumpReplay();
    });
  }

  // the authenticated spool, read back as the consumer asks (backpressure through _read)
  #pumpReplay() {
    const r = this.#replay;
    if (!r || r.reading || this.destroyed) return;
    if (r.pos >= this.#fileLen) {
      this.#replay = null;
      this.#closeSpool();
      r.done();
      return;
    }
    r.reading = true;
    const buf = Buffer.allocUnsafe(Math.min(BATCH, this.#fileLen - r.pos));
    fs.read(this.#fd, buf, 0, buf.length, r.pos, (err, n) => {
      r.reading = false;
      if (this.destroyed) return;
      if (err || n === 0) {
        this.destroy(err || new Error('sli: the spool file was cut'));
        return;
      }
      r.pos += n;
      if (this.push(n === buf.length ? buf : buf.subarray(0, n))) this.#pumpReplay();
    });
  }

  _read(size) {
    if (this.#replay) this.#pumpReplay();
    else super._read(size);
  }

  #closeSpool() {
    if (this.#fd !== null) {
      try { fs.closeSync(this.#fd); } catch { /* already */ }
      this.#fd = null;
    }
    this.#mem = [];
  }

  _destroy(err, callback) {
    this.#replay = null;
    this.#closeSpool();
    super._destroy(err, callback);
  }
}

/**
 * A stream.Transform that encrypts what is written to it to `recipients` (Recipient objects or
 * "age1…" / OpenSSH strings), as an age v1 file. Options: armor (ASCII armor); parallel (true:
 * each 1 MiB batch sealed on two threads, SLI_AGE_PARALLEL); offload (false: batches run on the
 * libuv thread pool instead of the main thread, which then blocks for none of them). Constant
 * memory: input is taken in 1 MiB batches and backpressure is honoured both ways.
 */
function createEncryptStream(recipients, options) {
  return new EncryptStream(kToken, recipients, options);
}

/**
 * A stream.Transform that decrypts the age file written to it with `identities` (Identity objects
 * or "AGE-SECRET-KEY-1…" strings). Options: allOrNothing (nothing is pushed before the last chunk
 * is authenticated), parallel and offload as for createEncryptStream().
 */
function createDecryptStream(identities, options) {
  return new DecryptStream(kToken, identities, options);
}

function byteLength(data) {
  if (typeof data === 'string') return Buffer.byteLength(data);
  if (ArrayBuffer.isView(data) || data instanceof ArrayBuffer) return data.byteLength;
  throw typeError('data must be a Buffer, a Uint8Array or a string');
}

/** `data` (Buffer, Uint8Array or string) as an age file, in memory → Buffer. */
function encrypt(data, recipients, { armor = false } = {}) {
  const h = N.encNew(list(recipients, Recipient, 'recipients'), armor ? ARMOR : 0);
  try {
    const body = Buffer.allocUnsafe(N.encBound(h, byteLength(data)));
    const n = N.encUpdate(h, body, data);
    const tail = Buffer.allocUnsafe(N.encFinalBound(h));
    const m = N.encFinal(h, tail);
    return Buffer.concat([body.subarray(0, n), tail.subarray(0, m)]);
  } finally {
    N.close(h);
  }
}

/** The plaintext of an age file given in memory → Buffer (all of it authentic, or a SliError). */
function decrypt(data, identities) {
  const h = N.decNew(list(identities, Identity, 'identities'), 0);
  try {
    const body = Buffer.allocUnsafe(N.decBound(h, byteLength(data)));
    const n = N.decUpdate(h, body, data);
    const tail = Buffer.allocUnsafe(N.decFinalBound(h));
    const m = N.decFinal(h, tail);
    return Buffer.concat([body.subarray(0, n), tail.subarray(0, m)]);
  } finally {
    N.close(h);
  }
}

module.exports = {
  Recipient, Identity, EncryptStream, DecryptStream, createEncryptStream, createDecryptStream,
  encrypt, decrypt,
};
