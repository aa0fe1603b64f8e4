// `public: true`: the registration URL carries `public=1` (the proxy's opt-in for calls from
// the internet), next to `access_token` where there is a token, and nothing without it.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { HttpWs } from '../httpws.js';
import { WebSocket, startProxy } from './helpers.js';

/** A stand-in WebSocket that records the URL it is opened with and registers at once. */
class RecordingWebSocket extends EventTarget {
  static urls = [];

  constructor(url) {
    super();
    RecordingWebSocket.urls.push(String(url));
    this.readyState = 0;
    this.bufferedAmount = 0;
    const name = new URL(url).pathname.slice(1) || 'ep-assigned';
    setTimeout(() => {
      this.readyState = 1;
      this.dispatchEvent(new Event('open'));
      this.dispatchEvent(Object.assign(new Event('message'), { data: `:host ${name}` }));
    }, 0);
  }

  send() {}

  close(code = 1000) {
    if (this.readyState === 3) return;
    this.readyState = 3;
    setTimeout(() => this.dispatchEvent(Object.assign(new Event('close'), { code, reason: '' })), 0);
  }
}

/** The URL the client registers with, for these options. */
async function registrationUrl(proxyUrl, options) {
  RecordingWebSocket.urls = [];
  const ep = await HttpWs.connect(proxyUrl, { ...options, WebSocket: RecordingWebSocket, reconnect: false });
  await ep.close();
  assert.equal(RecordingWebSocket.urls.length, 1);
  return new URL(RecordingWebSocket.urls[0]);
}

describe('public', { timeout: 20_000 }, () => {
  test('public: true adds public=1, after access_token when there is a token', async () => {
    const plain = await registrationUrl('ws://relay.example:8080', { name: 'svc', public: true });
    assert.equal(plain.href, 'ws://relay.example:8080/svc?public=1');

    const withToken = await registrationUrl('ws://relay.example:8080', { name: 'svc', token: 'a&b', public: true });
    assert.equal(withToken.search, '?access_token=a%26b&public=1');
    assert.equal(withToken.searchParams.get('access_token'), 'a&b');
    assert.equal(withToken.searchParams.get('public'), '1');

    const assigned = await registrationUrl('ws://relay.example:8080', { public: true });
    assert.equal(assigned.href, 'ws://relay.example:8080/?public=1');
  });

  test('without public (or public: false) the URL has no public parameter', async () => {
    assert.equal((await registrationUrl('ws://relay.example', { name: 'svc' })).href, 'ws://relay.example/svc');
    assert.equal((await registrationUrl('ws://relay.example', { name: 'svc', public: false })).href, 'ws://relay.example/svc');
    const withToken = await registrationUrl('ws://relay.example', { name: 'svc', token: 't' });
    assert.equal(withToken.search, '?access_token=t');
  });

  describe('against the proxy', () => {
    let proxy;
    before(async () => { proxy = await startProxy(); });
    after(async () => { await proxy?.stop(); });

    test('a public endpoint registers and serves as usual', async () => {
      const svc = await HttpWs.connect(proxy.url, { name: 'svc', public: true, WebSocket });
      svc.onrequest = (req) => new Response(`hi ${req.headers.get('httpws-from')}`);
      const caller = await HttpWs.connect(proxy.url, { name: 'caller', WebSocket });
      assert.equal(await (await caller.fetch('http://svc/')).text(), 'hi caller');
      await Promise.all([svc.close(), caller.close()]);
    });
  });
});
