#!/usr/bin/env node
'use strict';
// The Node side of the cross-language test (bindings/interop_test.py): one small command per
// operation, bytes on stdin and stdout, the same commands as the Python and Go ones.
//
//   seal KEYRING AD | open KEYRING AD          sealed blobs
//   encrypt RECIPIENT | decrypt IDENTITY_FILE  age, streaming
//   serve CERT KEY                             TLS: prints the port, answers one line, close_notify
//   connect PORT CA NAME                       TLS: sends a line, prints the answer
const fs = require('fs');
const { pipeline } = require('stream');
const sli = require('../lib');

const LANG = 'node';

function fail(err) {
  process.stderr.write(`error: ${err && err.message ? err.message : err}\n`);
  process.exitCode = 1;
}

function readStdin() {
  const parts = [];
  return new Promise((resolve, reject) => {
    process.stdin.on('data', (d) => parts.push(d));
    process.stdin.on('end', () => resolve(Buffer.concat(parts)));
    process.stdin.on('error', reject);
  });
}

async function main(cmd, ...a) {
  switch (cmd) {
    case 'seal':
    case 'open': {
      const kr = sli.Keyring.load(a[0]);
      const data = await readStdin();
      process.stdout.write(cmd === 'seal' ? kr.seal(data, a[1]) : kr.open(data, a[1]));
      return;
    }
    case 'encrypt':
    case 'decrypt': {
      const t = cmd === 'encrypt'
        ? sli.age.createEncryptStream([sli.age.Recipient.parse(a[0])])
        : sli.age.createDecryptStream(fs.readFileSync(a[0], 'utf8').split('\n')
          .filter((l) => l.startsWith('AGE-SECRET-KEY-'))
          .map((l) => sli.age.Identity.parse(l.trim())));
      await new Promise((resolve, reject) =>
        pipeline(process.stdin, t, process.stdout, (err) => (err ? reject(err) : resolve())));
      return;
    }
    case 'serve': {
      const ctx = sli.tls.Context.server({ cert: a[0], key: a[1] });
      await new Promise((resolve, reject) => {
        const server = sli.tls.createServer(ctx, (t) => {
          let line = Buffer.alloc(0);
          t.on('data', (d) => {
            line = Buffer.concat([line, d]);
            if (line.includes(10)) {
              t.end(Buffer.concat([Buffer.from(`${LANG} heard: `), line]));  // then close_notify
            }
          });
          t.on('end', () => { server.close(); resolve(); });  // the peer's close_notify
          t.on('close', () => { server.close(); resolve(); });
          t.on('error', (err) => { server.close(); reject(err); });
        });
        server.on('tlsClientError', (err) => { server.close(); reject(err); });
        server.listen(0, '127.0.0.1', () => console.log(server.address().port));
      });
      return;
    }
    case 'connect': {
      const ctx = sli.tls.Context.client({ ca: a[1] });
      await new Promise((resolve, reject) => {
        const t = sli.tls.connect({ host: '127.0.0.1', port: Number(a[0]), ctx, servername: a[2] });
        t.on('data', (d) => process.stdout.write(d));
        t.on('end', () => { t.end(); resolve(); });
        t.on('error', reject);
        t.write(`hello from ${LANG}\n`);
      });
      return;
    }
    default:
      throw new Error(`unknown command ${cmd}`);
  }
}

main(...process.argv.slice(2)).catch(fail);
