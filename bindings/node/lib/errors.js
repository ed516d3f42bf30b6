'use strict';
// errors.js — SliError: a failing libsli call, with its SLI_E_* name, its code and libsli's message.
const { N } = require('./native');

/**
 * A libsli call failed. `code` is the SLI_E_* name ('SLI_E_PAYLOAD'), `errno` the negative
 * numeric code (-1703), `message` what libsli said (naming the file, the line, the peer…).
 */
class SliError extends Error {
  /**
   * @param {number} errno the negative SLI_E_* code
   * @param {string} [code] its name; derived from errno when omitted
   * @param {string} [message] libsli's message; the code's description when omitted
   */
  constructor(errno, code, message) {
    code = code || N.errName(errno);
    super(message || N.strerror(errno));
    /** The SLI_E_* name, e.g. 'SLI_E_TRUNCATED'. */
    this.code = code;
    /** The numeric code, e.g. -1102. */
    this.errno = errno;
  }
}
Object.defineProperty(SliError.prototype, 'name', {
  value: 'SliError', writable: true, configurable: true, enumerable: false,
});

N.setErrorClass(SliError);

/** The numeric codes by name, for comparisons: codes.SLI_E_PAYLOAD === -1703. */
const codes = Object.freeze({
  SLI_WANT_READ: -1001, SLI_WANT_WRITE: -1002,
  SLI_E_CLOSED: -1101, SLI_E_TRUNCATED: -1102, SLI_E_IO: -1201, SLI_E_TIMEOUT: -1202,
  SLI_E_ALERT: -1301, SLI_E_PROTO: -1401, SLI_E_NO_SHARED_CIPHER: -1402, SLI_E_VERSION: -1403,
  SLI_E_NOT_TLS: -1404, SLI_E_UNTRUSTED: -1501, SLI_E_EXPIRED: -1502, SLI_E_NOT_YET_VALID: -1503,
  SLI_E_HOSTNAME: -1504, SLI_E_REVOKED: -1505, SLI_E_BAD_SIGNATURE: -1506,
  SLI_E_SELF_SIGNED: -1507, SLI_E_NO_PEER_CERT: -1508, SLI_E_VERIFY: -1509, SLI_E_PEM: -1601,
  SLI_E_PEM_TRUNCATED: -1602, SLI_E_LINE_ENDINGS: -1603, SLI_E_NOT_PEM: -1604,
  SLI_E_PASSWORD: -1605, SLI_E_KEY_MISMATCH: -1606, SLI_E_WEAK_KEY: -1607, SLI_E_CIPHERS: -1608,
  SLI_E_FILE: -1609, SLI_E_NO_IDENTITY: -1610, SLI_E_CONFIG: -1611, SLI_E_KEY_ENCRYPTED: -1612,
  SLI_E_HEADER: -1701, SLI_E_HEADER_MAC: -1702, SLI_E_PAYLOAD: -1703, SLI_E_ARMOR: -1704,
  SLI_E_NO_MATCH: -1705, SLI_E_SIGNATURE: -1706, SLI_E_INVAL: -1801, SLI_E_STATE: -1802,
  SLI_E_BUFSIZE: -1803, SLI_E_UNSUPPORTED: -1804, SLI_E_NOMEM: -1901, SLI_E_INTERNAL: -1902,
});

module.exports = { SliError, codes };
