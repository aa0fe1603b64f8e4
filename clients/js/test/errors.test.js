// Failures: answers the proxy or the client makes (Responses with Httpws-Error), and the
// rejections where no response can come (timeout, limits, refused registration, closed).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { HttpWs, HttpWsError } from '../httpws.js';
import { WebSocket, nextEvent, startProxy, targetError } from './helpers.js';

describe('errors', { timeout: 20_000 }, () => {
  let proxy;
  let caller;
  let server;
  let silent;

  before(async () => {
    proxy = await startProxy();
    caller = await HttpWs.connect(proxy.url, { name: 'caller', WebSocket, maxPending: 3 });
    server = await HttpWs.connect(proxy.url, { name: 'server', WebSocket, maxMessageBytes: 4096 });
    silent = await HttpWs.connect(proxy.url, { name: 'silent', WebSocket });
  });

  after(async () => {
    await Promise.all([caller?.close(), server?.close(), silent?.close()]);
    await proxy?.stop();
  });

  test('an unknown target is a 404 Response with Httpws-Error: unknown-address', async () => {
    const res = await caller.fetch('http://nobody/x');
    assert.equal(res.status, 404);
    assert.equal(res.headers.get('httpws-error'), 'unknown-address');
    assert.match(await res.text(), /nobody/);
  });

  test('an endpoint without a handler answers 501 no-service', async () => {
    const res = await caller.fetch('http://silent/anything', { method: 'POST', body: 'x' });
    assert.equal(res.status, 501);
    assert.equal(targetError(res), 'no-service');
    assert.equal(await res.text(), 'this endpoint does not serve requests\n');
  });

  test('a handler that throws answers 500, and says so in an error event', async () => {
    server.onrequest = () => { throw new Error('handler broke'); };
    const event = nextEvent(server, 'error');
    const res = await caller.fetch('http://server/x');
    assert.equal(res.status, 500);
    assert.equal(targetError(res), 'service-error');
    assert.doesNotMatch(await res.text(), /handler broke/, 'the error text stays on the server');
    const { detail } = await event;
    assert.equal(detail.token, 'handler-error');
    assert.equal(detail.source, 'client');
    assert.equal(detail.reason, 'handler broke');

    server.onrequest = async () => 'not a Response';
    assert.equal((await caller.fetch('http://server/x')).status, 500);
  });

  test('a client-side timeout rejects with timeout; the late answer is dropped', async () => {
    let release;
    const released = new Promise((resolve) => { release = resolve; });
    server.onrequest = async (req) => {
      if (new URL(req.url).pathname === '/late') await released;
      return new Response('answer');
    };
    const started = Date.now();
    await assert.rejects(caller.fetch('http://server/late', { timeout: 200 }), (err) => {
      assert.ok(err instanceof HttpWsError);
      assert.equal(err.name, 'timeout');
      assert.match(err.message, /server/);
      return true;
    });
    assert.ok(Date.now() - started >= 190);
    assert.equal(caller.pendingCount, 0);
    release();
    // The late answer reaches the caller and is ignored; the next request is unaffected.
    assert.equal(await (await caller.fetch('http://server/now')).text(), 'answer');
  });

  test('pending requests are bounded (too-many-pending)', async () => {
    let release;
    const released = new Promise((resolve) => { release = resolve; });
    server.onrequest = async () => { await released; return new Response('ok'); };
    const waiting = [1, 2, 3].map(() => caller.fetch('http://server/wait'));
    await assert.rejects(caller.fetch('http://server/wait'), { name: 'too-many-pending' });
    release();
    for (const res of await Promise.all(waiting)) assert.equal(res.status, 200);
  });

  test('messages over maxMessageBytes: refused before sending, and answered 413 when received', async () => {
    server.onrequest = async (req) => new Response(await req.arrayBuffer());
    await assert.rejects(server.fetch('http://caller/', { method: 'POST', body: new Uint8Array(5000) }), { name: 'message-too-large' });
    const big = await caller.fetch('http://server/', { method: 'POST', body: new Uint8Array(5000) });
    assert.equal(big.status, 413);
    assert.equal(targetError(big), 'message-too-large');
    const small = await caller.fetch('http://server/', { method: 'POST', body: new Uint8Array(100) });
    assert.equal((await small.arrayBuffer()).byteLength, 100);
  });

  test('a name held by another connection: connect rejects with registration-refused (409)', async () => {
    await assert.rejects(HttpWs.connect(proxy.url, { name: 'caller', WebSocket }), (err) => {
      assert.equal(err.name, 'registration-refused');
      assert.equal(err.status, 409);
      assert.match(err.message, /"caller".*409.*held/);
      return true;
    });
    assert.equal(caller.connected, true, 'the holder keeps its name');
  });

  test('bad names and URLs are refused before connecting', async () => {
    await assert.rejects(HttpWs.connect(proxy.url, { name: 'no_underscores', WebSocket }), TypeError);
    await assert.rejects(HttpWs.connect(proxy.url, { name: '-dash', WebSocket }), TypeError);
    await assert.rejects(HttpWs.connect(`ftp://${proxy.addr}`, { name: 'x', WebSocket }), TypeError);
    await assert.rejects(HttpWs.connect(proxy.url, { name: 'x', WebSocket, timeout: -1 }), TypeError);
  });

  test('a proxy-side timeout is a 504 Response with Httpws-Error: timeout', async () => {
    const quick = await startProxy(['--request-timeout', '200ms']);
    try {
      const a = await HttpWs.connect(quick.url, { name: 'a', WebSocket });
      const b = await HttpWs.connect(quick.url, { name: 'b', WebSocket });
      b.onrequest = () => new Promise(() => {}); // never answers
      const res = await a.fetch('http://b/');
      assert.equal(res.status, 504);
      assert.equal(res.headers.get('httpws-error'), 'timeout');
      await Promise.all([a.close(), b.close()]);
    } finally {
      await quick.stop();
    }
  });

  test('an unreachable proxy: connect rejects with connect-failed', async () => {
    const gone = await startProxy();
    await gone.stop();
    await assert.rejects(HttpWs.connect(gone.url, { name: 'x', WebSocket }), { name: 'connect-failed' });
  });

  test('after close(): fetch rejects with closed, and the close event has come', async () => {
    const ep = await HttpWs.connect(proxy.url, { WebSocket });
    const closing = nextEvent(ep, 'close');
    const detail = await ep.close();
    assert.equal(detail.code, 1000);
    assert.equal((await closing).detail.code, 1000);
    assert.equal(ep.connected, false);
    await assert.rejects(ep.fetch('http://caller/'), { name: 'closed' });
    // Its address is free again at once.
    const res = await caller.fetch(`http://${ep.address}/`);
    assert.equal(res.headers.get('httpws-error'), 'unknown-address');
  });
});
