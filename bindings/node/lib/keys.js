'use strict';
// keys.js — key pairs and signatures (api/sli.h, "Key pairs and signatures"): Ed25519, ECDSA with
// SHA-256 (DER), RSA-PSS with SHA-256 — the signatures `openssl dgst` / `pkeyutl` make and check.
const { Writable } = require('node:stream');
const { N, kHandle, kToken, checkToken, pathArg, typeError, handleOf } = require('./native');

const TYPES = { rsa: 1, ec: 2, ed25519: 3, x25519: 4 };
const NAMES = { 1: 'rsa', 2: 'ec', 3: 'ed25519', 4: 'x25519' };

/**
 * A private key (which also acts as its public key) or a public key alone. Immutable; may be
 * shared by any number of signers, recipients and identities.
 */
class Key {
  /** @private use Key.generate() or Key.load() */
  constructor(token, handle) {
    checkToken(token, 'Key', 'Key.generate() or Key.load()');
    this[kHandle] = handle;
  }

  /**
   * A new key: 'ec' (`bits` 256 — the default —, 384 or 521), 'ed25519', 'x25519' or 'rsa' (`bits`
   * 2048 — the default —, 3072 or 4096; below 2048 only with {insecureWeak: true}).
   */
  static generate(type = 'ec', bits = 0, { insecureWeak = false } = {}) {
    if (!Object.prototype.hasOwnProperty.call(TYPES, type)) {
      throw typeError(`type must be one of ${Object.keys(TYPES).join(', ')}, got ${String(type)}`);
    }
    return new Key(kToken, N.keyGenerate(TYPES[type], bits, insecureWeak));
  }

  /**
   * A key file: PEM private key (PKCS#8, PKCS#1, SEC1; encrypted with `passphrase` if it is), an
   * unencrypted OpenSSH private key, a PEM public key or an OpenSSH public-key line.
   */
  static load(path, passphrase) {
    return new Key(kToken, N.keyLoad(pathArg(path), passphrase));
  }

  /** 'rsa', 'ec', 'ed25519' or 'x25519'. */
  get type() {
    return NAMES[N.keyInfo(this[kHandle]).type] || 'unknown';
  }

  /** The size in bits (RSA modulus, curve size, 255 for the 25519 keys). */
  get bits() {
    return N.keyInfo(this[kHandle]).bits;
  }

  /** Whether the key holds its private half. */
  get hasPrivate() {
    return N.keyInfo(this[kHandle]).hasPrivate;
  }

  /** The private key as PEM PKCS#8, encrypted (PBES2, AES-256-CBC) with `passphrase` if given. */
  privatePem(passphrase) {
    return N.keyPrivatePem(this[kHandle], passphrase);
  }

  /** The public key as PEM SubjectPublicKeyInfo. */
  publicPem() {
    return N.keyPublicPem(this[kHandle]);
  }

  /** The OpenSSH public-key line ("ssh-ed25519 AAAA… comment"), RSA and Ed25519 keys. */
  opensshPublic(comment) {
    return N.keyOpenssh(this[kHandle], comment, false);
  }

  /** The unencrypted OpenSSH private key (what ssh-keygen writes), RSA and Ed25519 keys. */
  opensshPrivate(comment) {
    return N.keyOpenssh(this[kHandle], comment, true);
  }

  /** The signature of `data` (a Buffer). X25519 keys cannot sign (SLI_E_UNSUPPORTED). */
  sign(data) {
    return N.keySign(this[kHandle], data);
  }

  /**
   * Returns true if `signature` is this key's over `data`; a signature that does not verify
   * throws SliError SLI_E_SIGNATURE (it never returns false).
   */
  verify(signature, data) {
    return N.keyVerify(this[kHandle], signature, data);
  }

  /** A Signer: the signature of a message given in pieces (update() or piped into it). */
  signer() {
    return new Signer(kToken, this, false);
  }

  /** A Signer that checks a signature over a message given in pieces. */
  verifier() {
    return new Signer(kToken, this, true);
  }

  /** Lets the key go now (wiped when nothing else holds it); later calls throw SLI_E_STATE. */
  close() {
    N.close(this[kHandle]);
  }
}
if (Symbol.dispose) Key.prototype[Symbol.dispose] = Key.prototype.close;

/**
 * Makes or checks the signature Key.sign makes, over pieces fed with update() or written into it
 * (it is a stream.Writable: pipe a file into it, then call sign()/verify() on 'finish'). One use:
 * sign() or verify() ends it. ECDSA and RSA hash as they go (constant memory); Ed25519 keeps the
 * message until the end.
 */
class Signer extends Writable {
  /** @private use key.signer() or key.verifier() */
  constructor(token, key, verify) {
    checkToken(token, 'Signer', 'key.signer() or key.verifier()');
    super({ autoDestroy: false }); // 'finish' leaves it usable: sign() or verify() comes after
    this[kHandle] = N.signerNew(handleOf(key, Key, 'key'), verify);
  }

  /** Feeds the next piece of the message; returns this. */
  update(data) {
    N.signerUpdate(this[kHandle], data);
    return this;
  }

  _write(chunk, encoding, callback) {
    try {
      N.signerUpdate(this[kHandle], chunk);
      callback();
    } catch (err) {
      callback(err);
    }
  }

  /** The signature of the message fed. */
  sign() {
    try {
      return N.signerSign(this[kHandle]);
    } finally {
      N.close(this[kHandle]);
    }
  }

  /** Returns true if `signature` is the message's; else throws SliError SLI_E_SIGNATURE. */
  verify(signature) {
    try {
      return N.signerVerify(this[kHandle], signature);
    } finally {
      N.close(this[kHandle]);
    }
  }

  _destroy(err, callback) {
    N.close(this[kHandle]);
    callback(err);
  }
}

module.exports = { Key, Signer, TYPES };
