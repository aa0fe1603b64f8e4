// Credentials (`--tokens`): the token travels as ?access_token=, a refusal names its status,
// and a takeover by the same token gives the old endpoint `:error replaced` and ends it.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { HttpWs } from '../httpws.js';
import { WebSocket, nextEvent, startProxy, tokensFile } from './helpers.js';

// Characters that must be percent-encoded in a query (tokens are visible ASCII).
const TEAM = 'team-s3cret/?&=+%#"~';
const OTHER = 'other-token';

describe('tokens', { timeout: 20_000 }, () => {
  let proxy;

  before(async () => {
    const path = tokensFile([
      { label: 'team', token: TEAM, names: ['team-*'] },
      { label: 'other', token: OTHER, names: ['other-*'] },
    ]);
    proxy = await startProxy(['--tokens', path]);
  });

  after(async () => {
    await proxy?.stop();
  });

  test('refusals carry their status: no token 401, unknown token 401, name not allowed 403', async () => {
    await assert.rejects(HttpWs.connect(proxy.url, { name: 'team-1', WebSocket }), { name: 'registration-refused', status: 401 });
    await assert.rejects(HttpWs.connect(proxy.url, { name: 'team-1', token: 'nope', WebSocket }), { name: 'registration-refused', status: 401 });
    await assert.rejects(HttpWs.connect(proxy.url, { name: 'team-1', token: OTHER, WebSocket }), { name: 'registration-refused', status: 403 });
    await assert.rejects(HttpWs.connect(proxy.url, { name: 'team-1', token: 'has space', WebSocket }), TypeError);
  });

  test('a percent-encoded token registers, and an assigned name needs one too', async () => {
    const ep = await HttpWs.connect(proxy.url, { name: 'team-a', token: TEAM, WebSocket });
    assert.equal(ep.address, 'team-a');
    await assert.rejects(HttpWs.connect(proxy.url, { WebSocket }), { name: 'registration-refused', status: 401 });
    const assigned = await HttpWs.connect(proxy.url, { token: OTHER, WebSocket });
    assert.match(assigned.address, /^ep-[0-9a-f]{16}$/);
    await Promise.all([ep.close(), assigned.close()]);
  });

  test('takeover with the same token: the old endpoint gets :error replaced and stops', async () => {
    const first = await HttpWs.connect(proxy.url, { name: 'team-b', token: TEAM, WebSocket, reconnect: true });
    first.onrequest = () => new Response('first');
    const caller = await HttpWs.connect(proxy.url, { name: 'other-caller', token: OTHER, WebSocket });
    assert.equal(await (await caller.fetch('http://team-b/')).text(), 'first');

    const errorEvent = nextEvent(first, 'error');
    const closeEvent = nextEvent(first, 'close');
    let reconnects = 0;
    first.addEventListener('reconnect', () => { reconnects += 1; });
    const second = await HttpWs.connect(proxy.url, { name: 'team-b', token: TEAM, WebSocket });
    second.onrequest = () => new Response('second');

    const { detail } = await errorEvent;
    assert.equal(detail.token, 'replaced');
    assert.equal(detail.source, 'proxy');
    assert.equal(typeof detail.reason, 'string');
    const closed = (await closeEvent).detail;
    assert.equal(closed.code, 1000);
    assert.equal(closed.error?.name, 'replaced');
    assert.equal(first.connected, false);
    assert.equal(reconnects, 0, 'a replaced endpoint does not fight for its name');
    await assert.rejects(first.fetch('http://other-caller/'), { name: 'closed' });
    assert.equal(await (await caller.fetch('http://team-b/')).text(), 'second');
    await Promise.all([caller.close(), second.close()]);
  });
});
