// Requests a slow handler has not answered yet are held in memory: the client bounds them by
// bytes (maxHandlerBytes) and by count (maxConcurrentHandlers), and answers what would go
// over with 503 target-busy at once, instead of holding it.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULTS, HttpWs } from '../httpws.js';
import { WebSocket, startProxy, targetError, withTimeout } from './helpers.js';

const KIB = 1024;

describe('the handlers\' budget', { timeout: 30_000 }, () => {
  let proxy;
  let caller;

  before(async () => {
    proxy = await startProxy();
    caller = await HttpWs.connect(proxy.url, { name: 'caller', WebSocket });
  });

  after(async () => {
    await caller?.close();
    await proxy?.stop();
  });

  test('the defaults: 64 MiB of requests, 1024 handlers', () => {
    assert.equal(DEFAULTS.maxHandlerBytes, 64 * 1024 * 1024);
    assert.equal(DEFAULTS.maxConcurrentHandlers, 1024);
  });

  test('requests over the byte budget are answered target-busy while the handlers hold theirs', async () => {
    const slow = await HttpWs.connect(proxy.url, { name: 'slow', WebSocket, maxHandlerBytes: 1024 * KIB });
    try {
      const { handler, started, release } = gate();
      slow.onrequest = handler;
      const body = new Uint8Array(300 * KIB);
      // Three fit in 1 MiB (300 KiB each plus their heads); the fourth would not.
      const held = [1, 2, 3].map(() => caller.fetch('http://slow/upload', { method: 'POST', body }));
      await withTimeout(started(3), 5_000, 'three handlers to start');
      const busy = await caller.fetch('http://slow/upload', { method: 'POST', body });
      assert.equal(busy.status, 503);
      assert.equal(targetError(busy), 'target-busy');
      assert.match(await busy.text(), /budget/);
      // A small request still fits beside them.
      const small = caller.fetch('http://slow/small', { method: 'POST', body: 'x' });
      await withTimeout(started(4), 5_000, 'the small request\'s handler to start');

      release();
      for (const res of await Promise.all([...held, small])) assert.equal(res.status, 200);
      // Answered, the bytes are free again.
      const again = await caller.fetch('http://slow/upload', { method: 'POST', body });
      assert.equal(again.status, 200);
      assert.equal(await again.text(), String(body.length));
    } finally {
      await slow.close();
    }
  });

  test('requests beyond maxConcurrentHandlers are answered target-busy', async () => {
    const slow = await HttpWs.connect(proxy.url, { name: 'few', WebSocket, maxConcurrentHandlers: 2 });
    try {
      const { handler, started, release } = gate();
      slow.onrequest = handler;
      const held = [1, 2].map(() => caller.fetch('http://few/'));
      await withTimeout(started(2), 5_000, 'two handlers to start');
      const busy = await caller.fetch('http://few/');
      assert.equal(busy.status, 503);
      assert.equal(targetError(busy), 'target-busy');
      release();
      for (const res of await Promise.all(held)) assert.equal(res.status, 200);
      assert.equal((await caller.fetch('http://few/')).status, 200);
    } finally {
      await slow.close();
    }
  });
});

/**
 * A handler that holds every request until `release()`, answering with its body's length;
 * `started(n)` resolves once `n` handlers have run.
 */
function gate() {
  let open;
  const opened = new Promise((resolve) => { open = resolve; });
  let count = 0;
  const waiters = [];
  const handler = async (req) => {
    const length = (await req.arrayBuffer()).byteLength;
    count += 1;
    for (const w of waiters.filter((w) => count >= w.n)) w.resolve();
    await opened;
    return new Response(String(length));
  };
  const started = (n) => new Promise((resolve) => {
    if (count >= n) resolve();
    else waiters.push({ n, resolve });
  });
  return { handler, started, release: open };
}
