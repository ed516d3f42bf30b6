// node_http.js PORT DATAFILE CAFILE HTTPSPORT — node's plain `http` server (libuv: epoll, sockets
// closed with syscall(SYS_close)), made TLS by the shim. Each request is answered with Connection:
// close, so sockets close between requests and their fd numbers are reused:
//   GET /file   -> the contents of DATAFILE read with fs.readFileSync (an fd a closed socket had)
//   GET /fetch  -> node's own https client (OpenSSL, in the same process) fetches https://localhost:
//                  HTTPSPORT/ verified with CAFILE read by fs.readFileSync; the body, or the error
// The landed shim kept table entries for sockets libuv closed: the file read went to a dead TLS
// connection and the CA file read came back empty.
'use strict';
const http = require('http');
const https = require('https');
const fs = require('fs');
const [port, dataFile, caFile, httpsPort] = process.argv.slice(2);

const server = http.createServer((req, res) => {
  res.setHeader('Connection', 'close');
  if (req.url === '/file') {
    res.end('file: ' + fs.readFileSync(dataFile, 'utf8'));
  } else if (req.url === '/fetch') {
    let ca;
    try {
      ca = fs.readFileSync(caFile);
    } catch (e) {
      res.end('fetch: cannot read the CA file: ' + e.code);
      return;
    }
    https.get({host: '127.0.0.1', port: Number(httpsPort), path: '/', ca, servername: 'localhost',
               agent: false}, (r) => {
      let body = '';
      r.on('data', (c) => body += c);
      r.on('end', () => res.end('fetch: ' + r.statusCode + ' ' + body));
    }).on('error', (e) => res.end('fetch: error ' + e.code + ' ' + e.message));
  } else {
    res.statusCode = 404;
    res.end('not found');
  }
});
server.listen(Number(port), '127.0.0.1', () => console.log('ready'));
process.on('SIGTERM', () => process.exit(0));
