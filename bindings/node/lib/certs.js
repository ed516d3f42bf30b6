'use strict';
// certs.js — certificates (api/sli.h, "Certificates" and "Certificate requests"): read one, make a
// request or a self-signed certificate for a Key, issue a leaf from a small CA.
const { N, kHandle, kToken, checkToken, pathArg, handleOf } = require('./native');
const { Key } = require('./keys');

/** An X.509 certificate, with the chain that came with it. Immutable. */
class Certificate {
  #info = null;

  /** @private use Certificate.load() or Certificate.fromPem() */
  constructor(token, handle) {
    checkToken(token, 'Certificate', 'Certificate.load() or Certificate.fromPem()');
    this[kHandle] = handle;
  }

  /** The PEM certificate chain in the file at `path` (leaf first). */
  static load(path) {
    return new Certificate(kToken, N.certLoad(pathArg(path)));
  }

  /** A certificate from PEM text (a string or a Buffer). */
  static fromPem(pem) {
    return new Certificate(kToken, N.certFromPem(pem));
  }

  get #i() {
    if (!this.#info) this.#info = N.certInfo(this[kHandle]);
    return this.#info;
  }

  /** The subject as `openssl x509 -noout -subject` prints it ("C = FR, O = Acme, CN = db"). */
  get subject() { return this.#i.subject; }
  /** The issuer, as the subject. */
  get issuer() { return this.#i.issuer; }
  /** The subject alternative names: ["DNS:db.example.com", "IP:10.0.0.5", …]. */
  get sans() { return this.#i.sans.slice(); }
  /** The start of the validity period. */
  get notBefore() { return new Date(this.#i.notBefore * 1000); }
  /** The end of the validity period. */
  get notAfter() { return new Date(this.#i.notAfter * 1000); }
  /** The SHA-256 fingerprint, upper-case hex pairs joined by colons (as openssl prints it). */
  get fingerprintSha256() { return this.#i.fingerprintSha256; }
  /** The certificate and its chain as PEM. */
  get pem() { return this.#i.pem; }

  /** Lets the certificate go now; later calls on it throw SLI_E_STATE. */
  close() {
    N.close(this[kHandle]);
  }
}

function sansArg(sans) {
  return sans === undefined || sans === null ? [] : sans;
}

/**
 * A PKCS#10 certificate request (PEM) signed by `key`: `subject` as "/CN=db.example.com/O=Acme"
 * (CN, C, ST, L, O, OU, emailAddress), `sans` as "DNS:…", "IP:…", "email:…", "URI:…".
 */
function csr(key, subject, sans) {
  return N.csr(handleOf(key, Key, 'key'), subject, sansArg(sans));
}

/**
 * A self-signed certificate (PEM) for `key`, valid `days` days (365 by default); with ca: true, a
 * CA certificate that issue() can sign from.
 */
function selfSigned(key, subject, sans, { days = 365, ca = false } = {}) {
  return N.selfSign(handleOf(key, Key, 'key'), subject, sansArg(sans), days, ca);
}

/**
 * A leaf certificate (PEM) for the request `csrPem`, signed by `caKey` under the CA certificate
 * `caCert` (PEM text or a Certificate), valid `days` days (365 by default). The request's
 * signature is checked first (SLI_E_SIGNATURE).
 */
function issue(caCert, caKey, csrPem, { days = 365 } = {}) {
  const caPem = caCert instanceof Certificate ? caCert.pem : caCert;
  return N.caIssue(caPem, handleOf(caKey, Key, 'caKey'), csrPem, days);
}

/** @private a Certificate around a native handle (a peer's certificate). */
function wrapCertificate(handle) {
  return new Certificate(kToken, handle);
}

module.exports = { Certificate, csr, selfSigned, issue, wrapCertificate };
