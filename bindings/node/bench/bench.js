#!/usr/bin/env node
'use strict';
// bench.js — what the Node binding adds: seal and open of 64 B and 1 MiB per call from Node
// against the same calls from C (build/bench/bench_seal, the same libsli.so.1), and (--age) 1 GiB
// of age encryption and decryption through the Node streams against the `sli` CLI, input in
// memory (/dev/shm) and output to /dev/null, with the peak RSS of the Node side. Rounds are
// interleaved; each figure is the median of the rounds with its spread (min–max), never the best.
// Goals (issue 14): under 1 µs of overhead per 64 B call; the streams at least 0.8× the CLI.
//
// usage: node --expose-gc bench/bench.js [--runs N] [--age] [--age-mib N] [--read-kib N]
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');
const { spawnSync } = require('node:child_process');
const { pipeline } = require('node:stream/promises');

const TOP = path.resolve(__dirname, '..', '..', '..');
const BUILD = process.env.SLI_BUILD_DIR ? path.resolve(process.env.SLI_BUILD_DIR) : path.join(TOP, 'build');
const SLI = path.join(BUILD, 'tools', 'sli');
const sli = require('..');

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  if (i < 0) return dflt;
  return typeof dflt === 'boolean' ? true : Number(process.argv[i + 1]);
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const spread = (xs, f = (x) => x.toFixed(0)) => `${f(median(xs))} (${f(Math.min(...xs))}–${f(Math.max(...xs))})`;

/** ns per call of fn over n calls (after a warm-up of n/10). */
function perCall(fn, n) {
  for (let i = 0; i < n / 10; i++) fn();
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn();
  return Number(process.hrtime.bigint() - t) / n;
}

/** ns per call of sli_seal / sli_open from C: bench_seal's table (seal ns/call; open from MB/s). */
function cFigures() {
  const r = spawnSync(path.join(BUILD, 'bench', 'bench_seal'), ['3'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error('bench_seal failed: ' + r.stderr);
  const size = { '64 B': 64, '1 MiB': 1 << 20 };
  const got = {};
  for (const line of r.stdout.split('\n')) {
    const cols = line.trim().replace(/^\||\|$/g, '').split('|').map((c) => c.trim());
    if (cols.length >= 9 && size[cols[0]]) {
      got[`seal ${cols[0]}`] = Number(cols[4]);
      got[`open ${cols[0]}`] = size[cols[0]] / (Number(cols[6]) * 1e6) * 1e9;
    }
  }
  return got;
}

function sealBench(runs) {
  const kr = sli.Keyring.generate();
  const data = { '64 B': crypto.randomBytes(64), '1 MiB': crypto.randomBytes(1 << 20) };
  const blobs = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, kr.seal(v, 't.c')]));
  const counts = { '64 B': 500000, '1 MiB': 400 };
  const keys = ['seal 64 B', 'open 64 B', 'seal 1 MiB', 'open 1 MiB'];
  const node = Object.fromEntries(keys.map((k) => [k, []]));
  const into = Object.fromEntries(keys.map((k) => [k, []]));
  const target = Buffer.alloc((1 << 20) + 64);
  const c = Object.fromEntries(keys.map((k) => [k, []]));
  for (let r = 0; r < runs; r++) {
    const figs = cFigures();
    for (const k of keys) c[k].push(figs[k]);
    for (const s of Object.keys(data)) {
      if (global.gc) global.gc();
      node[`seal ${s}`].push(perCall(() => kr.seal(data[s], 't.c'), counts[s]));
      if (global.gc) global.gc();
      node[`open ${s}`].push(perCall(() => kr.open(blobs[s], 't.c'), counts[s]));
      into[`seal ${s}`].push(perCall(() => kr.sealInto(target, data[s], 't.c'), counts[s]));
      into[`open ${s}`].push(perCall(() => kr.openInto(target, blobs[s], 't.c'), counts[s]));
    }
  }
  console.log(`Sealed blobs: ns per call, medians of ${runs} rounds (spread min–max), one core\n`);
  console.log('| call | C (bench_seal) | Node, a new Buffer | overhead | Node, sealInto/openInto a reused Buffer | overhead |');
  console.log('|---|---|---|---|---|---|');
  for (const k of keys) {
    const cm = median(c[k]);
    const nm = median(node[k]);
    const im = median(into[k]);
    console.log(`| ${k} | ${spread(c[k])} | ${spread(node[k])} | ${(nm - cm).toFixed(0)} ns (${(nm / cm).toFixed(2)}×) | ${spread(into[k])} | ${(im - cm).toFixed(0)} ns (${(im / cm).toFixed(2)}×) |`);
  }
}

async function ageBench(runs, mib) {
  const base = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  const d = fs.mkdtempSync(path.join(base, 'sli-node-bench-'));
  try {
    const me = sli.age.Identity.generate();
    const rcpt = String(me.recipient());
    fs.writeFileSync(path.join(d, 'id'), String(me) + '\n', { mode: 0o600 });
    const input = path.join(d, 'in');
    const block = crypto.randomBytes(1 << 20);
    const fd = fs.openSync(input, 'w');
    for (let i = 0; i < mib; i++) fs.writeSync(fd, block);
    fs.closeSync(fd);
    const sealed = path.join(d, 'in.age');
    if (spawnSync(SLI, ['encrypt', '-r', rcpt, '-o', sealed, input]).status !== 0) throw new Error('sli encrypt');
    const t = { 'encrypt: sli CLI': [], 'encrypt: Node stream': [], 'decrypt: sli CLI': [], 'decrypt: Node stream': [] };
    const peak = { encrypt: [], decrypt: [] };
    const hw = { highWaterMark: arg('--read-kib', 1024) * 1024 }; // fs.createReadStream's chunk
    const timeCli = (args) => {
      const t0 = process.hrtime.bigint();
      const r = spawnSync(SLI, args, { stdio: ['ignore', fs.openSync('/dev/null', 'w'), 'pipe'] });
      if (r.status !== 0) throw new Error(r.stderr.toString());
      return Number(process.hrtime.bigint() - t0) / 1e9;
    };
    const timeNode = async (kind, make, src) => {
      if (global.gc) global.gc();
      const rss0 = process.memoryUsage().rss;
      let top = 0;
      const timer = setInterval(() => { top = Math.max(top, process.memoryUsage().rss - rss0); }, 10);
      const t0 = process.hrtime.bigint();
      await pipeline(fs.createReadStream(src, hw), make(), fs.createWriteStream('/dev/null'));
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      clearInterval(timer);
      peak[kind].push(Math.max(top, process.memoryUsage().rss - rss0) / (1 << 20));
      return s;
    };
    for (let r = 0; r < runs; r++) {
      t['encrypt: sli CLI'].push(timeCli(['encrypt', '-r', rcpt, input]));
      t['encrypt: Node stream'].push(await timeNode('encrypt', () => sli.age.createEncryptStream([rcpt]), input));
      t['decrypt: sli CLI'].push(timeCli(['decrypt', '-i', path.join(d, 'id'), sealed]));
      t['decrypt: Node stream'].push(await timeNode('decrypt', () => sli.age.createDecryptStream([me]), sealed));
    }
    const bytes = mib * (1 << 20);
    console.log(`\nage, ${mib} MiB from /dev/shm to /dev/null, read in ${hw.highWaterMark >> 10} KiB chunks, medians of ${runs} rounds (spread min–max)\n`);
    console.log('| what | seconds | MB/s | vs the CLI |');
    console.log('|---|---|---|---|');
    for (const [k, xs] of Object.entries(t)) {
      const cli = median(t[k.split(':')[0] + ': sli CLI']);
      console.log(`| ${k} | ${spread(xs, (x) => x.toFixed(2))} | ${(bytes / median(xs) / 1e6).toFixed(0)} | ${(cli / median(xs)).toFixed(2)}× |`);
    }
    console.log(`\nNode's RSS growth during a stream, MiB: encrypt ${spread(peak.encrypt)}, decrypt ${spread(peak.decrypt)}`);
  } finally {
    fs.rmSync(d, { recursive: true, force: true });
  }
}

(async () => {
  const runs = arg('--runs', 5);
  sealBench(runs);
  if (arg('--age', false)) await ageBench(runs, arg('--age-mib', 1024));
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
