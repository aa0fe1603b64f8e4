// The JS client against endpoints that speak the protocol by hand (raw `ws` sockets): what
// it puts on the wire, and what it accepts from an independent implementation.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { HttpWs } from '../httpws.js';
import { WebSocket, parseHttp, rawEndpoint, startProxy, targetError } from './helpers.js';

describe('interoperation with hand-written endpoints', { timeout: 20_000 }, () => {
  let proxy;
  let js;
  let raw;

  before(async () => {
    proxy = await startProxy();
    js = await HttpWs.connect(`${proxy.url}/js-ep`, { WebSocket });
    raw = await rawEndpoint(proxy.url, 'raw');
  });

  after(async () => {
    raw?.close();
    await js?.close();
    await proxy?.stop();
  });

  test('the name can come from the URL path', () => {
    assert.equal(js.address, 'js-ep');
  });

  test('a raw caller reaches the JS handler, and gets its CSeq back', async () => {
    js.onrequest = async (req, info) => {
      const body = await req.text();
      return new Response(`${req.method} ${new URL(req.url).pathname} from ${info.from}: ${body}`, {
        headers: { 'X-Reply': 'r1', 'Content-Length': '999', Connection: 'close' },
      });
    };
    raw.send('POST /hello?q=1 HTTP/1.1\r\nHost: js-ep\r\nCSeq: 77\r\nHttpws-From: forged\r\nX-Thing: a\r\nContent-Length: 5\r\n\r\nworld');
    const message = await raw.next();
    assert.equal(message.binary, true, 'the JS client answers with binary messages');
    const res = parseHttp(message);
    assert.equal(res.start, 'HTTP/1.1 200 OK');
    assert.equal(res.header('cseq'), '77');
    assert.deepEqual(res.all('content-length'), [String(res.body.length)], 'one Content-Length, the true one');
    assert.equal(res.header('connection'), undefined, 'hop-by-hop headers are not relayed');
    assert.equal(res.header('x-reply'), 'r1');
    assert.equal(res.body.toString(), 'POST /hello from raw: world', 'Httpws-From is the proxy\'s, not the forged one');
  });

  test('a chunked request from a raw caller is read', async () => {
    js.onrequest = async (req) => new Response(`[${await req.text()}] ${req.headers.get('transfer-encoding')}`);
    raw.send('POST /c HTTP/1.1\r\nHost: js-ep\r\nCSeq: 5\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n');
    const chunked = parseHttp(await raw.next());
    assert.equal(chunked.header('cseq'), '5');
    assert.equal(chunked.body.toString(), '[abcde] null');
  });

  test('a request the JS endpoint cannot represent is answered 400 bad-request', async () => {
    raw.send('GET /x HTTP/1.1\r\nHost: js-ep\r\nCSeq: 6\r\nContent-Length: 3\r\n\r\nabc');
    const res = parseHttp(await raw.next());
    assert.match(res.start, /^HTTP\/1\.1 400 /);
    assert.equal(res.header('cseq'), '6');
    assert.equal(targetError(res), 'bad-request');
  });

  test('the JS client\'s requests on the wire', async () => {
    const pending = js.fetch('http://raw/path/x?y=z#frag', {
      method: 'POST',
      headers: { 'X-Multi': 'a', 'Content-Type': 'text/plain' },
      body: 'payload',
    });
    const message = await raw.next();
    assert.equal(message.binary, true);
    const req = parseHttp(message);
    assert.equal(req.start, 'POST /path/x?y=z HTTP/1.1', 'origin-form, no fragment');
    assert.equal(req.header('host'), 'raw');
    assert.match(req.header('cseq'), /^\d+$/);
    assert.equal(req.header('content-length'), '7');
    assert.equal(req.header('x-multi'), 'a');
    assert.equal(req.header('content-type'), 'text/plain');
    assert.equal(req.header('httpws-from'), 'js-ep');
    assert.equal(req.body.toString(), 'payload');
    raw.send(`HTTP/1.1 202 Accepted\r\nCSeq: ${req.header('cseq')}\r\nX-Answer: 1\r\nContent-Length: 4\r\n\r\ndone`);
    const res = await pending;
    assert.equal(res.status, 202);
    assert.equal(res.statusText, 'Accepted');
    assert.equal(res.headers.get('x-answer'), '1');
    assert.equal(await res.text(), 'done');
  });

  test('responses out of order, chunked, and delimited by the end of the message', async () => {
    const first = js.fetch('http://raw/1');
    const second = js.fetch('http://raw/2');
    const r1 = parseHttp(await raw.next());
    const r2 = parseHttp(await raw.next());
    assert.notEqual(r1.header('cseq'), r2.header('cseq'));
    raw.send(`HTTP/1.1 200 OK\r\nCSeq: ${r2.header('cseq')}\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nsec-\r\n3\r\nond\r\n0\r\n\r\n`);
    raw.send(Buffer.from(`HTTP/1.1 200 OK\r\nCSeq: ${r1.header('cseq')}\r\n\r\nfirst, to the end`));
    const [a, b] = await Promise.all([first, second]);
    assert.equal(await a.text(), 'first, to the end');
    assert.equal(await b.text(), 'sec-ond');
    assert.equal(b.headers.get('transfer-encoding'), null);
  });

  test('a response the proxy refuses leaves the fetch waiting for a good one', async () => {
    const pending = js.fetch('http://raw/bad');
    const req = parseHttp(await raw.next());
    const errors = [];
    const onError = (event) => errors.push(event.detail);
    js.addEventListener('error', onError);
    raw.send(`HTTP/1.1 200 OK\r\nCSeq: ${req.header('cseq')}\r\nContent-Length: 2\r\n\r\ntoo long`);
    // The proxy refuses more body than Content-Length itself: it answers `:error bad-message`
    // to the raw endpoint, and the caller gets no response until its deadline.
    const refusal = (await raw.next()).toString();
    assert.match(refusal, /^:error bad-message /);
    js.removeEventListener('error', onError);
    // Answer properly now, and the JS caller gets it.
    raw.send(`HTTP/1.1 200 OK\r\nCSeq: ${req.header('cseq')}\r\nContent-Length: 2\r\n\r\nok`);
    assert.equal(await (await pending).text(), 'ok');
    assert.deepEqual(errors, []);
  });

  test('a response that cannot be a fetch Response rejects with bad-response', async () => {
    const pending = js.fetch('http://raw/interim');
    const req = parseHttp(await raw.next());
    raw.send(`HTTP/1.1 100 Continue\r\nCSeq: ${req.header('cseq')}\r\n\r\n`);
    await assert.rejects(pending, { name: 'bad-response' });
    assert.equal(js.pendingCount, 0);
  });
});
