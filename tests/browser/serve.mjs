// A tiny static server for the WebRTC demo, serving exactly the paths `httpws proxy
// --serve-demo` serves, so the demo can be tried (and tested) without that flag:
//
//   /webrtc/, /webrtc/index.html  → examples/webrtc/index.html
//   /webrtc/demo.js               → examples/webrtc/demo.js
//   /httpws.js                    → clients/js/httpws.js
//
// The page then needs `?proxy=ws://HOST:PORT`, since its own origin is this server, and the
// proxy must allow this server's origin (`--allowed-origins http://127.0.0.1:PORT`).
//
//   node tests/browser/serve.mjs [--listen 127.0.0.1:0]
//
// Prints `serving http://HOST:PORT` once listening; files are read on each request, so edits
// show on reload.

import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const FILES = {
  '/webrtc/': ['examples/webrtc/index.html', 'text/html; charset=utf-8'],
  '/webrtc/index.html': ['examples/webrtc/index.html', 'text/html; charset=utf-8'],
  '/webrtc/demo.js': ['examples/webrtc/demo.js', 'text/javascript; charset=utf-8'],
  '/httpws.js': ['clients/js/httpws.js', 'text/javascript; charset=utf-8'],
};

const at = process.argv.indexOf('--listen');
const listen = at > 0 ? process.argv[at + 1] : '127.0.0.1:0';
const colon = listen.lastIndexOf(':');
const host = listen.slice(0, colon);
const port = Number(listen.slice(colon + 1));

const server = createServer(async (req, res) => {
  const path = new URL(req.url, 'http://x').pathname;
  if (path === '/webrtc') {
    // Relative URLs in the page resolve against /webrtc/, not /.
    res.writeHead(308, { location: '/webrtc/' + new URL(req.url, 'http://x').search }).end();
    return;
  }
  const file = FILES[path];
  if (!file || (req.method !== 'GET' && req.method !== 'HEAD')) {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    return;
  }
  try {
    const body = await readFile(root + file[0]);
    res.writeHead(200, { 'content-type': file[1], 'cache-control': 'no-store', 'content-length': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
  } catch (err) {
    res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`);
  }
});

server.listen(port, host, () => {
  const { address, port: bound } = server.address();
  console.log(`serving http://${address.includes(':') ? `[${address}]` : address}:${bound}`);
});

// Exit at once on SIGTERM/SIGINT (the test driver stops this server by its PID).
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
