'use strict';
// age files: round trips of 0 B to 300 KB in memory and through the streams (chunk edges); a file
// streamed in 10 000-byte writes opens with `age -d` and `sli decrypt`, and files made by `age`
// and `sli encrypt` open here; a flipped byte, a cut end, a changed header, another identity and
// garbage each fail the stream with their SliError ('error', never 'end'); a changed last chunk
// releases the first chunks to a streaming reader but nothing to an allOrNothing one (12 MiB:
// through the temporary file, which never shows in TMPDIR); passphrase with armor; SSH Ed25519
// keys both ways with `age`; backpressure; 64 MiB each way grows RSS by under 32 MiB.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { Readable, Writable } = require('node:stream');
const { pipeline } = require('node:stream/promises');
const { sli, asanSkip, tmpdir, run, SLI, collect, errorOf } = require('./common');

const skip = asanSkip();
const D = skip ? null : tmpdir('sli-node-age-');
const age = sli && sli.age;

/** Writes `data` into `stream` in pieces of `step` bytes, then ends it. */
function feed(stream, data, step = 10000) {
  (async () => {
    for (let i = 0; i < data.length; i += step) {
      if (!stream.write(data.subarray(i, i + step))) await new Promise((r) => stream.once('drain', r));
      if (stream.destroyed) return;
    }
    stream.end();
  })().catch(() => {});
  return stream;
}

async function encryptStream(data, recipients, opts) {
  const enc = age.createEncryptStream(recipients, opts);
  const out = collect(enc);
  feed(enc, data);
  return out;
}

test('round trips, in memory and streamed', { skip }, async () => {
  const me = age.Identity.generate();
  const to = [me.recipient()];
  for (const n of [0, 1, 65535, 65536, 65537, 131072, 300000]) {
    const data = crypto.randomBytes(n);
    assert.deepStrictEqual(age.decrypt(age.encrypt(data, to), [me]), data);
    const file = await encryptStream(data, to, { armor: n % 2 === 1, offload: n % 3 === 0 });
    const dec = age.createDecryptStream([me], { offload: n % 3 === 1 });
    const got = collect(dec);
    feed(dec, file, 777);
    assert.deepStrictEqual(await got, data);
  }
  // strings in, recipients and identities as strings
  const file = age.encrypt('héllo', [String(me.recipient())]);
  assert.strictEqual(age.decrypt(file, [String(me)]).toString(), 'héllo');
  assert.match(String(me), /^AGE-SECRET-KEY-1[0-9A-Z]+$/);
  assert.match(String(me.recipient()), /^age1[0-9a-z]+$/);
});

test('interop: age and sli decrypt what Node streams, Node decrypts theirs', { skip }, async () => {
  const me = age.Identity.generate();
  const idFile = path.join(D, 'me.key');
  fs.writeFileSync(idFile, String(me) + '\n', { mode: 0o600 });
  const data = crypto.randomBytes(200000);
  const f = path.join(D, 'node.age');
  fs.writeFileSync(f, await encryptStream(data, [me.recipient()]));
  let r = run('age', ['-d', '-i', idFile, f]);
  assert.strictEqual(r.status, 0, r.stderr);
  assert.deepStrictEqual(r.stdout, data);
  r = run(SLI, ['decrypt', '-i', idFile, f]);
  assert.strictEqual(r.status, 0, r.stderr);
  assert.deepStrictEqual(r.stdout, data);
  // armored, by Node, for both tools
  fs.writeFileSync(f + '.asc', age.encrypt(data, [me.recipient()], { armor: true }));
  assert.match(fs.readFileSync(f + '.asc', 'latin1'), /^-----BEGIN AGE ENCRYPTED FILE-----/);
  assert.deepStrictEqual(run('age', ['-d', '-i', idFile, f + '.asc']).stdout, data);
  assert.deepStrictEqual(run(SLI, ['decrypt', '-i', idFile, f + '.asc']).stdout, data);
  // made by age (binary and armored) and by sli, read through a file stream
  for (const [tool, args] of [['age', ['-r', String(me.recipient())]], ['age', ['-a', '-r', String(me.recipient())]],
    [SLI, ['encrypt', '-r', String(me.recipient())]]]) {
    r = run(tool, args, { input: data });
    assert.strictEqual(r.status, 0, r.stderr);
    const g = path.join(D, 'theirs.age');
    fs.writeFileSync(g, r.stdout);
    const out = await collect(fs.createReadStream(g).pipe(age.createDecryptStream([me])));
    assert.deepStrictEqual(out, data);
  }
});

test('tampered, cut, foreign and garbage files fail the stream with their SliError', { skip }, async () => {
  const me = age.Identity.generate();
  const data = crypto.randomBytes(200000);
  const file = age.encrypt(data, [me.recipient()]);
  let round = 0;
  const decErr = async (input, ids = [me], opts = { offload: (++round) % 2 === 0 }) => {
    const dec = age.createDecryptStream(ids, opts);
    dec.resume();
    const e = errorOf(dec);
    feed(dec, input);
    return e;
  };
  const flip = (i) => { const t = Buffer.from(file); t[i] ^= 1; return t; };
  let e = await decErr(flip(file.length - 100));
  assert.ok(e instanceof sli.SliError);
  assert.strictEqual(e.code, 'SLI_E_PAYLOAD');
  assert.strictEqual(e.errno, -1703);
  assert.ok(e.message.length > 0);
  e = await decErr(file.subarray(0, file.length - 1));
  assert.strictEqual(e.code, 'SLI_E_PAYLOAD');
  e = await decErr(file.subarray(0, file.length - 20000));
  assert.strictEqual(e.code, 'SLI_E_PAYLOAD');
  e = await decErr(Buffer.concat([file, Buffer.from('x')]));
  assert.strictEqual(e.code, 'SLI_E_PAYLOAD');
  const mac = Buffer.from(file);
  const at = file.indexOf('\n--- ') + 10; // a base64 character of the header's MAC, changed to another
  mac[at] = mac[at] === 0x41 ? 0x42 : 0x41;
  e = await decErr(mac);
  assert.strictEqual(e.code, 'SLI_E_HEADER_MAC');
  e = await decErr(file, [age.Identity.generate()]);
  assert.strictEqual(e.code, 'SLI_E_NO_MATCH');
  e = await decErr(Buffer.from('not an age file at all\n'));
  assert.strictEqual(e.code, 'SLI_E_HEADER');
  e = await decErr(Buffer.alloc(0));
  assert.strictEqual(e.code, 'SLI_E_HEADER');
  assert.throws(() => age.decrypt(flip(file.length - 1), [me]), (x) => x.code === 'SLI_E_PAYLOAD');
  // armored with a broken line
  const asc = age.encrypt(data, [me.recipient()], { armor: true }).toString('latin1').replace(/\n[A-Za-z0-9+/]{10}/, '\n!!!!!!!!!!');
  e = await decErr(Buffer.from(asc, 'latin1'));
  assert.strictEqual(e.code, 'SLI_E_ARMOR');
});

test('a changed last chunk: streaming releases the first chunks, allOrNothing nothing', { skip }, async () => {
  const me = age.Identity.generate();
  const tmp = path.join(D, 'spool');
  fs.mkdirSync(tmp);
  const saved = process.env.TMPDIR;
  process.env.TMPDIR = tmp;
  try {
    for (const size of [3 << 20, 12 << 20]) { // in memory, and through the temporary file
      const data = crypto.randomBytes(size);
      const file = Buffer.from(age.encrypt(data, [me.recipient()]));
      file[file.length - 3] ^= 1;
      for (const allOrNothing of [false, true]) {
        const dec = age.createDecryptStream([me], { allOrNothing, offload: size > (4 << 20) });
        let got = 0;
        let sawSpoolEntry = false;
        dec.on('data', (d) => { got += d.length; });
        const e = errorOf(dec, 30000);
        feed(dec, file, 65536);
        const timer = setInterval(() => { if (fs.readdirSync(tmp).length) sawSpoolEntry = true; }, 1);
        const err = await e;
        clearInterval(timer);
        assert.strictEqual(err.code, 'SLI_E_PAYLOAD');
        if (allOrNothing) assert.strictEqual(got, 0, 'allOrNothing released plaintext');
        else assert.ok(got >= size - (2 << 20), `streaming released ${got} bytes`);
        assert.deepStrictEqual(fs.readdirSync(tmp), []);
        void sawSpoolEntry; // the spool is unlinked as soon as it is made: never visible for long
      }
      // and an intact file comes out whole, nothing before the end was authenticated
      const good = age.encrypt(data, [me.recipient()]);
      const dec = age.createDecryptStream([me], { allOrNothing: true });
      let early = 0;
      let ended = false;
      dec.on('data', (d) => { if (!ended) early += d.length; });
      const chunks = [];
      dec.on('data', (d) => chunks.push(d));
      const done = new Promise((resolve, reject) => { dec.on('end', resolve); dec.on('error', reject); });
      for (let i = 0; i < good.length - 1; i += 65536) {
        const piece = good.subarray(i, Math.min(i + 65536, good.length - 1));
        if (!dec.write(piece)) await new Promise((r) => dec.once('drain', r));
      }
      await new Promise((r) => setTimeout(r, 50));
      assert.strictEqual(early, 0, 'released before the end');
      ended = true;
      dec.end(good.subarray(good.length - 1));
      await done;
      assert.ok(Buffer.concat(chunks).equals(data));
      assert.deepStrictEqual(fs.readdirSync(tmp), []);
    }
  } finally {
    if (saved === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = saved;
  }
});

test('a destroyed allOrNothing stream closes its spool', { skip }, async () => {
  const me = age.Identity.generate();
  const data = crypto.randomBytes(10 << 20);
  const file = age.encrypt(data, [me.recipient()]);
  const dec = age.createDecryptStream([me], { allOrNothing: true });
  dec.resume();
  const fdsBefore = fs.readdirSync('/proc/self/fd').length;
  await new Promise((resolve) => dec.write(file.subarray(0, 9.5 * 1048576), resolve));
  await new Promise((r) => setTimeout(r, 50));
  dec.destroy();
  await new Promise((r) => dec.on('close', r));
  assert.ok(fs.readdirSync('/proc/self/fd').length <= fdsBefore, 'the spool file descriptor leaked');
});

test('passphrase with armor, and SSH Ed25519 keys with age', { skip }, async () => {
  const data = crypto.randomBytes(100000);
  const file = age.encrypt(data, [age.Recipient.passphrase('correct horse', { log2N: 10 })], { armor: true });
  assert.deepStrictEqual(age.decrypt(file, [age.Identity.passphrase('correct horse')]), data);
  assert.throws(() => age.decrypt(file, [age.Identity.passphrase('wrong horse')]), (e) => e instanceof sli.SliError && e.code === 'SLI_E_NO_MATCH');
  assert.throws(() => age.encrypt(data, [age.Recipient.passphrase('a'), age.Identity.generate().recipient()]), sli.SliError);

  const key = sli.Key.generate('ed25519');
  const priv = path.join(D, 'id_ed25519');
  fs.writeFileSync(priv, key.opensshPrivate('node test'), { mode: 0o600 });
  const line = key.opensshPublic().trim();
  assert.match(line, /^ssh-ed25519 /);
  // Node to age -i
  fs.writeFileSync(path.join(D, 'ssh.age'), await encryptStream(data, [age.Recipient.fromKey(key)]));
  let r = run('age', ['-d', '-i', priv, path.join(D, 'ssh.age')]);
  assert.strictEqual(r.status, 0, r.stderr);
  assert.deepStrictEqual(r.stdout, data);
  // age -r "ssh-ed25519 …" to Node, with the key loaded from its OpenSSH file
  r = run('age', ['-r', line], { input: data });
  assert.strictEqual(r.status, 0, r.stderr);
  const loaded = sli.Key.load(priv);
  assert.deepStrictEqual(age.decrypt(r.stdout, [age.Identity.fromKey(loaded)]), data);
  assert.strictEqual(String(age.Recipient.parse(line)), line.split(' ').slice(0, 2).join(' '));
  assert.throws(() => age.Identity.fromKey(sli.Key.generate('ec')), (e) => e.code === 'SLI_E_UNSUPPORTED');
  assert.throws(() => age.Recipient.parse('age1nope'), (e) => e.code === 'SLI_E_INVAL');
  assert.throws(() => age.Identity.parse('AGE-SECRET-KEY-1XYZ'), (e) => e.code === 'SLI_E_INVAL');
});

test('backpressure: an encrypt stream nobody reads stops taking input', { skip }, async () => {
  const enc = age.createEncryptStream([age.Identity.generate().recipient()]);
  const piece = Buffer.alloc(65536);
  let written = 0;
  while (enc.write(piece)) {
    written += piece.length;
    if (written > (256 << 20)) break;
  }
  await new Promise((r) => setTimeout(r, 20));
  assert.ok(written < (8 << 20), `${written} bytes taken with no reader`);
  assert.ok(enc.readableLength + enc.writableLength < (8 << 20));
  enc.destroy();
});

test('64 MiB through encrypt and decrypt streams: constant memory', { skip }, async () => {
  const me = age.Identity.generate();
  const total = 64 << 20;
  const block = crypto.randomBytes(65536);
  let sent = 0;
  const src = new Readable({
    read() {
      if (sent >= total) return this.push(null);
      sent += block.length;
      this.push(block);
    },
  });
  const hIn = crypto.createHash('sha256');
  const hOut = crypto.createHash('sha256');
  for (let i = 0; i < total / block.length; i++) hIn.update(block);
  let peak = 0;
  const base = process.memoryUsage().rss;
  const t = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss - base); }, 5);
  await pipeline(src, age.createEncryptStream([me.recipient()]), age.createDecryptStream([me]),
    new Writable({ write(c, e, cb) { hOut.update(c); cb(); } }));
  clearInterval(t);
  peak = Math.max(peak, process.memoryUsage().rss - base);
  assert.strictEqual(hOut.digest('hex'), hIn.digest('hex'));
  assert.ok(peak < (32 << 20), `RSS grew by ${peak >> 20} MiB`);
});

// A writer may reuse its buffer once the write callback has run (the Writable contract): the
// streams must have taken their copy by then — with 64 KiB writes gathered into a batch, with
// 2 MiB writes, and with the work offloaded to the thread pool (found by review: refilled
// bytes were encrypted). Each segment must decrypt to its own letter.
test('a writer that reuses its buffer after each callback', { skip }, async () => {
  const me = age.Identity.generate();
  for (const [size, offload] of [[64 << 10, false], [2 << 20, false], [2 << 20, true], [64 << 10, true]]) {
    for (const dir of ['encrypt', 'decrypt']) {
      const buf = Buffer.alloc(size);
      const letters = 6;
      let plain;
      let stream;
      if (dir === 'encrypt') {
        stream = age.createEncryptStream([me.recipient()], { offload });
      } else {
        plain = Buffer.concat(Array.from({ length: letters }, (_, i) => Buffer.alloc(size, 65 + i)));
        stream = age.createDecryptStream([me], { offload });
      }
      const out = collect(stream);
      const source = dir === 'encrypt' ? null : age.encrypt(plain, [me.recipient()]);
      await new Promise((resolve, reject) => {
        let i = 0;
        const next = (err) => {
          if (err) return reject(err);
          if (dir === 'encrypt') {
            if (i === letters) { stream.end(); return resolve(); }
            buf.fill(65 + i++);
            return stream.write(buf, next);
          }
          if (i >= source.length) { stream.end(); return resolve(); }
          const n = Math.min(size, source.length - i);
          source.copy(buf, 0, i, i + n);
          i += n;
          return stream.write(buf.subarray(0, n), next);
        };
        next();
      });
      const got = await out;
      const p = dir === 'encrypt' ? age.decrypt(got, [me]) : got;
      assert.strictEqual(p.length, letters * size, `${dir} ${size} offload=${offload}`);
      for (let k = 0; k < letters; k++) {
        const seg = p.subarray(k * size, (k + 1) * size);
        assert.ok(seg.every((b) => b === 65 + k),
          `${dir} ${size} offload=${offload}: segment ${k} is not all ${String.fromCharCode(65 + k)}`);
      }
    }
  }
});
