'use strict';
// Certificates: a self-signed CA issues a leaf for a request; openssl verifies the chain and reads
// the SANs; Certificate reads back subject, issuer, SANs, dates and the fingerprint openssl
// prints; a request whose signature is broken, a CA key that is not the CA's and malformed
// subjects, SANs and PEM each throw their SliError.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const { sli, asanSkip, tmpdir, run } = require('./common');

const skip = asanSkip();
const D = skip ? null : tmpdir('sli-node-certs-');

test('a CA, a request, a leaf: openssl agrees', { skip }, () => {
  const { Key, certs, Certificate } = sli;
  const caKey = Key.generate('ec');
  const caPem = certs.selfSigned(caKey, '/CN=Node CA/O=Acme', [], { days: 30, ca: true });
  const key = Key.generate('ed25519');
  const req = certs.csr(key, '/CN=db.example.com/O=Acme/C=FR', ['DNS:db.example.com', 'IP:10.0.0.5', 'URI:spiffe://example.org/db']);
  assert.match(req, /^-----BEGIN CERTIFICATE REQUEST-----/);
  const leafPem = certs.issue(Certificate.fromPem(caPem), caKey, req, { days: 90 });
  const caf = path.join(D, 'ca.pem');
  const lf = path.join(D, 'leaf.pem');
  fs.writeFileSync(caf, caPem);
  fs.writeFileSync(lf, leafPem);
  let r = run('openssl', ['verify', '-CAfile', caf, lf]);
  assert.strictEqual(r.status, 0, r.stderr + r.stdout);

  const leaf = Certificate.load(lf);
  assert.strictEqual(leaf.subject, 'CN = db.example.com, O = Acme, C = FR');
  assert.strictEqual(leaf.issuer, 'CN = Node CA, O = Acme');
  assert.deepStrictEqual(leaf.sans, ['DNS:db.example.com', 'IP:10.0.0.5', 'URI:spiffe://example.org/db']);
  assert.ok(leaf.notBefore instanceof Date && leaf.notAfter instanceof Date);
  const days = (leaf.notAfter - leaf.notBefore) / 86400000;
  assert.ok(days >= 89 && days <= 91, `${days} days`);
  assert.ok(leaf.notBefore <= new Date(Date.now() + 60000));
  r = run('openssl', ['x509', '-noout', '-fingerprint', '-sha256', '-in', lf]);
  assert.strictEqual(r.stdout.toString().trim().split('=')[1], leaf.fingerprintSha256);
  assert.match(leaf.pem, /^-----BEGIN CERTIFICATE-----/);
  assert.strictEqual(Certificate.fromPem(Buffer.from(leaf.pem)).fingerprintSha256, leaf.fingerprintSha256);

  const ss = Certificate.fromPem(certs.selfSigned(key, '/CN=localhost', ['DNS:localhost']));
  assert.strictEqual(ss.subject, ss.issuer);
  assert.deepStrictEqual(ss.sans, ['DNS:localhost']);
  assert.ok(Math.round((ss.notAfter - ss.notBefore) / 86400000) >= 365);
});

test('refusals: a broken request, a foreign CA key, a leaf as CA, bad subjects, SANs and PEM', { skip }, () => {
  const { Key, certs, Certificate } = sli;
  const caKey = Key.generate('ec');
  const caPem = certs.selfSigned(caKey, '/CN=CA', [], { ca: true });
  const key = Key.generate('ec');
  const req = certs.csr(key, '/CN=x', ['DNS:x']);
  // change a byte inside the request's signature (the end of the DER, before the last base64 line)
  const lines = req.trim().split('\n');
  const i = lines.length - 2;
  const der = Buffer.from(lines.slice(1, -1).join(''), 'base64');
  der[der.length - 5] ^= 1;
  const b64 = der.toString('base64').match(/.{1,64}/g);
  const broken = [lines[0], ...b64, lines[lines.length - 1]].join('\n') + '\n';
  void i;
  assert.throws(() => certs.issue(caPem, caKey, broken), (e) => e instanceof sli.SliError && e.code === 'SLI_E_SIGNATURE');
  assert.throws(() => certs.issue(caPem, Key.generate('ec'), req), (e) => e.code === 'SLI_E_KEY_MISMATCH');
  const leaf = certs.issue(caPem, caKey, req);
  assert.throws(() => certs.issue(leaf, key, req), (e) => e.code === 'SLI_E_CONFIG');
  assert.throws(() => certs.csr(key, 'CN=no slash', []), (e) => e.code === 'SLI_E_INVAL');
  assert.throws(() => certs.csr(key, '/CN=x', ['FTP:x']), (e) => e.code === 'SLI_E_INVAL');
  assert.throws(() => Certificate.fromPem('-----BEGIN CERTIFICATE-----\nAAAA\n'), (e) => e instanceof sli.SliError && /^SLI_E_PEM/.test(e.code));
  assert.throws(() => Certificate.fromPem('hello'), (e) => e instanceof sli.SliError);
  assert.throws(() => Certificate.load(path.join(D, 'missing.pem')), (e) => e.code === 'SLI_E_FILE' && e.message.includes('missing.pem'));
  assert.throws(() => certs.csr('not a key', '/CN=x'), TypeError);
  assert.throws(() => certs.csr(key, '/CN=x', 'DNS:x'), TypeError);
  assert.throws(() => certs.csr(key, '/CN=x', [42]), TypeError);
});
