// What the client writes is exactly what it was given, or nothing: a header name that is not
// an HTTP token, a value or reason with CR, LF or a character above U+00FF (which would lose
// its high bits: U+010A would become LF) cannot add a line to the head. And methods fold as
// fetch folds them: an incoming `head` is the HEAD its handler sees, and is answered as one.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { HttpWs } from '../httpws.js';
import { WebSocket, nextEvent, parseHttp, rawEndpoint, startProxy, targetError } from './helpers.js';

describe('encoding', { timeout: 20_000 }, () => {
  let proxy;
  let js;
  let raw;
  let cseq = 0;

  before(async () => {
    proxy = await startProxy();
    js = await HttpWs.connect(proxy.url, { name: 'js-ep', WebSocket });
    raw = await rawEndpoint(proxy.url, 'raw');
  });

  after(async () => {
    raw?.close();
    await js?.close();
    await proxy?.stop();
  });

  /** Send `method /path` from the raw endpoint to the JS one; resolves with the answer. */
  async function call(method, path = '/') {
    cseq += 1;
    raw.send(`${method} ${path} HTTP/1.1\r\nHost: js-ep\r\nCSeq: ${cseq}\r\n\r\n`);
    const res = parseHttp(await raw.next());
    assert.equal(res.header('cseq'), String(cseq));
    return res;
  }

  // Maps, not arrays, for headers: a plain object with get() and [name, value] iteration.
  for (const [what, response] of [
    ['a value with CRLF', { status: 200, headers: new Map([['X-Ok', 'a\r\nInjected: yes']]), body: null }],
    ['a value with a bare LF', { status: 200, headers: new Map([['X-Ok', 'a\nInjected: yes']]), body: null }],
    ['a value with U+010A', { status: 200, headers: new Map([['X-Ok', 'a\u010aInjected: yes']]), body: null }],
    ['a name with CRLF', { status: 200, headers: new Map([['Injected: yes\r\nX-Ok', 'a']]), body: null }],
    ['a name that is not a token', { status: 200, headers: new Map([['X Ok', 'a']]), body: null }],
    ['a reason with CRLF', { status: 200, statusText: 'OK\r\nInjected: yes', headers: new Map(), body: null }],
    ['a status that is not an integer', { status: 200.5, headers: new Map(), body: null }],
  ]) {
    test(`a handler's plain-object response with ${what} is refused: 500, nothing injected`, async () => {
      js.onrequest = () => response;
      const failed = nextEvent(js, 'error');
      const res = await call('GET');
      assert.match(res.start, /^HTTP\/1\.1 500 /);
      assert.equal(targetError(res), 'service-error');
      assert.equal(res.header('injected'), undefined);
      assert.equal(res.header('x-ok'), undefined);
      const { detail } = await failed;
      assert.equal(detail.token, 'handler-error');
      assert.ok(detail.error instanceof TypeError, String(detail.error));
    });
  }

  test('a well-formed plain-object response is written as given', async () => {
    js.onrequest = () => ({ status: 202, statusText: 'Taken', headers: new Map([['X-Ok', 'caf\u00e9\tok']]), body: null });
    const res = await call('GET');
    assert.equal(res.start, 'HTTP/1.1 202 Taken');
    assert.equal(res.header('x-ok'), 'caf\u00e9\tok', 'Latin-1 and HTAB are written as they are');
  });

  test('fetch refuses the Httpws-From twin Httpws_From', async () => {
    await assert.rejects(js.fetch('http://raw/', { headers: { Httpws_From: 'admin' } }), TypeError);
    await assert.rejects(js.fetch('http://raw/', { headers: { 'httpws-from': 'admin' } }), TypeError);
  });

  test('an incoming `head` is HEAD: the handler sees HEAD, the answer has no body', async () => {
    let seen;
    js.onrequest = (req) => {
      seen = req.method;
      return new Response('hello');
    };
    for (const method of ['head', 'HEAD', 'Head']) {
      const res = await call(method, '/h');
      assert.equal(seen, 'HEAD', method);
      assert.match(res.start, /^HTTP\/1\.1 200 /);
      assert.equal(res.header('content-length'), '5', `${method}: the length of the body not sent`);
      assert.equal(res.body.length, 0, `${method}: no body`);
    }
    // A GET is unaffected; a method fetch does not fold keeps its case.
    assert.equal((await call('get', '/g')).body.toString(), 'hello');
    assert.equal(seen, 'GET');
    await call('purge', '/p');
    assert.equal(seen, 'purge');
  });
});
