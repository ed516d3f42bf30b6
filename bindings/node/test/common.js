'use strict';
// common.js — what the tests share: the build tree, the `sli` CLI, temporary directories, a PKI
// made with the binding, an in-process pair of Duplex streams, bounded waits. (node --test runs
// every .js file under test/; run alone, this one defines and does nothing.)
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync, spawn } = require('node:child_process');
const { Duplex } = require('node:stream');
const { once } = require('node:events');

const TOP = path.resolve(__dirname, '..', '..', '..');
const BUILD = process.env.SLI_BUILD_DIR ? path.resolve(process.env.SLI_BUILD_DIR) : path.join(TOP, 'build');
const SLI = path.join(BUILD, 'tools', 'sli');

/**
 * An ASan build of libsli needs libasan first in the process, which node does not load: such a
 * build skips, saying why (unless libasan is preloaded: LD_PRELOAD=$(gcc -print-file-name=libasan.so)).
 */
function asanSkip() {
  const lib = path.join(BUILD, 'plugin', 'libsli.so.1');
  const env = { ...process.env };
  delete env.LD_PRELOAD;
  const r = spawnSync('ldd', [lib], { encoding: 'utf8', env });
  const asan = r.stdout && r.stdout.includes('libasan');
  if (!asan || (process.env.LD_PRELOAD || '').includes('libasan')) return false;
  return 'node cannot load the ASan-built libsli.so.1 (libasan must come first in the process: ' +
    'preload it to run these); the plain build runs these tests';
}

const sli = asanSkip() ? null : require('..');

/** A fresh temporary directory, removed at exit. */
function tmpdir(prefix = 'sli-node-') {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  process.on('exit', () => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

/** Runs a command (bounded: 120 s), returns {status, stdout (Buffer), stderr (string)}. */
function run(cmd, args, { input, env, timeout = 120000 } = {}) {
  const r = spawnSync(cmd, args, { input, env: env ? { ...process.env, ...env } : process.env, timeout, maxBuffer: 1 << 30 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr ? r.stderr.toString() : '', error: r.error };
}

/** A CA and a leaf for localhost / 127.0.0.1, made with the binding: file paths. */
function makePki(dir) {
  const { Key, certs } = sli;
  const caKey = Key.generate('ec');
  const caPem = certs.selfSigned(caKey, '/CN=node test CA', [], { days: 2, ca: true });
  const key = Key.generate('ec');
  const req = certs.csr(key, '/CN=localhost', ['DNS:localhost', 'IP:127.0.0.1']);
  const leaf = certs.issue(caPem, caKey, req, { days: 2 });
  const p = (n) => path.join(dir, n);
  fs.writeFileSync(p('ca.pem'), caPem);
  fs.writeFileSync(p('ca.key'), caKey.privatePem(), { mode: 0o600 });
  fs.writeFileSync(p('leaf.pem'), leaf);
  fs.writeFileSync(p('leaf.key'), key.privatePem(), { mode: 0o600 });
  return { ca: p('ca.pem'), caKey: p('ca.key'), cert: p('leaf.pem'), key: p('leaf.key') };
}

/**
 * Two Duplex streams, each one's writes the other's reads: a connection without a socket. Like a
 * socket pair, with backpressure (a write completes once the peer's reader has room) and a
 * destroy that ends the peer's reading after what was already sent, without losing it.
 */
function duplexPair() {
  let a, b;
  const mk = (peer) => {
    const d = new Duplex({
      read() {
        const cb = d.pendingWrite;
        d.pendingWrite = null;
        if (cb) cb();
      },
      write(chunk, enc, cb) {
        const p = peer();
        if (p.ended) return cb(new Error('write after the peer ended'));
        if (p.push(chunk)) cb();
        else p.pendingWrite = cb;
      },
      final(cb) { endPeer(); cb(); },
      destroy(err, cb) { endPeer(); cb(err); },
    });
    const endPeer = () => {
      const p = peer();
      if (!p.ended) {
        p.ended = true;
        p.push(null);
      }
    };
    d.ended = false;
    d.pendingWrite = null;
    return d;
  };
  a = mk(() => b);
  b = mk(() => a);
  return [a, b];
}

/** The first `event` of `emitter`, or a rejection after `ms`. */
async function within(emitter, event, ms = 10000) {
  const ac = new AbortController();
  const t = setTimeout(() => ac.abort(), ms);
  try {
    return await once(emitter, event, { signal: ac.signal });
  } catch (err) {
    if (err.name === 'AbortError') throw new Error(`no '${event}' within ${ms} ms`);
    throw err;
  } finally {
    clearTimeout(t);
  }
}

/** The error a stream emits (rejects if it ends or closes without one, or after `ms`). */
function errorOf(stream, ms = 10000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no 'error' within ${ms} ms`)), ms);
    stream.once('error', (e) => { clearTimeout(t); resolve(e); });
    stream.once('end', () => { clearTimeout(t); reject(new Error("'end' instead of 'error'")); });
  });
}

/**
 * Collects a readable stream into one Buffer, by 'data' and 'end' (a for-await loop would destroy
 * a Duplex at the end of its reading side, cutting the direction still open).
 */
function collect(stream) {
  return new Promise((resolve, reject) => {
    const parts = [];
    stream.on('data', (c) => parts.push(c));
    stream.once('end', () => resolve(Buffer.concat(parts)));
    stream.once('error', reject);
  });
}

/** Starts a long-lived process, killed (by its pid) at exit of the test process. */
function start(cmd, args, opts = {}) {
  const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], ...opts });
  const kill = () => { try { p.kill('SIGKILL'); } catch { /* gone */ } };
  process.on('exit', kill);
  p.on('exit', () => process.removeListener('exit', kill));
  return p;
}

/** A free TCP port on 127.0.0.1 (bound, then released). */
async function freePort() {
  const net = require('node:net');
  const s = net.createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = s.address().port;
  await new Promise((r) => s.close(r));
  return port;
}

module.exports = { TOP, BUILD, SLI, sli, asanSkip, tmpdir, run, makePki, duplexPair, within, errorOf, collect, start, freePort };
