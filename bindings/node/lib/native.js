'use strict';
// native.js — finds and loads the addon (sli.node) and holds what the other modules share: the
// symbol under which each object keeps its native handle, and argument checks.
//
// The addon is looked up in this order: $SLI_NODE_ADDON; the meson build tree
// ($SLI_BUILD_DIR/bindings/node/sli.node); node-gyp's build/Release/sli.node; build/sli.node
// (scripts/build-dev).
const fs = require('node:fs');
const path = require('node:path');
const { fileURLToPath } = require('node:url');

const here = path.join(__dirname, '..');

/** The paths tried, in order, for the addon. */
function candidates() {
  const list = [];
  if (process.env.SLI_NODE_ADDON) list.push(path.resolve(process.env.SLI_NODE_ADDON));
  if (process.env.SLI_BUILD_DIR) {
    list.push(path.resolve(process.env.SLI_BUILD_DIR, 'bindings', 'node', 'sli.node'));
  }
  list.push(path.join(here, 'build', 'Release', 'sli.node'));
  list.push(path.join(here, 'build', 'sli.node'));
  return list;
}

function load() {
  const tried = candidates();
  for (const p of tried) {
    // $SLI_NODE_ADDON is taken as given: a missing file there is an error, not a fallback
    if (p === tried[0] && process.env.SLI_NODE_ADDON) return require(p);
    if (fs.existsSync(p)) return require(p);
  }
  const err = new Error('sli: the addon sli.node was not found; tried ' + tried.join(', ') +
    ' (build it with scripts/build-dev, node-gyp, or meson, or set SLI_NODE_ADDON)');
  err.code = 'ERR_SLI_ADDON_NOT_FOUND';
  throw err;
}

/** The addon's functions (internal: the public API is in index.js). */
const N = load();

/** The property under which a public object keeps its native handle. */
const kHandle = Symbol('sli.handle');
/** A token that only this package's factories pass to constructors. */
const kToken = Symbol('sli.token');

/** A TypeError in Node's style (code ERR_INVALID_ARG_TYPE). */
function typeError(message) {
  const e = new TypeError(message);
  e.code = 'ERR_INVALID_ARG_TYPE';
  return e;
}

/** The native handle of `obj`, which must be an instance of `Class`. */
function handleOf(obj, Class, what) {
  if (!(obj instanceof Class)) {
    throw typeError(`${what} must be a ${Class.name}, got ${describe(obj)}`);
  }
  return obj[kHandle];
}

/** A file system path argument (string, Buffer or file: URL) as a string. */
function pathArg(p, what = 'path') {
  if (typeof p === 'string') return p;
  if (Buffer.isBuffer(p)) return p.toString();
  if (p instanceof URL) return fileURLToPath(p);
  throw typeError(`${what} must be a string, a Buffer or a URL, got ${describe(p)}`);
}

function describe(v) {
  if (v === null) return 'null';
  if (typeof v === 'object') return v.constructor ? `an instance of ${v.constructor.name}` : 'an object';
  return `type ${typeof v}`;
}

/** Guards a constructor that only the package's factories may call. */
function checkToken(token, name, hint) {
  if (token !== kToken) throw typeError(`${name} is not constructed directly: use ${hint}`);
}

module.exports = { N, kHandle, kToken, typeError, handleOf, pathArg, checkToken, candidates };
