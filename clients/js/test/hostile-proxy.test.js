// A proxy that misbehaves (a stand-in WebSocket server, since the real one does not): one
// that registers and drops at once must not cause a reconnect storm, and a `:host` that names
// no valid address, or another than the one asked for, is a protocol error.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { WebSocketServer } from 'ws';
import { HttpWs } from '../httpws.js';
import { WebSocket, nextEvent, withTimeout } from './helpers.js';

/** Reconnects to watch: enough for the backoff to have doubled several times. */
const DROPS = 6;

describe('a hostile proxy', { timeout: 20_000 }, () => {
  let server;
  /** What the server does with each registration: `(socket, path) => void`. */
  let onRegistration;
  let url;

  before(async () => {
    server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(server, 'listening');
    url = `ws://127.0.0.1:${server.address().port}`;
    server.on('connection', (socket, req) => onRegistration(socket, new URL(req.url, url).pathname));
  });

  after(async () => {
    for (const socket of server.clients) socket.terminate();
    await new Promise((resolve) => server.close(resolve));
  });

  test('registered and dropped at once, again and again: the backoff keeps growing', async () => {
    let registrations = 0;
    onRegistration = (socket, path) => {
      registrations += 1;
      socket.send(`:host ${path.slice(1)}`);
      socket.close();
    };
    const ep = await HttpWs.connect(url, { name: 'storm', WebSocket, reconnectMin: 20, reconnectMax: 10_000 });
    const events = [];
    const done = new Promise((resolve) => {
      ep.addEventListener('reconnect', ({ detail }) => {
        events.push(detail);
        if (events.length === DROPS) resolve();
      });
    });
    const started = Date.now();
    await withTimeout(done, 10_000, `${DROPS} reconnects`);
    const elapsed = Date.now() - started;
    await ep.close();

    // Each registration lasted no time at all, so none of them reset the backoff.
    assert.deepEqual(events.map((e) => e.attempt), [1, 2, 3, 4, 5, 6]);
    events.forEach((e, i) => {
      const ceiling = 20 * 2 ** i;
      assert.ok(e.delay >= ceiling / 2 && e.delay <= ceiling, `delay ${i + 1}: ${e.delay} ms in [${ceiling / 2}, ${ceiling}]`);
    });
    // The first five waits alone take at least 10+20+40+80+160 ms.
    assert.ok(elapsed >= 310, `${DROPS} reconnects took ${elapsed} ms`);
    assert.ok(registrations <= DROPS + 1, `${registrations} registrations`);
  });

  test('a :host that is not an address: connect rejects with bad-host and closes', async () => {
    let closed;
    onRegistration = (socket) => {
      closed = once(socket, 'close');
      socket.send(':host printer/admin');
    };
    await assert.rejects(HttpWs.connect(url, { name: 'victim', WebSocket, reconnect: false }), (err) => {
      assert.equal(err.name, 'bad-host');
      assert.match(err.message, /printer\/admin.*not a valid address/);
      return true;
    });
    await withTimeout(closed, 5_000, 'the client to close the socket');
  });

  test('a :host other than the name asked for: bad-host, and an error event on reconnect', async () => {
    let host = 'alice';
    onRegistration = (socket) => socket.send(`:host ${host}`);
    await assert.rejects(HttpWs.connect(url, { name: 'bob', WebSocket }), { name: 'bad-host' });

    // Registered as alice; on the next registration the proxy claims another name.
    const ep = await HttpWs.connect(url, { name: 'alice', WebSocket, reconnectMin: 20 });
    try {
      host = 'mallory';
      const error = nextEvent(ep, 'error');
      const reconnect = new Promise((resolve) => {
        ep.addEventListener('reconnect', ({ detail }) => { if (detail.error) resolve(detail); });
      });
      for (const socket of server.clients) socket.close();
      const { detail } = await error;
      assert.equal(detail.token, 'bad-host');
      assert.equal(detail.source, 'client');
      assert.match(detail.reason, /mallory.*"alice"/);
      assert.equal((await withTimeout(reconnect, 5_000, 'a retry')).error.name, 'bad-host');
      assert.equal(ep.address, 'alice', 'the endpoint keeps its own name');
      assert.equal(ep.connected, false);
    } finally {
      await ep.close();
    }
  });
});
