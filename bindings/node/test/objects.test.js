'use strict';
// Object lifetimes and misuse: thousands of keyrings, keys, identities, certificates, contexts
// and TLS connections left to the garbage collector (forced with gc()), some closed first and
// some with work in flight; every method after close() throws SliError SLI_E_STATE; closing twice
// is harmless; closed objects passed to other calls are refused; wrong argument types are
// TypeErrors (code ERR_INVALID_ARG_TYPE), including handles of the wrong kind given to the addon
// directly; SliError's shape.
const test = require('node:test');
const assert = require('node:assert');
const v8 = require('node:v8');
const vm = require('node:vm');
const { sli, asanSkip, tmpdir, makePki, duplexPair, within } = require('./common');

const skip = asanSkip();
v8.setFlagsFromString('--expose-gc');
const gc = global.gc || vm.runInNewContext('gc');
const D = skip ? null : tmpdir('sli-node-obj-');
const P = skip ? null : makePki(D);

const isState = (e) => e instanceof sli.SliError && e.code === 'SLI_E_STATE' && e.errno === -1802;
const isType = (e) => e instanceof TypeError && e.code === 'ERR_INVALID_ARG_TYPE';

async function collectGarbage() {
  for (let i = 0; i < 4; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
}

test('thousands of objects left to the garbage collector', { skip, timeout: 120000 }, async () => {
  const rssBefore = process.memoryUsage().rss;
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 2000; i++) {
      const kr = sli.Keyring.generate();
      const blob = kr.seal(Buffer.alloc(100, i & 255), 'ad');
      assert.strictEqual(kr.open(blob, 'ad').length, 100);
      if (i % 500 === 0) void kr.sealAsync('in flight while closed and unreferenced');
      if (i % 3 === 0) kr.close(); // closed, then finalized: freed once
      if (i % 50 === 0) {
        const k = sli.Key.generate('ed25519');
        sli.age.Identity.fromKey(k).recipient();
        sli.age.Identity.generate();
        sli.Certificate.fromPem(sli.certs.selfSigned(k, '/CN=gc', ['DNS:gc']));
        k.signer().update('x');
      }
    }
    await collectGarbage();
  }
  const grew = process.memoryUsage().rss - rssBefore;
  const asan = (process.env.LD_PRELOAD || '').includes('libasan'); // its quarantine holds freed memory
  if (!asan) assert.ok(grew < (64 << 20), `RSS grew by ${grew >> 20} MiB over 10 000 keyrings`);
});

test('TLS connections and contexts left to the garbage collector', { skip, timeout: 60000 }, async () => {
  const sctx = sli.tls.Context.server({ cert: P.cert, key: P.key });
  const cctx = sli.tls.Context.client({ ca: P.ca });
  for (let i = 0; i < 100; i++) {
    const [a, b] = duplexPair();
    const s = sli.tls.secure(a, sctx);
    const c = sli.tls.secure(b, cctx, { servername: 'localhost' });
    s.on('data', (d) => s.end(d));
    c.end('hello');
    const [d] = await within(c, 'data');
    assert.strictEqual(d.toString(), 'hello');
    if (i % 2) c.destroy(); // one side cut: the other errs
    s.on('error', () => {});
    c.on('error', () => {});
    // contexts made and dropped at once, connections still holding them
    sli.tls.Context.client({ ca: P.ca });
  }
  await collectGarbage();
  await new Promise((r) => setTimeout(r, 50));
  await collectGarbage();
  assert.ok(sctx.stats().live <= 100);
});

test('every method after close() throws SLI_E_STATE; close twice is harmless', { skip }, async () => {
  const kr = sli.Keyring.generate();
  const blob = kr.seal('x');
  kr.close();
  kr.close();
  assert.strictEqual(kr.closed, true);
  for (const f of [() => kr.seal('x'), () => kr.open(blob), () => kr.rotate(), () => kr.keyIds,
    () => kr.save(`${D}/x`)]) assert.throws(f, isState);
  await assert.rejects(kr.openAsync(blob), isState);

  const k = sli.Key.generate('ec');
  k.close();
  k.close();
  for (const f of [() => k.sign('x'), () => k.verify(Buffer.alloc(64), 'x'), () => k.publicPem(),
    () => k.privatePem(), () => k.type, () => k.signer(), () => sli.certs.csr(k, '/CN=x'),
    () => sli.certs.selfSigned(k, '/CN=x'), () => sli.age.Recipient.fromKey(k),
    () => sli.age.Identity.fromKey(k)]) assert.throws(f, isState);

  const id = sli.age.Identity.generate();
  const r = id.recipient();
  id.close();
  r.close();
  assert.throws(() => String(id), isState);
  assert.throws(() => id.recipient(), isState);
  assert.throws(() => String(r), isState);
  assert.throws(() => sli.age.encrypt('x', [r]), isState);
  assert.throws(() => sli.age.createEncryptStream([r]), isState);
  assert.throws(() => sli.age.createDecryptStream([id]), isState);
  assert.throws(() => sli.age.decrypt(Buffer.alloc(10), [id]), isState);

  const cert = sli.Certificate.load(P.cert);
  cert.close();
  assert.throws(() => cert.subject, isState);

  const ctx = sli.tls.Context.client({ ca: P.ca });
  ctx.close();
  assert.throws(() => ctx.stats(), isState);
  assert.throws(() => sli.tls.secure(duplexPair()[0], ctx, { servername: 'x' }), isState);

  // a destroyed TLS connection: writes fail, the information stays readable
  const [a, b] = duplexPair();
  const s = sli.tls.secure(a, sli.tls.Context.server({ cert: P.cert, key: P.key }));
  const c = sli.tls.secure(b, sli.tls.Context.client({ ca: P.ca }), { servername: 'localhost' });
  await within(c, 'secure');
  c.destroy();
  s.destroy();
  assert.strictEqual(c.version, 'TLSv1.3');
  assert.strictEqual(c.peerCertificate.subject, 'CN = localhost');
  assert.throws(() => c.exportSession(), isState);
  await new Promise((resolve) => c.write('x', (err) => { assert.ok(err); resolve(); }));

  // streams after destroy
  const enc = sli.age.createEncryptStream([sli.age.Identity.generate().recipient()]);
  enc.destroy();
  await new Promise((resolve) => enc.write('x', (err) => { assert.ok(err); resolve(); }));
});

test('wrong argument types are TypeErrors, never a crash', { skip }, () => {
  const kr = sli.Keyring.generate();
  for (const bad of [undefined, null, 42, {}, [], true, () => {}, Symbol('s'), 10n]) {
    assert.throws(() => kr.seal(bad), isType);
    assert.throws(() => kr.open(bad), isType);
    assert.throws(() => sli.sealedKeyId(bad), isType);
  }
  assert.throws(() => kr.seal('x', 42), isType);
  assert.throws(() => sli.Keyring.load(42), isType);
  assert.throws(() => kr.save({}), isType);
  assert.throws(() => new sli.Keyring(), isType);
  assert.throws(() => new sli.Key(), isType);
  assert.throws(() => sli.Key.generate(42), isType);
  assert.throws(() => sli.Key.generate('ec', 'big'), isType);
  assert.throws(() => sli.Key.load(null), isType);
  const k = sli.Key.generate('ec');
  assert.throws(() => k.sign(), isType);
  assert.throws(() => k.verify(1, 2), isType);
  assert.throws(() => k.privatePem(42), isType);
  assert.throws(() => sli.age.Recipient.parse(5), isType);
  assert.throws(() => sli.age.Recipient.fromKey('a key'), isType);
  assert.throws(() => sli.age.createEncryptStream([{}]), isType);
  assert.throws(() => sli.age.createEncryptStream(kr), isType);
  assert.throws(() => sli.age.createDecryptStream([sli.age.Identity.generate().recipient()]), isType);
  assert.throws(() => sli.age.encrypt(42, [sli.age.Identity.generate().recipient()]), isType);
  assert.throws(() => sli.Certificate.fromPem(5), isType);
  assert.throws(() => sli.certs.selfSigned(k, 5), isType);
  assert.throws(() => sli.certs.selfSigned(k, '/CN=x', [], { days: 'ten' }), isType);
  assert.throws(() => sli.certs.issue('pem', kr, 'csr'), isType);
  assert.throws(() => sli.tls.Context.server('cert.pem'), isType);
  assert.throws(() => sli.tls.Context.client({ ca: {} }), isType);
  assert.throws(() => sli.tls.secure(null, sli.tls.Context.client({ ca: P.ca }), { servername: 'x' }), isType);
  assert.throws(() => sli.tls.createServer({}), isType);
  // the addon itself, handed forged or wrong-kind handles
  const { N, kHandle } = require('../lib/native');
  assert.throws(() => N.seal({}, 'x'), isType);
  assert.throws(() => N.seal(k[kHandle], 'x'), isType);
  assert.throws(() => N.keySign(kr[kHandle], 'x'), isType);
  assert.throws(() => N.close({}), isType);
  assert.throws(() => N.encUpdate(kr[kHandle], Buffer.alloc(10), 'x'), isType);
  assert.throws(() => N.connRead(42, 10), isType);
  assert.throws(() => N.setErrorClass(42), isType);
  // a NUL inside a path or passphrase is refused, not cut
  assert.throws(() => sli.Key.load('/etc/passwd\0x'), isType);
  assert.throws(() => sli.age.Identity.passphrase('pass\0word'), isType);
});

test('SliError: name, code, errno, message, stack', { skip }, () => {
  const kr = sli.Keyring.generate();
  try {
    kr.open(Buffer.from([1, ...Buffer.alloc(39)]));
    assert.fail('opened');
  } catch (e) {
    assert.ok(e instanceof Error);
    assert.ok(e instanceof sli.SliError);
    assert.strictEqual(e.name, 'SliError');
    assert.strictEqual(e.code, 'SLI_E_NO_MATCH');
    assert.strictEqual(e.errno, sli.codes.SLI_E_NO_MATCH);
    assert.match(e.message, /key 00000000/);
    assert.match(e.stack, /^SliError: /);
    assert.match(e.stack, /objects\.test\.js/);
  }
  const made = new sli.SliError(-1102);
  assert.strictEqual(made.code, 'SLI_E_TRUNCATED');
  assert.ok(made.message.length > 0);
  assert.match(sli.version(), /^\d+\.\d+\.\d+$/);
});
