'use strict';
// Worker threads that load the binding on their own (the main thread never does) and exit —
// naturally, and by terminate() with work in flight: the process lives on and exits 0. Node
// unloads an addon with the worker that loaded it; libsli is built never to be unloaded
// (-z nodelete), or the thread-local destructor of its crypto library would run in unmapped
// code at the worker's thread exit (a segfault of the whole process, found by review).
const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { asanSkip } = require('./common');

const skip = asanSkip();
const LIB = path.join(__dirname, '..');

function runScript(body) {
  const r = spawnSync(process.execPath, ['-e', body], { encoding: 'utf8', timeout: 60000 });
  return r;
}

test('workers load sli, use it and exit; the process lives on', { skip }, () => {
  const body = `
const { Worker } = require('worker_threads');
const code = ${JSON.stringify(`
const { parentPort } = require('worker_threads');
const sli = require(${JSON.stringify(LIB)});
const kr = sli.Keyring.generate();
const k = sli.Key.generate('ed25519');
parentPort.postMessage(kr.open(kr.seal('from a worker', 'ad'), 'ad').toString() + ' ' + k.verify(k.sign('m'), 'm'));
`)};
let exits = 0;
for (let i = 0; i < 4; i++) {
  const w = new Worker(code, { eval: true });
  w.on('message', (m) => console.log(m));
  w.on('exit', (c) => { exits++; console.log('exit ' + c); });
}
process.on('exit', () => console.log('main exits after ' + exits + ' workers'));
`;
  const r = runScript(body);
  assert.strictEqual(r.status, 0, `exit ${r.status} signal ${r.signal}: ${r.stderr}`);
  assert.strictEqual((r.stdout.match(/from a worker true/g) || []).length, 4, r.stdout);
  assert.match(r.stdout, /main exits after 4 workers/);
});

test('workers terminated with sealAsync jobs in flight', { skip }, () => {
  const body = `
const { Worker } = require('worker_threads');
const code = ${JSON.stringify(`
const { parentPort } = require('worker_threads');
const sli = require(${JSON.stringify(LIB)});
const kr = sli.Keyring.generate();
const big = Buffer.alloc(8 << 20, 7);
for (let i = 0; i < 4; i++) kr.sealAsync(big, 'ad').catch(() => {});
parentPort.postMessage('started');
`)};
let n = 0;
for (let i = 0; i < 6; i++) {
  const w = new Worker(code, { eval: true });
  w.on('message', () => w.terminate());
  w.on('exit', () => { n++; });
}
process.on('exit', () => console.log('terminated ' + n));
`;
  const r = runScript(body);
  assert.strictEqual(r.status, 0, `exit ${r.status} signal ${r.signal}: ${r.stderr}`);
  assert.match(r.stdout, /terminated 6/);
});
