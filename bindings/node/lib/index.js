'use strict';
// sli — the secured layer interface from Node: libsli.so.1 through an N-API addon (src/), the
// same engine and policies as the C API, nothing implemented twice.
//
//   const sli = require('sli');
//   const kr = sli.Keyring.generate();
//   const blob = kr.seal('4111 1111 1111 1111', 'customer 42');
//   kr.open(blob, 'customer 42');              // a Buffer
//
// Every failure is a SliError with .code ('SLI_E_PAYLOAD'), .errno (-1703) and libsli's message.
const { N, candidates } = require('./native');
const { SliError, codes } = require('./errors');
const { Keyring, sealedKeyId } = require('./seal');
const { Key, Signer } = require('./keys');
const certs = require('./certs');
const age = require('./age');
const tls = require('./tls');

/** libsli's version, as the loaded library says ("1.1.0"). */
function version() {
  return N.version();
}

module.exports = {
  SliError,
  codes,
  Keyring,
  sealedKeyId,
  Key,
  Signer,
  Certificate: certs.Certificate,
  certs,
  age,
  tls,
  version,
  /** @private where the addon is looked for, in order */
  _addonCandidates: candidates,
};
