'use strict';
// Keys and signatures: each type generates, signs and verifies; a changed message or signature is
// SLI_E_SIGNATURE; X25519 cannot sign; weak RSA only when asked; an encrypted PEM round trip (a
// wrong or missing passphrase: SLI_E_PASSWORD); `openssl` checks our ECDSA, Ed25519 and RSA-PSS
// signatures and we check its; a Signer fed in pieces, or piped into, matches sign().
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { Readable } = require('node:stream');
const { pipeline } = require('node:stream/promises');
const { sli, asanSkip, tmpdir, run } = require('./common');

const skip = asanSkip();
const D = skip ? null : tmpdir('sli-node-keys-');

test('each type generates, signs and verifies; changes are SLI_E_SIGNATURE', { skip }, () => {
  for (const [type, bits, want] of [['ec', 0, 256], ['ec', 384, 384], ['ed25519', 0, 255], ['rsa', 0, 2048]]) {
    const k = sli.Key.generate(type, bits);
    assert.strictEqual(k.type, type);
    assert.strictEqual(k.bits, want);
    assert.strictEqual(k.hasPrivate, true);
    const sig = k.sign('message');
    assert.ok(Buffer.isBuffer(sig));
    assert.strictEqual(k.verify(sig, 'message'), true);
    assert.strictEqual(k.verify(sig, Buffer.from('message')), true);
    assert.throws(() => k.verify(sig, 'messagE'), (e) => e instanceof sli.SliError && e.code === 'SLI_E_SIGNATURE');
    const bad = Buffer.from(sig);
    bad[bad.length - 1] ^= 1;
    assert.throws(() => k.verify(bad, 'message'), (e) => e.code === 'SLI_E_SIGNATURE');
  }
  const x = sli.Key.generate('x25519');
  assert.throws(() => x.sign('m'), (e) => e.code === 'SLI_E_UNSUPPORTED');
  assert.throws(() => sli.Key.generate('rsa', 1024), (e) => e.code === 'SLI_E_WEAK_KEY');
  assert.strictEqual(sli.Key.generate('rsa', 1024, { insecureWeak: true }).bits, 1024);
  assert.throws(() => sli.Key.generate('dsa'), TypeError);
});

test('PEM: encrypted round trip, public keys, wrong passphrases', { skip }, () => {
  const k = sli.Key.generate('ec');
  const f = path.join(D, 'enc.key');
  const pem = k.privatePem('s3cret');
  assert.match(pem, /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
  fs.writeFileSync(f, pem, { mode: 0o600 });
  const back = sli.Key.load(f, 's3cret');
  assert.strictEqual(back.publicPem(), k.publicPem());
  assert.strictEqual(sli.Key.load(f, Buffer.from('s3cret')).publicPem(), k.publicPem());
  assert.throws(() => sli.Key.load(f, 'wrong'), (e) => e.code === 'SLI_E_PASSWORD' && e.message.includes(f));
  assert.throws(() => sli.Key.load(f), (e) => e.code === 'SLI_E_PASSWORD');
  const pub = path.join(D, 'k.pub');
  fs.writeFileSync(pub, k.publicPem());
  const pk = sli.Key.load(pub);
  assert.strictEqual(pk.hasPrivate, false);
  assert.strictEqual(pk.verify(k.sign('m'), 'm'), true);
  assert.throws(() => pk.sign('m'), sli.SliError);
  fs.writeFileSync(path.join(D, 'junk.pem'), 'not a key\n');
  assert.throws(() => sli.Key.load(path.join(D, 'junk.pem')), (e) => e instanceof sli.SliError && e.code.startsWith('SLI_E_'));
});

test('openssl checks our signatures and we check its', { skip }, () => {
  const msg = path.join(D, 'msg');
  fs.writeFileSync(msg, crypto.randomBytes(5000));
  for (const type of ['ec', 'rsa', 'ed25519']) {
    const k = sli.Key.generate(type);
    const keyf = path.join(D, `${type}.key`);
    const pubf = path.join(D, `${type}.pub`);
    const sigf = path.join(D, `${type}.sig`);
    fs.writeFileSync(keyf, k.privatePem(), { mode: 0o600 });
    fs.writeFileSync(pubf, k.publicPem());
    fs.writeFileSync(sigf, k.sign(fs.readFileSync(msg)));
    const pss = type === 'rsa' ? ['-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:digest'] : [];
    let r = type === 'ed25519'
      ? run('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', pubf, '-rawin', '-in', msg, '-sigfile', sigf])
      : run('openssl', ['dgst', '-sha256', ...pss, '-verify', pubf, '-signature', sigf, msg]);
    assert.strictEqual(r.status, 0, `${type}: ${r.stderr}`);
    // openssl's signature, checked here
    const theirs = path.join(D, `${type}.osig`);
    r = type === 'ed25519'
      ? run('openssl', ['pkeyutl', '-sign', '-inkey', keyf, '-rawin', '-in', msg, '-out', theirs])
      : run('openssl', ['dgst', '-sha256', ...pss, '-sign', keyf, '-out', theirs, msg]);
    assert.strictEqual(r.status, 0, r.stderr);
    assert.strictEqual(sli.Key.load(pubf).verify(fs.readFileSync(theirs), fs.readFileSync(msg)), true);
  }
});

test('Signer: pieces and pipes make the signature sign() makes', { skip }, async () => {
  const data = crypto.randomBytes(300000);
  for (const type of ['ec', 'ed25519', 'rsa']) {
    const k = sli.Key.generate(type);
    const s = k.signer();
    for (let i = 0; i < data.length; i += 7777) s.update(data.subarray(i, i + 7777));
    s.update('');
    const sig = s.sign();
    assert.strictEqual(k.verify(sig, data), true);
    assert.throws(() => s.sign(), (e) => e.code === 'SLI_E_STATE'); // one use
    const v = k.verifier();
    await pipeline(Readable.from([data.subarray(0, 1000), data.subarray(1000)]), v);
    assert.strictEqual(v.verify(k.sign(data)), true);
    const v2 = k.verifier().update(data).update('x');
    assert.throws(() => v2.verify(sig), (e) => e.code === 'SLI_E_SIGNATURE');
  }
  assert.throws(() => sli.Key.generate('x25519').signer(), (e) => e.code === 'SLI_E_UNSUPPORTED');
});

test('a key closed under a signer: the signer keeps its own reference', { skip }, () => {
  const k = sli.Key.generate('ec');
  const s = k.signer().update('abc');
  const pub = k.publicPem();
  k.close();
  assert.throws(() => k.sign('x'), (e) => e.code === 'SLI_E_STATE');
  const sig = s.sign();
  const f = path.join(D, 'closed.pub');
  fs.writeFileSync(f, pub);
  assert.strictEqual(sli.Key.load(f).verify(sig, 'abc'), true);
});
