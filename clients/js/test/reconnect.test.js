// The tunnel drops: waiting requests fail with target-gone, new ones with tunnel-down at once,
// and the endpoints re-register under the same names (an assigned one included) when a proxy
// is back on the same port. A graceful shutdown first says `:error shutdown`.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { HttpWs } from '../httpws.js';
import { WebSocket, nextEvent, startProxy, tokensFile, withTimeout } from './helpers.js';

let proxy;
const endpoints = [];

after(async () => {
  await Promise.all(endpoints.map((ep) => ep.close()));
  await proxy?.stop();
});

test('endpoints survive a proxy restart on the same port', { timeout: 25_000 }, async () => {
  proxy = await startProxy(['--shutdown-grace', '100ms']);
  const port = proxy.port;
  const options = { WebSocket, reconnectMin: 50, reconnectMax: 400 };
  const alice = await HttpWs.connect(proxy.url, { ...options, name: 'alice' });
  const bob = await HttpWs.connect(proxy.url, { ...options, name: 'bob' });
  const anon = await HttpWs.connect(proxy.url, options);
  endpoints.push(alice, bob, anon);
  const assigned = anon.address;
  assert.match(assigned, /^ep-[0-9a-f]{16}$/, 'path / gets an assigned address');
  anon.onrequest = () => new Response(`I am ${anon.address}`);

  let hung;
  const hanging = new Promise((resolve) => { hung = resolve; });
  bob.onrequest = async (req) => {
    if (new URL(req.url).pathname === '/hang') {
      hung();
      await new Promise(() => {}); // never answers
    }
    return new Response(`bob answers ${req.headers.get('httpws-from')}`);
  };
  assert.equal(await (await alice.fetch(`http://${assigned}/`)).text(), `I am ${assigned}`);

  // 1. The proxy dies with a request in flight.
  // Handled from the start: the rejection may come before the proxy's exit is seen.
  const waiting = assert.rejects(alice.fetch('http://bob/hang'), { name: 'target-gone' });
  await withTimeout(hanging, 5_000, 'bob to receive /hang');
  const reconnecting = nextEvent(alice, 'reconnect');
  await proxy.stop('SIGKILL');
  await waiting;
  const { detail } = await reconnecting;
  assert.equal(detail.attempt, 1);
  assert.ok(detail.delay >= 25 && detail.delay <= 50, `first delay ${detail.delay} ms in [25, 50]`);
  assert.equal(alice.connected, false);
  const started = Date.now();
  await assert.rejects(alice.fetch('http://bob/'), { name: 'tunnel-down' });
  assert.ok(Date.now() - started < 1_000, 'tunnel-down is immediate');

  // 2. A proxy comes back on the same port: everyone re-registers under the same name.
  const reopened = [alice, bob, anon].map((ep) => nextEvent(ep, 'open'));
  proxy = await startProxy(['--shutdown-grace', '100ms'], { listen: `127.0.0.1:${port}` });
  const opens = await Promise.all(reopened);
  assert.deepEqual(opens.map((e) => e.detail.address), ['alice', 'bob', assigned]);
  assert.ok(opens.every((e) => e.detail.reconnected));
  assert.equal(anon.address, assigned, 'the assigned address is kept across reconnects');
  assert.equal(await (await alice.fetch('http://bob/again')).text(), 'bob answers alice');
  assert.equal(await (await bob.fetch(`http://${assigned}/`)).text(), `I am ${assigned}`);

  // 3. A graceful shutdown says why, then the endpoints reconnect to the next proxy.
  const shutdownError = nextEvent(alice, 'error');
  const reconnectingAgain = nextEvent(alice, 'reconnect');
  await proxy.stop('SIGTERM');
  assert.equal((await shutdownError).detail.token, 'shutdown');
  assert.equal((await reconnectingAgain).detail.code, 1001);
  const reopenedAgain = nextEvent(alice, 'open');
  proxy = await startProxy([], { listen: `127.0.0.1:${port}` });
  await reopenedAgain;
  assert.equal(alice.address, 'alice');
  await bobBack(alice);
});

/** Bob re-registers on its own schedule: wait (bounded) until alice can reach him. */
async function bobBack(alice) {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const res = await alice.fetch('http://bob/');
    if (res.status === 200) {
      assert.equal(await res.text(), 'bob answers alice');
      return;
    }
    assert.equal(res.headers.get('httpws-error'), 'unknown-address');
    assert.ok(Date.now() < deadline, 'bob re-registered within 5 s');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test('a reconnect refused for good (401) stops the endpoint with an error event', { timeout: 15_000 }, async () => {
  let own = await startProxy();
  const port = own.port;
  try {
    const ep = await HttpWs.connect(own.url, { WebSocket, name: 'locked-out', reconnectMin: 20, reconnectMax: 200 });
    let reconnects = 0;
    ep.addEventListener('reconnect', () => { reconnects += 1; });
    const error = nextEvent(ep, 'error');
    const closed = nextEvent(ep, 'close');
    await own.stop('SIGKILL');
    // The proxy comes back requiring tokens, and this endpoint has none: 401 on every try.
    const tokens = tokensFile([{ label: 'other', token: 'other-token', names: ['*'] }]);
    own = await startProxy(['--tokens', tokens], { listen: `127.0.0.1:${port}` });
    const { detail } = await error;
    assert.equal(detail.token, 'registration-refused');
    assert.equal(detail.status, 401);
    assert.equal(detail.source, 'client');
    const end = (await closed).detail;
    assert.equal(end.error?.name, 'registration-refused');
    assert.equal(ep.connected, false);
    await assert.rejects(ep.fetch('http://x/'), { name: 'closed' });
    const seen = reconnects;
    // Nothing is scheduled any more: one more backoff period passes without an attempt.
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal(reconnects, seen, 'no reconnect after the refusal');
  } finally {
    await own.stop();
  }
});

test('reconnect: false ends the endpoint when the tunnel drops', { timeout: 15_000 }, async () => {
  const own = await startProxy();
  try {
    const ep = await HttpWs.connect(own.url, { WebSocket, name: 'once', reconnect: false });
    const closed = nextEvent(ep, 'close');
    await own.stop('SIGKILL');
    assert.equal((await closed).detail.code, 1006);
    await assert.rejects(ep.fetch('http://x/'), { name: 'closed' });
  } finally {
    await own.stop();
  }
});

test('an idle endpoint answers the proxy\'s pings and stays registered', { timeout: 15_000 }, async () => {
  const own = await startProxy(['--idle-timeout', '100ms', '--pong-timeout', '300ms']);
  try {
    const a = await HttpWs.connect(own.url, { WebSocket, name: 'idle-a' });
    const b = await HttpWs.connect(own.url, { WebSocket, name: 'idle-b' });
    b.onrequest = () => new Response('still here');
    // The control: one that does not answer pings (an option of `ws`) is dropped.
    const deaf = await HttpWs.connect(own.url, { WebSocket, name: 'deaf', reconnect: false, wsOptions: { autoPong: false } });
    const deafClosed = nextEvent(deaf, 'close', 5_000);
    let drops = 0;
    for (const ep of [a, b]) ep.addEventListener('reconnect', () => { drops += 1; });
    await deafClosed;
    // Several more ping rounds pass in silence.
    await new Promise((resolve) => setTimeout(resolve, 800));
    assert.equal(drops, 0);
    assert.equal(await (await a.fetch('http://idle-b/')).text(), 'still here');
    await Promise.all([a.close(), b.close()]);
  } finally {
    await own.stop();
  }
});
