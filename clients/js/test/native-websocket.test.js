// The client on the platform's own WebSocket (a browser's, or Node's built-in one) rather
// than the `ws` package: the API browsers have, which cannot set headers or see why a
// handshake was refused.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startProxy, withTimeout } from './helpers.js';

const fixture = fileURLToPath(new URL('./fixtures/native-websocket.js', import.meta.url));
// Node 22 has a global WebSocket; Node 20 has it behind a flag; older ones not at all.
const flags = typeof globalThis.WebSocket === 'function' ? []
  : process.allowedNodeEnvironmentFlags.has('--experimental-websocket') ? ['--experimental-websocket']
    : null;

let proxy;
before(async () => { proxy = await startProxy(); });
after(async () => { await proxy?.stop(); });

test('the platform WebSocket: register, fetch, streams, a refusal seen without its status, an old proxy', {
  timeout: 20_000,
  skip: flags === null ? 'this Node has no built-in WebSocket' : false,
}, async () => {
  const stdout = await withTimeout(new Promise((resolve, reject) => {
    execFile(process.execPath, [...flags, fixture, proxy.url], { timeout: 15_000 }, (err, out, errOut) => {
      if (err) reject(new Error(`${err.message}\n${out}\n${errOut}`));
      else resolve(out);
    });
  }), 16_000, 'the native-WebSocket fixture');
  const seen = JSON.parse(stdout.trim().split('\n').at(-1));
  assert.equal(seen.webSocket, 'function');
  assert.equal(seen.status, 200);
  assert.equal(seen.text, 'native-a:hi');
  assert.equal(seen.xFrom, 'native-a');
  assert.deepEqual(seen.unknown, [404, 'unknown-address']);
  assert.equal(seen.duplicate, 'connect-failed', 'a browser-shaped WebSocket cannot tell a 409');
  assert.equal(seen.duplicateStatus, null);
  assert.ok(seen.duplicateMs < 4_000, `the refusal is reported at once (${seen.duplicateMs} ms), not by the connect timeout`);
  assert.deepEqual(seen.protocol, [2, 2], 'protocol 2 on the platform WebSocket');
  assert.equal(seen.download, true, 'a streamed download arrives intact');
  assert.equal(seen.upload, true, 'a streamed upload arrives intact');
  assert.deepEqual(seen.fallback, { protocol: 1, offers: ['httpws.2', null] }, 'an old proxy: asked again without the offer');
});
