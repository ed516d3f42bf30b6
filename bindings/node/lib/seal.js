'use strict';
// seal.js — sealed blobs (database fields) and the keyrings that open them (api/sli.h, "Sealed
// blobs"): AES-256-GCM, 33 bytes of overhead, keys rotated without re-encrypting old blobs.
const { N, kHandle, kToken, checkToken, pathArg } = require('./native');
const { SliError } = require('./errors');

// Outputs below this size come from Buffer.allocUnsafe's shared pool (an allocation of their own
// cost more than the AES-GCM of 64 bytes); larger ones are allocated by the addon.
const POOLED = 2048;

/** The byte length of an input the addon takes, or -1 (the addon then says what is wrong). */
function byteLength(v) {
  if (typeof v === 'string') return Buffer.byteLength(v);
  if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer) return v.byteLength;
  return -1;
}

/**
 * An immutable set of keys, one of them the primary (the one that seals). Seal and open may run
 * concurrently, from the libuv thread pool (sealAsync/openAsync) as from the main thread.
 * Inputs are Buffers, Uint8Arrays (any TypedArray, DataView, ArrayBuffer) or strings (UTF-8).
 */
class Keyring {
  /** @private use Keyring.generate() or Keyring.load() */
  constructor(token, handle) {
    checkToken(token, 'Keyring', 'Keyring.generate() or Keyring.load()');
    this[kHandle] = handle;
  }

  /** A keyring holding one fresh random key. */
  static generate() {
    return new Keyring(kToken, N.keyringGenerate());
  }

  /**
   * The keyring file at `path` (as `sli keyring new` writes it). Keyring files are not
   * encrypted (they are protected by their mode, 0600): a `passphrase` is refused with
   * SLI_E_UNSUPPORTED rather than ignored.
   */
  static load(path, passphrase) {
    if (passphrase !== undefined && passphrase !== null) {
      throw new SliError(-1804, 'SLI_E_UNSUPPORTED',
        'keyring files are not encrypted (libsli has no passphrase for them): protect the file (0600)');
    }
    return new Keyring(kToken, N.keyringLoad(pathArg(path)));
  }

  /** Writes the keyring to `path` atomically, mode 0600. */
  save(path) {
    N.keyringSave(this[kHandle], pathArg(path));
  }

  /** A new keyring: these keys (which still open) and a fresh primary. This one is unchanged. */
  rotate() {
    return new Keyring(kToken, N.keyringRotate(this[kHandle]));
  }

  /** The keys' IDs (32-bit numbers), the primary first. */
  get keyIds() {
    return N.keyringKeys(this[kHandle]).map((k) => k.id);
  }

  /** The keys, the primary first: [{id, created: Date}]. */
  get keys() {
    return N.keyringKeys(this[kHandle]).map((k) => ({ id: k.id, created: new Date(k.created * 1000) }));
  }

  /** `data` sealed with the primary key, bound to the associated data `ad` → a new Buffer. */
  seal(data, ad) {
    const n = byteLength(data);
    return N.seal(this[kHandle], data, ad, n >= 0 && n < POOLED ? Buffer.allocUnsafe(n + 33) : undefined);
  }

  /**
   * The plaintext of a sealed blob (a new Buffer), or a SliError: SLI_E_PAYLOAD for any change or a
   * different `ad`, SLI_E_NO_MATCH for a key not in this keyring, SLI_E_HEADER for a short blob.
   */
  open(blob, ad) {
    const n = byteLength(blob);
    return N.open(this[kHandle], blob, ad, n >= 33 && n < POOLED ? Buffer.allocUnsafe(n - 33) : undefined);
  }

  /**
   * seal() into `target` (a Buffer or Uint8Array of at least data's length + 33 bytes, reused from
   * call to call: no allocation), returning the blob's length. A short target: SLI_E_BUFSIZE.
   */
  sealInto(target, data, ad) {
    return N.sealInto(this[kHandle], target, data, ad);
  }

  /**
   * open() into `target` (at least the blob's length − 33 bytes), returning the plaintext's
   * length; on failure the target's first bytes are zeroed, no partial plaintext is left.
   */
  openInto(target, blob, ad) {
    return N.openInto(this[kHandle], target, blob, ad);
  }

  /** seal() on the libuv thread pool (the inputs are copied first) → Promise<Buffer>. */
  sealAsync(data, ad) {
    try {
      return N.sealAsync(this[kHandle], data, ad);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** open() on the libuv thread pool → Promise<Buffer>, rejected with the SliError. */
  openAsync(blob, ad) {
    try {
      return N.openAsync(this[kHandle], blob, ad);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Lets the keys go now (libsli wipes them); later calls throw SliError SLI_E_STATE. Works in
   * flight finish first. Without close(), the garbage collector frees the keyring.
   */
  close() {
    N.close(this[kHandle]);
  }

  /** Whether close() was called. */
  get closed() {
    return N.isClosed(this[kHandle]);
  }
}
if (Symbol.dispose) Keyring.prototype[Symbol.dispose] = Keyring.prototype.close;

/** The ID of the key that sealed `blob`, read from its header (the blob is not opened). */
function sealedKeyId(blob) {
  return N.sealedKeyId(blob);
}

module.exports = { Keyring, sealedKeyId };
