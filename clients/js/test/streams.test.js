// Protocol 2 (streams, docs/protocol.md §12) in the JS client, against the real proxy: event
// streams that arrive event by event, bodies of many MiB both ways, a slow reader holding its
// sender at the window, cancels and resets both ways, tunnel loss, and protocol-1 peers and
// proxies; and, against a stand-in proxy, what the client does with a peer that breaks the
// rules (credit overrun, malformed stream messages, data after the end).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import WebSocket, { WebSocketServer } from 'ws';
import { HttpWs, PROTOCOL_2, STREAM_WINDOW, WHOLE_BODY_BYTES } from '../httpws.js';
import { WAIT_MS, parseHttp, rawEndpoint, startProxy, withTimeout } from './helpers.js';

const KIB = 1024;
const MIB = 1024 * KIB;
/** What the client sends in one data message at most. */
const PIECE = 64 * KIB;
/**
 * How far a producer may run ahead of its reader: the window, the chunk the pump holds while
 * it waits for credit, and the one chunk a ReadableStream's default strategy pulls ahead.
 */
const RUN_AHEAD = STREAM_WINDOW + 2 * PIECE;
/**
 * How long the slow-reader test watches a stalled producer to see that it stays stalled: an
 * absence cannot be awaited, and a sender that ignored the window would have sent megabytes
 * on loopback by then.
 */
const STALL_WATCH_MS = 300;

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

/** A stream message's tag and payload (`~verb <dir><cseq>[ arg]\n payload`), or null. */
function parseStream(buf) {
  const lf = buf.indexOf(10);
  const m = lf > 0 ? /^~(\w+) ([<>])(\d+)(?: (\S+))?$/.exec(buf.subarray(0, lf).toString('latin1')) : null;
  return m && { verb: m[1], dir: m[2], cseq: m[3], arg: m[4], payload: buf.subarray(lf + 1) };
}

/** A body source whose chunks the test pushes: `push(text)`, `close()`, `cancelled`. */
function pushSource() {
  let controller;
  let cancelledWith;
  const cancelled = new Promise((resolve) => { cancelledWith = resolve; });
  const stream = new ReadableStream({
    start(c) { controller = c; },
    cancel(reason) { cancelledWith(reason); },
  });
  return {
    stream,
    cancelled,
    push: (text) => controller.enqueue(new TextEncoder().encode(text)),
    close: () => controller.close(),
  };
}

/**
 * A body of `total` pseudo-random bytes made as it is pulled, in chunks of `chunk` bytes
 * (the last shorter); `produced()` is how much has been made so far, `reached(n)` resolves
 * once that is at least `n`, `hash()` is the whole body's once made, `cancelled` on cancel.
 */
function countingSource(total, chunk = PIECE) {
  const hasher = createHash('sha256');
  let produced = 0;
  let digest = null;
  const waiters = [];
  let cancelledWith;
  const cancelled = new Promise((resolve) => { cancelledWith = resolve; });
  const stream = new ReadableStream({
    pull(controller) {
      const n = Math.min(chunk, total - produced);
      const bytes = randomBytes(n);
      hasher.update(bytes);
      produced += n;
      controller.enqueue(new Uint8Array(bytes.buffer, bytes.byteOffset, n));
      for (const w of waiters.filter((w) => produced >= w.n)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
      if (produced === total) {
        digest = hasher.digest('hex');
        controller.close();
      }
    },
    cancel(reason) { cancelledWith(reason); },
  });
  return {
    stream,
    cancelled,
    produced: () => produced,
    reached: (n) => withTimeout(new Promise((resolve) => {
      if (produced >= n) resolve();
      else waiters.push({ n, resolve });
    }), WAIT_MS, `the source to produce ${n} bytes`),
    hash: () => digest,
  };
}

/**
 * Read `body` to its end slowly (a timer turn between reads), checking at every read that the
 * producer is never more than `bound` bytes ahead; resolves with the hash of what was read.
 */
async function readSlowly(body, produced, bound) {
  const hasher = createHash('sha256');
  let read = 0;
  let worst = 0;
  for await (const chunk of body) {
    hasher.update(chunk);
    read += chunk.length;
    worst = Math.max(worst, produced() - read);
    assert.ok(produced() - read <= bound, `the producer ran ${produced() - read} bytes ahead of the reader (bound ${bound})`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  return { hash: hasher.digest('hex'), read, worst };
}

/** The next message of a raw endpoint that is not a credit grant (those are counted in `credit`). */
async function nextNonCredit(raw, credit = { n: 0 }) {
  for (;;) {
    const msg = await raw.next();
    const tag = msg[0] === 0x7e ? parseStream(msg) : null;
    if (tag?.verb !== 'credit') return msg;
    credit.n += Number(tag.arg);
  }
}

describe('streams between JS endpoints', { timeout: 60_000 }, () => {
  let proxy;
  let caller;
  let server;

  before(async () => {
    proxy = await startProxy();
    caller = await HttpWs.connect(proxy.url, { name: 'caller', WebSocket });
    server = await HttpWs.connect(proxy.url, { name: 'server', WebSocket });
  });

  after(async () => {
    await Promise.all([caller?.close(), server?.close()]);
    await proxy?.stop();
  });

  /** The streams on both ends are over: checked after a round trip, which follows any reset. */
  async function assertStreamsFreed() {
    const previous = server.onrequest;
    server.onrequest = () => new Response('still here');
    try {
      assert.equal(await (await caller.fetch('http://server/ping')).text(), 'still here');
    } finally {
      server.onrequest = previous;
    }
    assert.equal(caller.openStreams, 0, 'the caller holds no stream');
    assert.equal(server.openStreams, 0, 'the server holds no stream');
  }

  test('both speak protocol 2', () => {
    assert.equal(caller.protocol, 2);
    assert.equal(server.protocol, 2);
  });

  test('Server-Sent Events from a handler arrive event by event, each before the next is made', async () => {
    const source = pushSource();
    let handlerInfo;
    server.onrequest = (req, info) => {
      handlerInfo = info;
      return new Response(source.stream, { headers: { 'Content-Type': 'text/event-stream' } });
    };
    // The head comes before any event exists: fetch resolves at it.
    const res = await withTimeout(caller.fetch('http://server/events'), WAIT_MS, 'the stream head');
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    assert.equal(res.headers.get('httpws-stream'), null, 'the framing header is not shown');
    assert.equal(handlerInfo.streamed, false, 'the request itself was whole');
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    for (let i = 1; i <= 3; i++) {
      source.push(`id: ${i}\ndata: event ${i}\n\n`);
      const { value, done } = await withTimeout(reader.read(), WAIT_MS, `event ${i}`);
      assert.equal(done, false);
      assert.equal(decoder.decode(value), `id: ${i}\ndata: event ${i}\n\n`, `event ${i} alone, while the handler's stream is open`);
    }
    source.close();
    assert.equal((await withTimeout(reader.read(), WAIT_MS, 'the end')).done, true);
    assert.equal(caller.openStreams, 0);
    await assertStreamsFreed();
  });

  test('a multi-MiB download arrives intact, of unknown and of known length', async () => {
    const known = randomBytes(6 * MIB);
    let unknown;
    server.onrequest = (req) => {
      if (new URL(req.url).pathname === '/known') return new Response(known);
      unknown = countingSource(12 * MIB, 50_000);
      return new Response(unknown.stream);
    };
    const a = await caller.fetch('http://server/unknown');
    assert.equal(a.headers.get('content-length'), null);
    assert.equal(sha256(new Uint8Array(await a.arrayBuffer())), unknown.hash());

    const b = await caller.fetch('http://server/known');
    assert.equal(b.headers.get('content-length'), String(known.length), 'a whole in-memory body keeps its length');
    assert.equal(sha256(new Uint8Array(await b.arrayBuffer())), sha256(known));
    await assertStreamsFreed();
  });

  test('a multi-MiB upload arrives intact, past the whole-message limit', async () => {
    server.onrequest = async (req, info) => {
      const hasher = createHash('sha256');
      let n = 0;
      for await (const chunk of req.body) {
        hasher.update(chunk);
        n += chunk.length;
      }
      return new Response(JSON.stringify({ streamed: info.streamed, n, hash: hasher.digest('hex') }));
    };
    const big = countingSource(20 * MIB, 100_000);
    const res = await caller.fetch('http://server/up', { method: 'POST', body: big.stream });
    assert.deepEqual(await res.json(), { streamed: true, n: 20 * MIB, hash: big.hash() });

    const bytes = randomBytes(3 * MIB);
    const res2 = await caller.fetch('http://server/up', { method: 'PUT', body: bytes });
    assert.deepEqual(await res2.json(), { streamed: true, n: bytes.length, hash: sha256(bytes) });

    // A small body still goes whole.
    const res3 = await caller.fetch('http://server/up', { method: 'POST', body: 'small' });
    assert.deepEqual(await res3.json(), { streamed: false, n: 5, hash: sha256(Buffer.from('small')) });
    await assertStreamsFreed();
  });

  test('a slow reader of a download holds the handler\'s body at the window', async () => {
    const source = countingSource(8 * MIB);
    server.onrequest = () => new Response(source.stream);
    const res = await caller.fetch('http://server/slow');
    // Not reading at all: the sender fills the window and stops there.
    await source.reached(STREAM_WINDOW);
    await new Promise((resolve) => setTimeout(resolve, STALL_WATCH_MS));
    assert.ok(source.produced() <= RUN_AHEAD, `${source.produced()} bytes made while nothing was read`);
    const { hash, read, worst } = await readSlowly(res.body, source.produced, RUN_AHEAD);
    assert.equal(read, 8 * MIB);
    assert.equal(hash, source.hash());
    assert.ok(worst >= STREAM_WINDOW / 2, `the window was used (at most ${worst} bytes ahead)`);
    await assertStreamsFreed();
  });

  test('a slow handler reading an upload holds the caller\'s body at the window', async () => {
    const source = countingSource(4 * MIB);
    let startReading;
    const reading = new Promise((resolve) => { startReading = resolve; });
    let result;
    server.onrequest = async (req) => {
      await reading;
      result = await readSlowly(req.body, source.produced, RUN_AHEAD);
      return new Response(result.hash);
    };
    const answer = caller.fetch('http://server/slow-up', { method: 'POST', body: source.stream });
    await source.reached(STREAM_WINDOW);
    await new Promise((resolve) => setTimeout(resolve, STALL_WATCH_MS));
    assert.ok(source.produced() <= RUN_AHEAD, `${source.produced()} bytes made while nothing was read`);
    startReading();
    const res = await answer;
    assert.equal(await res.text(), source.hash());
    assert.equal(result.read, 4 * MIB);
    await assertStreamsFreed();
  });

  test('the caller cancelling a streamed body resets it: the handler\'s source is cancelled', async () => {
    const source = countingSource(1024 * MIB);
    server.onrequest = () => new Response(source.stream);
    const res = await caller.fetch('http://server/endless');
    const reader = res.body.getReader();
    assert.ok((await reader.read()).value.length > 0);
    await reader.cancel();
    await withTimeout(source.cancelled, WAIT_MS, 'the handler\'s body to be cancelled');
    assert.ok(source.produced() < 16 * MIB);
    await assertStreamsFreed();
  });

  test('aborting the signal mid-body errors the body with its reason and resets the stream', async () => {
    const source = countingSource(1024 * MIB);
    server.onrequest = () => new Response(source.stream);
    const controller = new AbortController();
    const res = await caller.fetch('http://server/endless', { signal: controller.signal });
    const reader = res.body.getReader();
    await reader.read();
    const reason = new Error('enough');
    controller.abort(reason);
    await assert.rejects(reader.read(), (err) => err === reason);
    await withTimeout(source.cancelled, WAIT_MS, 'the handler\'s body to be cancelled');
    await assertStreamsFreed();
  });

  test('the handler cancelling an upload resets it: the caller gets 502 target-gone, its source is cancelled', async () => {
    const source = countingSource(1024 * MIB);
    let handlerSaw;
    server.onrequest = async (req) => {
      const reader = req.body.getReader();
      handlerSaw = (await reader.read()).value.length;
      await reader.cancel();
      return new Response('not sent: the exchange is over');
    };
    // Reset before any response head: the proxy answers for the target (§12).
    const res = await caller.fetch('http://server/upload', { method: 'POST', body: source.stream });
    assert.equal(res.status, 502);
    assert.equal(res.headers.get('httpws-error'), 'target-gone');
    assert.match(await res.text(), /reset the stream \(cancel\)/);
    assert.ok(handlerSaw > 0);
    await withTimeout(source.cancelled, WAIT_MS, 'the upload\'s source to be cancelled');
    await assertStreamsFreed();
  });

  test('a handler\'s body that fails mid-stream errors the caller\'s body (stream-reset)', async () => {
    let breakIt;
    const broken = new Promise((resolve) => { breakIt = resolve; });
    server.onrequest = () => new Response(new ReadableStream({
      start(c) { c.enqueue(new Uint8Array(10)); },
      async pull() {
        await broken;
        throw new Error('the source broke');
      },
    }), { headers: { 'Content-Type': 'text/event-stream' } });
    const failed = new Promise((resolve) => {
      server.addEventListener('error', ({ detail }) => resolve(detail), { once: true });
    });
    const res = await caller.fetch('http://server/broken');
    const reader = res.body.getReader();
    assert.equal((await reader.read()).value.length, 10);
    breakIt();
    await assert.rejects(reader.read(), (err) => err.name === 'stream-reset' && err.reset === 'cancel');
    const detail = await withTimeout(failed, WAIT_MS, 'the handler-error event');
    assert.equal(detail.token, 'handler-error');
    assert.match(detail.reason, /the source broke/);
    await assertStreamsFreed();
  });
});

describe('streams on the wire, with hand-written protocol-2 endpoints', { timeout: 30_000 }, () => {
  let proxy;
  let js;
  let raw;

  before(async () => {
    proxy = await startProxy();
    js = await HttpWs.connect(proxy.url, { name: 'js', WebSocket });
    raw = await rawEndpoint(proxy.url, 'raw2', { protocols: [PROTOCOL_2] });
  });

  after(async () => {
    raw?.close();
    await js?.close();
    await proxy?.stop();
  });

  test('an upload is a stream head, then data within the credit, then end', async () => {
    const body = randomBytes(STREAM_WINDOW * 2 + 1000);
    const pending = js.fetch('http://raw2/put', { method: 'PUT', body });
    const head = parseHttp(await raw.next());
    assert.equal(head.start, 'PUT /put HTTP/1.1');
    assert.equal(head.header('httpws-stream'), 'body');
    assert.equal(head.header('content-length'), String(body.length), 'the known length is kept');
    assert.equal(head.header('transfer-encoding'), undefined);
    assert.equal(head.body.length, 0, 'nothing after the head');
    const cseq = head.header('cseq');
    const got = [];
    let received = 0;
    let allowed = STREAM_WINDOW;
    for (;;) {
      const tag = parseStream(await raw.next());
      assert.ok(tag, 'a stream message');
      assert.equal(tag.dir, '<', 'about a request the target received');
      assert.equal(tag.cseq, cseq);
      if (tag.verb === 'end') break;
      assert.equal(tag.verb, 'data');
      assert.ok(tag.payload.length <= PIECE, `a ${tag.payload.length}-byte data message`);
      got.push(tag.payload);
      received += tag.payload.length;
      assert.ok(received <= allowed, `${received} bytes sent on ${allowed} of credit`);
      // Grant only once the whole credit is used: the sender must have stopped exactly there.
      if (received === allowed) {
        raw.send(`~credit <${cseq} ${64 * KIB}\n`);
        allowed += 64 * KIB;
      }
    }
    assert.equal(Buffer.concat(got).equals(body), true);
    raw.send(`HTTP/1.1 204 No Content\r\nCSeq: ${cseq}\r\n\r\n`);
    assert.equal((await pending).status, 204);
    assert.equal(js.openStreams, 0);
  });

  test('a streamed response is read as it comes and granted back as it is read', async () => {
    const pending = js.fetch('http://raw2/down');
    const cseq = parseHttp(await raw.next()).header('cseq');
    raw.send(`HTTP/1.1 200 OK\r\nCSeq: ${cseq}\r\nHttpws-Stream: body\r\nContent-Length: ${STREAM_WINDOW + 5}\r\n\r\n`);
    const res = await pending;
    assert.equal(res.headers.get('content-length'), String(STREAM_WINDOW + 5));
    const reader = res.body.getReader();
    raw.send(Buffer.concat([Buffer.from(`~data <${cseq}\n`), Buffer.alloc(STREAM_WINDOW, 'a')]));
    let read = 0;
    while (read < STREAM_WINDOW) read += (await reader.read()).value.length;
    // Read, the window is granted back (in batches); the rest fits in that credit.
    const credit = { n: 0 };
    while (credit.n < STREAM_WINDOW) {
      const tag = parseStream(await raw.next());
      assert.equal(tag.verb, 'credit');
      assert.equal(tag.dir, '<');
      credit.n += Number(tag.arg);
    }
    assert.equal(credit.n, STREAM_WINDOW);
    raw.send(`~data <${cseq}\nhello`);
    raw.send(`~end <${cseq}\n`);
    assert.equal(new TextDecoder().decode((await reader.read()).value), 'hello');
    assert.equal((await reader.read()).done, true);
    assert.equal(js.openStreams, 0);
  });

  test('cancelling a streamed response sends reset cancel', async () => {
    const pending = js.fetch('http://raw2/cancel');
    const cseq = parseHttp(await raw.next()).header('cseq');
    raw.send(`HTTP/1.1 200 OK\r\nCSeq: ${cseq}\r\nHttpws-Stream: body\r\n\r\n`);
    const res = await pending;
    raw.send(`~data <${cseq}\nfirst`);
    const reader = res.body.getReader();
    assert.equal(new TextDecoder().decode((await reader.read()).value), 'first');
    await reader.cancel();
    assert.equal((await raw.next()).toString(), `~reset <${cseq} cancel\n`);
    assert.equal(js.openStreams, 0);
    // Late data for it is dropped quietly; the next exchange is unaffected.
    raw.send(`~data <${cseq}\nlate`);
    js.onrequest = () => new Response('ok');
    raw.send('GET /after HTTP/1.1\r\nHost: js\r\nCSeq: 41\r\n\r\n');
    assert.equal(parseHttp(await raw.next()).body.toString(), 'ok');
  });

  test('a reset from the target errors the body with its token', async () => {
    const pending = js.fetch('http://raw2/reset');
    const cseq = parseHttp(await raw.next()).header('cseq');
    raw.send(`HTTP/1.1 200 OK\r\nCSeq: ${cseq}\r\nHttpws-Stream: body\r\n\r\n`);
    const res = await pending;
    raw.send(`~data <${cseq}\npart`);
    raw.send(`~reset <${cseq} timeout\n`);
    await assert.rejects(res.text(), (err) => err.name === 'stream-reset' && err.reset === 'timeout');
    assert.equal(js.openStreams, 0);
  });

  test('a handler\'s body shorter than its Content-Length is reset too-large', async () => {
    const declared = WHOLE_BODY_BYTES * 2;
    js.onrequest = () => new Response(new Blob([new Uint8Array(10)]).stream(), {
      headers: { 'Content-Length': String(declared) },
    });
    raw.send('GET /short HTTP/1.1\r\nHost: js\r\nCSeq: 10\r\n\r\n');
    const head = parseHttp(await raw.next());
    assert.equal(head.header('httpws-stream'), 'body');
    assert.equal(head.header('content-length'), String(declared));
    const data = parseStream(await raw.next());
    assert.equal(data.verb, 'data');
    assert.equal(data.payload.length, 10);
    assert.equal((await raw.next()).toString(), '~reset >10 too-large\n');
    assert.equal(js.openStreams, 0);
  });

  test('HEAD to a handler that streams: answered whole, its body let go', async () => {
    const endless = countingSource(1024 * MIB);
    const known = randomBytes(WHOLE_BODY_BYTES * 2);
    js.onrequest = (req) => (new URL(req.url).pathname === '/known'
      ? new Response(known)
      : new Response(endless.stream, { headers: { 'Content-Type': 'text/event-stream' } }));
    raw.send('HEAD /events HTTP/1.1\r\nHost: js\r\nCSeq: 8\r\n\r\n');
    const res = parseHttp(await raw.next());
    assert.equal(res.start, 'HTTP/1.1 200 OK');
    assert.equal(res.header('httpws-stream'), undefined);
    assert.equal(res.header('content-length'), undefined, 'an endless body has no length to tell');
    assert.equal(res.body.length, 0);
    await withTimeout(endless.cancelled, WAIT_MS, 'the handler\'s body to be let go');
    raw.send('HEAD /known HTTP/1.1\r\nHost: js\r\nCSeq: 9\r\n\r\n');
    const res2 = parseHttp(await raw.next());
    assert.equal(res2.header('content-length'), String(known.length));
    assert.equal(res2.body.length, 0);
    assert.equal(js.openStreams, 0);
  });

  test('a raw caller\'s streamed request reaches the handler as a stream; its answer streams back', async () => {
    const source = pushSource();
    let seen;
    js.onrequest = async (req, info) => {
      seen = { method: req.method, streamed: info.streamed, text: await req.text() };
      return new Response(source.stream, { headers: { 'Content-Type': 'text/event-stream' } });
    };
    raw.send('POST /in HTTP/1.1\r\nHost: js\r\nCSeq: 7\r\nHttpws-Stream: body\r\n\r\n');
    raw.send('~data >7\nhello ');
    raw.send('~data >7\nworld');
    raw.send('~end >7\n');
    const head = parseHttp(await raw.next());
    assert.equal(head.start, 'HTTP/1.1 200 OK');
    assert.equal(head.header('cseq'), '7');
    assert.equal(head.header('httpws-stream'), 'body');
    assert.equal(head.header('content-length'), undefined, 'an event stream has no length');
    assert.deepEqual(seen, { method: 'POST', streamed: true, text: 'hello world' });
    source.push('data: 1\n\n');
    assert.equal((await raw.next()).toString(), '~data >7\ndata: 1\n\n');
    source.close();
    assert.equal((await raw.next()).toString(), '~end >7\n');
    assert.equal(js.openStreams, 0);
  });
});

describe('protocol 1: peers and proxies without streams', { timeout: 30_000 }, () => {
  let proxy;
  let js;
  let raw1;

  before(async () => {
    proxy = await startProxy();
    js = await HttpWs.connect(proxy.url, { name: 'js', WebSocket });
    raw1 = await rawEndpoint(proxy.url, 'raw1');
  });

  after(async () => {
    raw1?.close();
    await js?.close();
    await proxy?.stop();
  });

  test('a streamed upload to a protocol-1 peer reaches it whole (the proxy assembles it)', async () => {
    const body = randomBytes(300 * KIB);
    const pending = js.fetch('http://raw1/up', { method: 'POST', body: new Blob([body]).stream() });
    const req = parseHttp(await raw1.next());
    assert.equal(req.start, 'POST /up HTTP/1.1');
    assert.equal(req.header('httpws-stream'), undefined);
    assert.equal(req.header('content-length'), String(body.length));
    assert.equal(req.body.equals(body), true);
    raw1.send(`HTTP/1.1 200 OK\r\nCSeq: ${req.header('cseq')}\r\nContent-Length: 2\r\n\r\nok`);
    assert.equal(await (await pending).text(), 'ok');
  });

  test('a protocol-1 caller gets a handler\'s streamed answer whole', async () => {
    const source = countingSource(1 * MIB);
    js.onrequest = () => new Response(source.stream);
    raw1.send('GET /big HTTP/1.1\r\nHost: js\r\nCSeq: 3\r\n\r\n');
    const res = parseHttp(await raw1.next());
    assert.equal(res.start, 'HTTP/1.1 200 OK');
    assert.equal(res.header('content-length'), String(1 * MIB));
    assert.equal(sha256(res.body), source.hash());
  });

  test('streams: false speaks protocol 1: a large body goes whole', async () => {
    const p1 = await HttpWs.connect(proxy.url, { name: 'p1', WebSocket, streams: false });
    try {
      assert.equal(p1.protocol, 1);
      const raw2 = await rawEndpoint(proxy.url, 'raw2', { protocols: [PROTOCOL_2] });
      try {
        const body = randomBytes(WHOLE_BODY_BYTES * 4);
        const pending = p1.fetch('http://raw2/x', { method: 'POST', body });
        const req = parseHttp(await raw2.next());
        assert.equal(req.header('httpws-stream'), undefined);
        assert.equal(req.body.equals(body), true, 'one whole message');
        raw2.send(`HTTP/1.1 204 No Content\r\nCSeq: ${req.header('cseq')}\r\n\r\n`);
        assert.equal((await pending).status, 204);
      } finally {
        raw2.close();
      }
    } finally {
      await p1.close();
    }
  });
});

describe('a proxy that does not take up the offer of protocol 2', { timeout: 20_000 }, () => {
  let server;
  let url;
  const offers = [];
  const received = [];

  before(async () => {
    // Chooses no subprotocol, as a proxy from before protocol 2 does: `ws` then fails the
    // handshake ("Server sent no subprotocol"), and the client asks again without the offer.
    server = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: () => false });
    await once(server, 'listening');
    url = `ws://127.0.0.1:${server.address().port}`;
    server.on('connection', (socket, req) => {
      offers.push(req.headers['sec-websocket-protocol'] ?? null);
      socket.send(`:host ${new URL(req.url, url).pathname.slice(1)}`);
      socket.on('message', (data) => {
        received.push(Buffer.from(data));
        const cseq = parseHttp(Buffer.from(data)).header('cseq');
        socket.send(`HTTP/1.1 200 OK\r\nCSeq: ${cseq}\r\nContent-Length: 2\r\n\r\nok`);
      });
    });
  });

  after(async () => {
    for (const socket of server.clients) socket.terminate();
    await new Promise((resolve) => server.close(resolve));
  });

  test('the client registers in protocol 1 and sends large bodies whole', async () => {
    const ep = await HttpWs.connect(url, { name: 'old', WebSocket, reconnect: false });
    try {
      assert.deepEqual(offers, [PROTOCOL_2, null], 'offered, refused, asked again without');
      assert.equal(ep.protocol, 1);
      const body = randomBytes(WHOLE_BODY_BYTES * 3);
      const res = await ep.fetch('http://peer/x', { method: 'POST', body: new Blob([body]).stream() });
      assert.equal(await res.text(), 'ok');
      const req = parseHttp(received.at(-1));
      assert.equal(req.header('httpws-stream'), undefined);
      assert.equal(req.header('content-length'), String(body.length));
      assert.equal(req.body.equals(body), true);
    } finally {
      await ep.close();
    }
  });
});

describe('tunnel loss mid-stream', { timeout: 20_000 }, () => {
  test('errors the streaming bodies on both sides with tunnel-down', async () => {
    const proxy = await startProxy();
    const opts = { WebSocket, reconnect: false };
    const caller = await HttpWs.connect(proxy.url, { ...opts, name: 'caller' });
    const server = await HttpWs.connect(proxy.url, { ...opts, name: 'server' });
    try {
      const download = countingSource(1024 * MIB);
      const upload = countingSource(1024 * MIB);
      let handlerRead;
      const handlerFailed = new Promise((resolve) => { handlerRead = resolve; });
      let uploadArrived;
      const arrived = new Promise((resolve) => { uploadArrived = resolve; });
      server.onrequest = async (req) => {
        if (new URL(req.url).pathname === '/down') return new Response(download.stream);
        const reader = req.body.getReader();
        try {
          await reader.read();
          uploadArrived();
          for (;;) await reader.read();
        } catch (err) {
          handlerRead(err);
          throw err;
        }
      };
      const res = await caller.fetch('http://server/down');
      const reader = res.body.getReader();
      await reader.read();
      // Its rejection is awaited below; the handler is attached now, since it may come first.
      const upFailed = assert.rejects(caller.fetch('http://server/up', { method: 'POST', body: upload.stream }),
        (err) => ['tunnel-down', 'target-gone'].includes(err.name));
      await withTimeout(arrived, WAIT_MS, 'the upload to reach the handler');
      await proxy.stop('SIGKILL');
      await assert.rejects(withTimeout((async () => { for (;;) await reader.read(); })(), WAIT_MS, 'the body to fail'),
        (err) => err.name === 'tunnel-down');
      await upFailed;
      assert.equal((await withTimeout(handlerFailed, WAIT_MS, 'the handler\'s body to fail')).name, 'tunnel-down');
      await withTimeout(download.cancelled, WAIT_MS, 'the download source to be cancelled');
      await withTimeout(upload.cancelled, WAIT_MS, 'the upload source to be cancelled');
      assert.equal(caller.openStreams, 0);
      assert.equal(server.openStreams, 0);
    } finally {
      await Promise.all([caller.close(), server.close()]);
      await proxy.stop();
    }
  });
});

describe('a peer that breaks the stream rules (a stand-in protocol-2 proxy)', { timeout: 20_000 }, () => {
  let server;
  let socket;
  let ep;
  let inbox;

  before(async () => {
    server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(server, 'listening');
    const connected = once(server, 'connection');
    const url = `ws://127.0.0.1:${server.address().port}`;
    server.once('connection', (s, req) => s.send(`:host ${new URL(req.url, url).pathname.slice(1)}`));
    const connecting = HttpWs.connect(url, { name: 'target', WebSocket, reconnect: false });
    [socket] = await connected;
    assert.equal(socket.protocol, PROTOCOL_2, 'the stand-in chose protocol 2');
    const queue = [];
    const waiters = [];
    socket.on('message', (data) => {
      const msg = Buffer.from(data);
      const waiter = waiters.shift();
      if (waiter) waiter(msg);
      else queue.push(msg);
    });
    inbox = () => withTimeout(new Promise((resolve) => {
      if (queue.length > 0) resolve(queue.shift());
      else waiters.push(resolve);
    }), WAIT_MS, 'a message from the client');
    ep = await connecting;
    assert.equal(ep.protocol, 2);
  });

  after(async () => {
    await ep?.close();
    for (const s of server.clients) s.terminate();
    await new Promise((resolve) => server.close(resolve));
  });

  const streamHead = (cseq, extra = '') => `POST /s HTTP/1.1\r\nHost: target\r\nCSeq: ${cseq}\r\nHttpws-From: peer\r\nHttpws-Stream: body\r\n${extra}\r\n`;

  test('data beyond the credit granted is reset flow-control; the handler\'s body errors', async () => {
    let bodyError;
    let gate;
    const opened = new Promise((resolve) => { gate = resolve; });
    ep.onrequest = async (req) => {
      await opened; // read nothing until the window is overrun
      bodyError = await req.arrayBuffer().then(() => null, (err) => err);
      return new Response('unsent');
    };
    socket.send(streamHead(1));
    for (let sent = 0; sent <= STREAM_WINDOW; sent += PIECE) {
      socket.send(Buffer.concat([Buffer.from('~data <1\n'), Buffer.alloc(PIECE)]));
    }
    assert.equal((await inbox()).toString(), '~reset <1 flow-control\n');
    gate();
    // Reset, the exchange gets no answer; the next request is answered as ever.
    ep.onrequest = () => new Response('fine');
    socket.send('GET /next HTTP/1.1\r\nHost: target\r\nCSeq: 2\r\n\r\n');
    const next = parseHttp(await inbox());
    assert.equal(next.header('cseq'), '2');
    assert.equal(next.body.toString(), 'fine');
    assert.equal(bodyError?.name, 'stream-reset');
    assert.equal(bodyError.reset, 'flow-control');
    assert.equal(ep.openStreams, 0);
  });

  test('malformed stream messages are dropped and reported; the open stream goes on', async () => {
    const errors = [];
    const onError = ({ detail }) => errors.push(detail);
    ep.addEventListener('error', onError);
    try {
      ep.onrequest = async (req) => new Response(`got ${await req.text()}`);
      socket.send(streamHead(3));
      socket.send('~data <3\nabc');
      const junk = ['~data <3', '~bogus <3\n', '~credit <3 -5\n', '~end <3\nxx', '~reset <3 nope\n', '~data  <3\nx', '~data <3 extra\nx'];
      for (const bad of junk) socket.send(bad);
      socket.send('~data <99\nfor no stream');
      socket.send('~data <3\ndef');
      socket.send('~end <3\n');
      const res = parseHttp(await nextNonCredit({ next: inbox }));
      assert.equal(res.header('cseq'), '3');
      assert.equal(res.body.toString(), 'got abcdef');
      assert.equal(errors.filter((e) => e.token === 'bad-message').length, junk.length, JSON.stringify(errors));
      assert.equal(ep.openStreams, 0);
    } finally {
      ep.removeEventListener('error', onError);
    }
  });

  test('data after the end is reset protocol', async () => {
    let release;
    const held = new Promise((resolve) => { release = resolve; });
    ep.onrequest = async (req) => {
      await req.arrayBuffer();
      await held;
      return new Response('unsent');
    };
    socket.send(streamHead(4, 'Content-Length: 2\r\n'));
    socket.send('~data <4\nab');
    socket.send('~end <4\n');
    socket.send('~data <4\nmore');
    assert.equal((await nextNonCredit({ next: inbox })).toString(), '~reset <4 protocol\n');
    release();
    ep.onrequest = () => new Response('fine');
    socket.send('GET /next HTTP/1.1\r\nHost: target\r\nCSeq: 5\r\n\r\n');
    assert.equal(parseHttp(await inbox()).header('cseq'), '5', 'nothing was sent for the reset exchange');
    assert.equal(ep.openStreams, 0);
  });

  test('a body longer than its Content-Length is reset too-large', async () => {
    ep.onrequest = async (req) => new Response(await req.text());
    socket.send(streamHead(6, 'Content-Length: 3\r\n'));
    socket.send('~data <6\nabcd');
    assert.equal((await inbox()).toString(), '~reset <6 too-large\n');
    assert.equal(ep.openStreams, 0);
  });
});
