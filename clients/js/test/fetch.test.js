// Two JS endpoints calling each other through the real proxy: fetch() in, onrequest out.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { HttpWs, HttpWsError } from '../httpws.js';
import { WebSocket, startProxy } from './helpers.js';

describe('fetch between two JS endpoints', { timeout: 20_000 }, () => {
  let proxy;
  let alice;
  let bob;
  const seen = [];

  before(async () => {
    proxy = await startProxy();
    alice = await HttpWs.connect(proxy.url, { name: 'alice', WebSocket });
    bob = await HttpWs.connect(proxy.url, { name: 'Bob', WebSocket });
    bob.onrequest = async (req, info) => {
      seen.push({ req, info });
      const url = new URL(req.url);
      if (url.pathname === '/echo') {
        const body = new Uint8Array(await req.arrayBuffer());
        return new Response(body, {
          status: 201,
          statusText: 'Made It',
          headers: {
            'content-type': req.headers.get('content-type') ?? 'none',
            'x-method': req.method,
            'x-query': url.search,
            'x-from': req.headers.get('httpws-from') ?? 'none',
            'x-info-from': info.from,
            'x-custom': req.headers.get('x-custom') ?? 'none',
            'x-length': String(body.length),
          },
        });
      }
      if (url.pathname === '/empty') return new Response(null, { status: 204 });
      if (url.pathname === '/slow') {
        await new Promise((resolve) => setTimeout(resolve, Number(url.searchParams.get('ms'))));
        return new Response(url.searchParams.get('n'));
      }
      return new Response('not here', { status: 404 });
    };
  });

  after(async () => {
    await alice?.close();
    await bob?.close();
    await proxy?.stop();
  });

  test('the tunnel speaks the protocol this run is for (2, or 1 with HTTPWS_JS_PROTOCOL=1)', () => {
    const expected = process.env.HTTPWS_JS_PROTOCOL === '1' ? 1 : 2;
    assert.equal(alice.protocol, expected);
    assert.equal(bob.protocol, expected);
  });

  test('registration reports the canonical address', () => {
    assert.equal(alice.address, 'alice');
    assert.equal(bob.address, 'bob', 'addresses are stored lowercase');
    assert.equal(alice.connected, true);
  });

  test('GET with a query: status, reason, headers and Httpws-From', async () => {
    const res = await alice.fetch('http://bob/echo?x=1&y=%20', { headers: { 'X-Custom': 'yes' } });
    assert.equal(res.status, 201);
    assert.equal(res.statusText, 'Made It');
    assert.equal(res.headers.get('x-method'), 'GET');
    assert.equal(res.headers.get('x-query'), '?x=1&y=%20');
    assert.equal(res.headers.get('x-from'), 'alice', 'Httpws-From is a request header');
    assert.equal(res.headers.get('x-info-from'), 'alice');
    assert.equal(res.headers.get('x-custom'), 'yes');
    assert.equal(res.headers.get('cseq'), null, 'CSeq is the client\'s business, not the caller\'s');
    assert.equal(res.headers.get('httpws-error'), null);
    assert.equal(res.url, 'http://bob/echo?x=1&y=%20');
    assert.equal(await res.text(), '');
    const { req } = seen.at(-1);
    assert.equal(req.url, 'http://bob/echo?x=1&y=%20', 'the Request URL names this endpoint');
    assert.equal(req.headers.get('cseq'), null);
  });

  test('POST with a binary body of every byte value', async () => {
    const body = new Uint8Array(70_000).map((_, i) => (i * 7) & 0xff);
    const res = await alice.fetch('http://bob/echo', {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body,
    });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('x-method'), 'POST');
    assert.equal(res.headers.get('x-length'), '70000');
    assert.equal(res.headers.get('content-type'), 'application/octet-stream');
    assert.deepEqual(new Uint8Array(await res.arrayBuffer()), body);
  });

  test('string, ArrayBuffer, Blob and URLSearchParams bodies', async () => {
    const text = await alice.fetch('http://bob/echo', { method: 'PUT', body: 'héllo ✓' });
    assert.equal(await text.text(), 'héllo ✓');
    assert.match(text.headers.get('content-type'), /^text\/plain/);

    const buffer = await alice.fetch('http://bob/echo', { method: 'POST', body: new Uint8Array([1, 2, 3]).buffer });
    assert.deepEqual([...new Uint8Array(await buffer.arrayBuffer())], [1, 2, 3]);

    const blob = await alice.fetch('http://bob/echo', { method: 'POST', body: new Blob(['a', 'b'], { type: 'text/x-ab' }) });
    assert.equal(blob.headers.get('content-type'), 'text/x-ab');
    assert.equal(await blob.text(), 'ab');

    const form = await alice.fetch('http://bob/echo', { method: 'POST', body: new URLSearchParams({ a: '1', b: 'x y' }) });
    assert.match(form.headers.get('content-type'), /^application\/x-www-form-urlencoded/);
    assert.equal(await form.text(), 'a=1&b=x+y');
  });

  test('fetch(new Request(...)) and an empty POST', async () => {
    const res = await alice.fetch(new Request('http://bob/echo', { method: 'PATCH', body: 'patch', headers: { 'X-Custom': 'req' } }));
    assert.equal(res.headers.get('x-method'), 'PATCH');
    assert.equal(res.headers.get('x-custom'), 'req');
    assert.equal(await res.text(), 'patch');

    const empty = await alice.fetch('http://bob/echo', { method: 'POST' });
    assert.equal(empty.headers.get('x-length'), '0');
  });

  test('204 and HEAD have no body', async () => {
    const none = await alice.fetch('http://bob/empty');
    assert.equal(none.status, 204);
    assert.equal(none.body, null);
    const head = await alice.fetch('http://bob/echo', { method: 'HEAD' });
    assert.equal(head.status, 201);
    assert.equal(head.headers.get('x-method'), 'HEAD');
    assert.equal(head.body, null);
  });

  test('many requests in flight are matched by CSeq, whatever order they finish in', async () => {
    const delays = [120, 10, 80, 0, 40, 100, 20, 60];
    const answers = await Promise.all(delays.map((ms, n) => alice.fetch(`http://bob/slow?ms=${ms}&n=${n}`).then((r) => r.text())));
    assert.deepEqual(answers, delays.map((_, n) => String(n)));
    assert.equal(alice.pendingCount, 0);
  });

  test('both directions at once', async () => {
    alice.onrequest = (req) => new Response(`alice saw ${req.headers.get('httpws-from')}`);
    const [a, b] = await Promise.all([
      bob.fetch('http://alice/'),
      alice.fetch('http://bob/echo', { method: 'POST', body: 'x' }),
    ]);
    assert.equal(await a.text(), 'alice saw bob');
    assert.equal(await b.text(), 'x');
  });

  test('headers the client owns are refused', async () => {
    for (const name of ['Host', 'CSeq', 'Httpws-From', 'Connection', 'Transfer-Encoding', 'Content-Length', 'Upgrade', 'Keep-Alive']) {
      await assert.rejects(alice.fetch('http://bob/echo', { headers: { [name]: '1' } }), TypeError, name);
    }
    await assert.rejects(alice.fetch(new Request('http://bob/echo', { headers: { CSeq: '9' } })), TypeError);
    await assert.rejects(alice.fetch('http://not_valid/'), TypeError, 'invalid address');
    await assert.rejects(alice.fetch('ftp://bob/'), TypeError, 'not http');
  });

  test('an aborted fetch rejects with the signal reason', async () => {
    const controller = new AbortController();
    const pending = alice.fetch('http://bob/slow?ms=300&n=1', { signal: controller.signal });
    controller.abort(new Error('changed my mind'));
    await assert.rejects(pending, /changed my mind/);
    assert.equal(alice.pendingCount, 0);
    assert.ok(!(HttpWsError.prototype instanceof TypeError));
  });
});
