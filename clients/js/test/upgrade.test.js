// Upgrades (`101 Switching Protocols`, docs/protocol.md §12 *Upgrades*) in the JS client,
// against the real proxy: a JS caller's `ep.upgrade()` and a JS handler's `info.upgrade()`
// carrying bytes both ways intact (many MiB too), half-closes and resets each way, a refused
// upgrade, a slow reader holding its sender at the window, tunnel loss; the wire, against
// raw protocol-2 peers (the stream head keeps the upgrade headers, data are the raw bytes);
// the credit rules against a stand-in proxy; and a real WebSocket handshake and frames from
// a raw TCP client through the proxy's public ingress to a JS handler.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { connect as tcpConnect } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { HttpWs, PROTOCOL_2, STREAM_WINDOW, UpgradedSocket } from '../httpws.js';
import { WAIT_MS, parseHttp, rawEndpoint, startAgent, startProxy, withTimeout } from './helpers.js';

const KIB = 1024;
const MIB = 1024 * KIB;
/** What the client sends in one data message at most. */
const PIECE = 64 * KIB;

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');
const text = (bytes) => new TextDecoder().decode(bytes);

/** A stream message's tag and payload (`~verb <dir><cseq>[ arg]\n payload`), or null. */
function parseStream(buf) {
  const lf = buf.indexOf(10);
  const m = lf > 0 ? /^~(\w+) ([<>])(\d+)(?: (\S+))?$/.exec(buf.subarray(0, lf).toString('latin1')) : null;
  return m && { verb: m[1], dir: m[2], cseq: m[3], arg: m[4], payload: buf.subarray(lf + 1) };
}

/** The next `type` event of an upgraded socket, within the tests' deadline. */
function next(socket, type) {
  return withTimeout(new Promise((resolve) => socket.addEventListener(type, resolve, { once: true })), WAIT_MS, `a ${type} event`);
}

/**
 * Collect a socket's messages: `bytes()` is all so far, `until(n)` resolves once at least `n`
 * bytes came, `text()` decodes them.
 */
function collect(socket) {
  const chunks = [];
  let total = 0;
  let waiters = [];
  socket.addEventListener('message', (event) => {
    assert.ok(event.data instanceof Uint8Array, 'a message carries a Uint8Array');
    chunks.push(Buffer.from(event.data));
    total += event.data.length;
    waiters = waiters.filter((w) => (total >= w.n ? (w.resolve(), false) : true));
  });
  return {
    bytes: () => Buffer.concat(chunks),
    text: () => Buffer.concat(chunks).toString(),
    total: () => total,
    until: (n) => withTimeout(new Promise((resolve) => {
      if (total >= n) resolve();
      else waiters.push({ n, resolve });
    }), WAIT_MS, `${n} bytes on the socket (${total} so far)`),
  };
}

/** The next message of a raw endpoint that is not a credit grant (those are added to `credit.n`). */
async function nextNonCredit(raw, credit = { n: 0 }) {
  for (;;) {
    const msg = await raw.next();
    const tag = msg[0] === 0x7e ? parseStream(msg) : null;
    if (tag?.verb !== 'credit') return msg;
    credit.n += Number(tag.arg);
  }
}

describe('upgrades between JS endpoints', { timeout: 60_000 }, () => {
  let proxy;
  let caller;
  let server;
  /** The server's side of the latest upgrade, with what its handler saw. */
  let accepted;

  before(async () => {
    proxy = await startProxy();
    caller = await HttpWs.connect(proxy.url, { name: 'caller', WebSocket });
    server = await HttpWs.connect(proxy.url, { name: 'server', WebSocket });
  });

  after(async () => {
    await Promise.all([caller?.close(), server?.close()]);
    await proxy?.stop();
  });

  /** A handler that accepts every upgrade, hands its socket to `onSocket`, answers /ping. */
  function acceptUpgrades(onSocket = () => {}) {
    let resolve;
    accepted = new Promise((r) => { resolve = r; });
    server.onrequest = (req, info) => {
      if (info.upgrade === undefined) return new Response('pong');
      const socket = info.upgrade({ 'X-Switched': 'yes' });
      onSocket(socket, req, info);
      resolve({ socket, req, info });
      return undefined;
    };
  }

  /** Both ends hold no stream: checked after a round trip, which follows any reset. */
  async function assertStreamsFreed() {
    assert.equal(await (await caller.fetch('http://server/ping')).text(), 'pong');
    assert.equal(caller.openStreams, 0, 'the caller holds no stream');
    assert.equal(server.openStreams, 0, 'the server holds no stream');
  }

  test('bytes both ways intact, many MiB of them; a close from each side ends it cleanly', async () => {
    // The server echoes what it reads, and ends its side when the caller has ended its.
    acceptUpgrades((socket) => {
      socket.onmessage = (event) => socket.send(event.data);
      socket.onend = () => socket.close();
    });
    const key = randomBytes(16).toString('base64');
    const socket = await withTimeout(caller.upgrade('http://server/echo?room=1', {
      headers: { 'Sec-WebSocket-Key': key, 'Sec-WebSocket-Version': '13' },
    }), WAIT_MS, 'the upgrade');
    assert.ok(socket instanceof UpgradedSocket);
    assert.equal(socket.readyState, UpgradedSocket.OPEN);
    assert.equal(socket.status, 101);
    assert.equal(socket.protocol, 'websocket');
    assert.equal(socket.headers.get('x-switched'), 'yes');
    assert.equal(socket.headers.get('upgrade'), 'websocket');
    assert.equal(socket.url, 'http://server/echo?room=1');
    const { req, info } = await accepted;
    assert.equal(req.method, 'GET');
    assert.equal(new URL(req.url).pathname + new URL(req.url).search, '/echo?room=1');
    assert.equal(req.headers.get('upgrade'), 'websocket');
    assert.equal(info.from, 'caller');
    assert.equal(info.streamed, false, 'the Request has no body: the stream is the connection');
    assert.equal(info.headers.get('sec-websocket-key'), key);
    assert.equal(info.headers.get('connection'), 'Upgrade');

    const received = collect(socket);
    const closed = next(socket, 'close');
    const ended = next(socket, 'end');
    const payload = randomBytes(8 * MIB);
    for (let at = 0; at < payload.length; at += 100_000) socket.send(payload.subarray(at, at + 100_000));
    socket.send('and a string, as UTF-8: ü');
    const tail = Buffer.from('and a string, as UTF-8: ü');
    await received.until(payload.length + tail.length);
    assert.equal(sha256(received.bytes()), sha256(Buffer.concat([payload, tail])), 'the echo is the bytes sent, in order');
    assert.equal(socket.bufferedAmount, 0);
    socket.close();
    assert.equal(socket.readyState, UpgradedSocket.CLOSING);
    assert.throws(() => socket.send('late'), { name: 'closed' });
    await ended;
    const detail = await closed;
    assert.equal(detail.wasClean, true);
    assert.equal(detail.code, 1000);
    assert.equal(socket.readyState, UpgradedSocket.CLOSED);
    assert.deepEqual(await socket.closed, { code: 1000, reason: '', wasClean: true });
    const far = (await accepted).socket;
    assert.equal((await far.closed).wasClean, true);
    await assertStreamsFreed();
  });

  test('the caller half-closes first: the target still sends, then ends; both close cleanly', async () => {
    acceptUpgrades();
    const socket = await caller.upgrade('http://server/half');
    const { socket: far } = await accepted;
    const farReceived = collect(far);
    const received = collect(socket);
    const farEnded = next(far, 'end');
    socket.send('last words');
    socket.close();
    await farEnded;
    assert.equal(farReceived.text(), 'last words', 'the end comes after every byte before it');
    assert.equal(far.readyState, UpgradedSocket.OPEN, 'the target\'s side is still open');
    far.send('after your end');
    await received.until('after your end'.length);
    assert.equal(received.text(), 'after your end');
    assert.equal(socket.readyState, UpgradedSocket.CLOSING, 'the caller waits for the target\'s end');
    const closed = next(socket, 'close');
    far.close();
    assert.equal((await closed).wasClean, true);
    assert.equal((await far.closed).wasClean, true);
    await assertStreamsFreed();
  });

  test('the target half-closes first: the caller still sends, then ends; both close cleanly', async () => {
    acceptUpgrades();
    const socket = await caller.upgrade('http://server/half');
    const { socket: far } = await accepted;
    const farReceived = collect(far);
    const ended = next(socket, 'end');
    far.send('bye');
    far.close();
    const received = collect(socket);
    await ended;
    assert.equal(received.text(), 'bye');
    assert.equal(socket.readyState, UpgradedSocket.OPEN);
    socket.send('a reply after your end');
    await farReceived.until('a reply after your end'.length);
    assert.equal(farReceived.text(), 'a reply after your end');
    assert.equal(far.readyState, UpgradedSocket.CLOSING);
    socket.close();
    assert.equal((await socket.closed).wasClean, true);
    assert.equal((await far.closed).wasClean, true);
    await assertStreamsFreed();
  });

  test('a reset by the caller closes both at once, uncleanly, with its token', async () => {
    acceptUpgrades();
    const socket = await caller.upgrade('http://server/reset');
    const { socket: far } = await accepted;
    const farClosed = next(far, 'close');
    let closes = 0;
    socket.onclose = () => { closes += 1; };
    socket.reset();
    assert.equal(socket.readyState, UpgradedSocket.CLOSED, 'closed at once');
    socket.reset();
    socket.close();
    assert.throws(() => socket.send('x'), { name: 'closed' });
    const mine = await socket.closed;
    assert.equal(mine.wasClean, false);
    assert.equal(mine.reason, 'cancel');
    const event = await farClosed;
    assert.equal(event.wasClean, false);
    assert.equal(event.code, 1006);
    assert.equal(event.reason, 'cancel');
    assert.equal(event.error.name, 'stream-reset');
    assert.equal(event.error.reset, 'cancel');
    await assertStreamsFreed();
    assert.equal(closes, 1, 'one close event, however often it was ended');
  });

  test('a reset by the target closes the caller\'s socket with its token', async () => {
    acceptUpgrades();
    const socket = await caller.upgrade('http://server/reset');
    const { socket: far } = await accepted;
    const closed = next(socket, 'close');
    far.reset();
    const event = await closed;
    assert.equal(event.wasClean, false);
    assert.equal(event.reason, 'cancel');
    assert.equal(event.error.reset, 'cancel');
    assert.equal((await far.closed).reason, 'cancel');
    await assertStreamsFreed();
  });

  test('aborting the signal once upgraded resets the socket', async () => {
    acceptUpgrades();
    const controller = new AbortController();
    const socket = await caller.upgrade('http://server/abort', { signal: controller.signal });
    const { socket: far } = await accepted;
    const reason = new Error('given up');
    controller.abort(reason);
    const mine = await socket.closed;
    assert.equal(mine.wasClean, false);
    assert.equal(mine.error, reason);
    assert.equal((await far.closed).reason, 'cancel');
    await assertStreamsFreed();
  });

  test('a refused upgrade rejects with the answer; its request stream ends', async () => {
    server.onrequest = (req, info) => {
      if (info.upgrade === undefined) return new Response('pong');
      if (new URL(req.url).pathname === '/big') return new Response(new Uint8Array(big), { status: 426 });
      return new Response('not here', { status: 403 });
    };
    const big = randomBytes(300 * KIB);
    const refused = await caller.upgrade('http://server/no').catch((e) => e);
    assert.equal(refused.name, 'upgrade-refused');
    assert.equal(refused.response.status, 403);
    assert.equal(await refused.response.text(), 'not here');
    // A streamed refusal: its body streams to the caller, whose empty request ends.
    const err = await caller.upgrade('http://server/big').catch((e) => e);
    assert.equal(err.name, 'upgrade-refused');
    assert.equal(err.response.status, 426);
    assert.equal(sha256(new Uint8Array(await err.response.arrayBuffer())), sha256(big));
    await assertStreamsFreed();
  });

  test('a slow reader holds the sender at the window; resuming drains it', async () => {
    acceptUpgrades((socket) => socket.pause());
    const socket = await caller.upgrade('http://server/slow');
    const { socket: far } = await accepted;
    const farReceived = collect(far);
    const payload = randomBytes(2 * MIB);
    socket.send(payload);
    assert.equal(socket.bufferedAmount, payload.length - STREAM_WINDOW, 'a window goes at once, the rest waits for credit');
    // A round trip through both tunnels, after the window's data: no credit came with it.
    assert.equal(await (await caller.fetch('http://server/ping')).text(), 'pong');
    assert.equal(socket.bufferedAmount, payload.length - STREAM_WINDOW, 'a paused reader grants nothing');
    assert.equal(farReceived.total(), 0, 'nothing is delivered while paused');
    assert.equal(far.paused, true);
    const drained = next(socket, 'drain');
    far.resume();
    await drained;
    assert.equal(socket.bufferedAmount, 0);
    await farReceived.until(payload.length);
    assert.equal(sha256(farReceived.bytes()), sha256(payload));
    socket.close();
    far.close();
    assert.equal((await socket.closed).wasClean, true);
    assert.equal((await far.closed).wasClean, true);
    await assertStreamsFreed();
  });

  test('a send() past maxBufferedBytes resets the socket with buffer-full', async () => {
    acceptUpgrades((socket) => socket.pause());
    const socket = await caller.upgrade('http://server/full', { maxBufferedBytes: 100 * KIB });
    const { socket: far } = await accepted;
    socket.send(new Uint8Array(STREAM_WINDOW + 100 * KIB)); // the window goes, 100 KiB waits
    assert.equal(socket.bufferedAmount, 100 * KIB);
    assert.throws(() => socket.send(new Uint8Array(1)), { name: 'buffer-full' });
    const mine = await socket.closed;
    assert.equal(mine.reason, 'buffer-full');
    assert.equal((await far.closed).reason, 'cancel');
    await assertStreamsFreed();
  });

  test('bad arguments are refused before anything is sent', async () => {
    await assert.rejects(caller.upgrade('http://server/x', { headers: { Upgrade: 'websocket' } }), TypeError);
    await assert.rejects(caller.upgrade('http://server/x', { headers: { Connection: 'Upgrade' } }), TypeError);
    await assert.rejects(caller.upgrade('http://server/x', { protocol: 'h2c, websocket' }), TypeError);
    await assert.rejects(caller.upgrade('ws://server/x'), TypeError);
    assert.throws(() => new UpgradedSocket(), TypeError);
    assert.equal(caller.openStreams, 0);
  });
});

describe('upgrades on the wire, with hand-written protocol-2 peers', { timeout: 30_000 }, () => {
  let proxy;
  let js;
  let raw;
  let old;

  before(async () => {
    proxy = await startProxy();
    js = await HttpWs.connect(proxy.url, { name: 'js', WebSocket });
    raw = await rawEndpoint(proxy.url, 'raw2', { protocols: [PROTOCOL_2] });
    old = await rawEndpoint(proxy.url, 'raw1');
  });

  after(async () => {
    raw?.close();
    old?.close();
    await js?.close();
    await proxy?.stop();
  });

  const switched = (cseq, extra = '') => `HTTP/1.1 101 Switching Protocols\r\nCSeq: ${cseq}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nHttpws-Stream: body\r\n${extra}\r\n`;

  test('the upgrade is a stream head keeping its upgrade headers; the bytes go raw both ways', async () => {
    const pending = js.upgrade('http://raw2/chat?x=1', { headers: { 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' } });
    const head = parseHttp(await raw.next());
    assert.equal(head.start, 'GET /chat?x=1 HTTP/1.1');
    assert.equal(head.header('connection'), 'Upgrade');
    assert.equal(head.header('upgrade'), 'websocket');
    assert.equal(head.header('httpws-stream'), 'body');
    assert.equal(head.header('sec-websocket-key'), 'dGhlIHNhbXBsZSBub25jZQ==');
    assert.equal(head.header('httpws-from'), 'js');
    assert.equal(head.header('content-length'), undefined, 'no length: the stream is the connection');
    assert.equal(head.header('transfer-encoding'), undefined);
    assert.equal(head.body.length, 0, 'nothing after the head');
    const cseq = head.header('cseq');
    raw.send(switched(cseq, 'Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n'));
    const socket = await pending;
    assert.equal(socket.protocol, 'websocket');
    assert.equal(socket.headers.get('sec-websocket-accept'), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    assert.equal(socket.headers.get('httpws-stream'), null, 'the framing header is not shown');

    // Every byte value, as it is: no framing of any kind is added.
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    socket.send(all);
    const data = parseStream(await raw.next());
    assert.equal(data.verb, 'data', 'the first stream message is the caller\'s data: nothing went before the 101');
    assert.equal(data.dir, '<');
    assert.equal(data.cseq, cseq);
    assert.ok(data.payload.equals(all), 'the payload is the bytes sent');

    const received = collect(socket);
    const theirs = Buffer.from('\r\n\r\nHTTP/1.1 200 OK\r\n~data >1\n\x00\xff', 'latin1');
    raw.send(Buffer.concat([Buffer.from(`~data <${cseq}\n`), theirs]));
    const ended = next(socket, 'end');
    raw.send(`~end <${cseq}\n`);
    await ended;
    assert.ok(received.bytes().equals(theirs), 'the target\'s bytes arrive as they are');
    socket.close();
    assert.equal((await nextNonCredit(raw)).toString(), `~end <${cseq}\n`, 'close() sends end');
    assert.equal((await socket.closed).wasClean, true);
    assert.equal(js.openStreams, 0);
  });

  test('the caller sends within the credit and grants as it delivers', async () => {
    const pending = js.upgrade('http://raw2/credit');
    const cseq = parseHttp(await raw.next()).header('cseq');
    raw.send(switched(cseq));
    const socket = await pending;
    const body = randomBytes(STREAM_WINDOW + 1000);
    socket.send(body);
    assert.equal(socket.bufferedAmount, 1000, 'what the window does not cover waits');
    const got = [];
    let received = 0;
    while (received < STREAM_WINDOW) {
      const tag = parseStream(await raw.next());
      assert.equal(tag.verb, 'data');
      assert.ok(tag.payload.length <= PIECE, `a ${tag.payload.length}-byte data message`);
      got.push(tag.payload);
      received += tag.payload.length;
    }
    assert.equal(received, STREAM_WINDOW, 'exactly the window, not a byte past it');
    const drained = next(socket, 'drain');
    raw.send(`~credit <${cseq} 1000\n`);
    const rest = parseStream(await raw.next());
    assert.equal(rest.verb, 'data');
    got.push(rest.payload);
    assert.ok(Buffer.concat(got).equals(body));
    await drained;
    assert.equal(socket.bufferedAmount, 0);

    // The target's bytes are granted back as they are delivered.
    const delivered = collect(socket);
    raw.send(Buffer.concat([Buffer.from(`~data <${cseq}\n`), Buffer.alloc(STREAM_WINDOW, 'a')]));
    const credit = { n: 0 };
    while (credit.n < STREAM_WINDOW) {
      const tag = parseStream(await raw.next());
      assert.equal(tag.verb, 'credit');
      assert.equal(tag.dir, '<');
      credit.n += Number(tag.arg);
    }
    assert.equal(credit.n, STREAM_WINDOW);
    assert.equal(delivered.total(), STREAM_WINDOW);
    socket.reset();
    assert.equal((await raw.next()).toString(), `~reset <${cseq} cancel\n`);
    assert.equal(js.openStreams, 0);
  });

  test('a whole refusal ends the exchange: the caller sends nothing more for it', async () => {
    const pending = js.upgrade('http://raw2/no');
    const cseq = parseHttp(await raw.next()).header('cseq');
    raw.send(`HTTP/1.1 404 Not Found\r\nCSeq: ${cseq}\r\nContent-Length: 4\r\n\r\nnope`);
    const err = await pending.catch((e) => e);
    assert.equal(err.name, 'upgrade-refused');
    assert.equal(err.response.status, 404);
    assert.equal(await err.response.text(), 'nope');
    assert.equal(js.openStreams, 0);
    // The next thing the raw peer gets is the next request, not an end or a reset.
    const ping = js.fetch('http://raw2/after');
    const after = parseHttp(await raw.next());
    assert.equal(after.start, 'GET /after HTTP/1.1');
    raw.send(`HTTP/1.1 204 No Content\r\nCSeq: ${after.header('cseq')}\r\n\r\n`);
    assert.equal((await ping).status, 204);
  });

  test('a streamed refusal: the caller ends its empty request stream and reads the answer', async () => {
    const pending = js.upgrade('http://raw2/no');
    const cseq = parseHttp(await raw.next()).header('cseq');
    raw.send(`HTTP/1.1 400 Bad Request\r\nCSeq: ${cseq}\r\nHttpws-Stream: body\r\n\r\n`);
    const err = await pending.catch((e) => e);
    assert.equal(err.name, 'upgrade-refused');
    assert.equal(err.response.status, 400);
    assert.equal((await raw.next()).toString(), `~end <${cseq}\n`, 'the caller\'s request stream ends, empty');
    raw.send(`~data <${cseq}\nnot an upgrade`);
    raw.send(`~end <${cseq}\n`);
    assert.equal(await err.response.text(), 'not an upgrade');
    assert.equal(js.openStreams, 0);
  });

  test('aborting or timing out before the answer rejects, and resets the request stream', async () => {
    const controller = new AbortController();
    const aborted = js.upgrade('http://raw2/abort', { signal: controller.signal });
    const first = parseHttp(await raw.next()).header('cseq');
    const reason = new Error('no longer wanted');
    controller.abort(reason);
    await assert.rejects(aborted, (err) => err === reason);
    assert.equal((await raw.next()).toString(), `~reset <${first} cancel\n`);

    const late = js.upgrade('http://raw2/late', { timeout: 50 });
    const second = parseHttp(await raw.next()).header('cseq');
    await assert.rejects(late, { name: 'timeout' });
    assert.equal((await raw.next()).toString(), `~reset <${second} cancel\n`);
    assert.equal(js.openStreams, 0);
  });

  test('a whole 101 is not a switch: the upgrade fails bad-response', async () => {
    const pending = js.upgrade('http://raw2/whole');
    const cseq = parseHttp(await raw.next()).header('cseq');
    raw.send(`HTTP/1.1 101 Switching Protocols\r\nCSeq: ${cseq}\r\nUpgrade: websocket\r\n\r\n`);
    await assert.rejects(pending, { name: 'bad-response' });
    assert.equal(js.openStreams, 0);
  });

  test('an upgrade to a protocol-1 endpoint is answered 502 bad-response by the proxy', async () => {
    const err = await js.upgrade('http://raw1/chat').catch((e) => e);
    assert.equal(err.name, 'upgrade-refused');
    assert.equal(err.response.status, 502);
    assert.equal(err.response.headers.get('httpws-error'), 'bad-response');
    assert.equal(js.openStreams, 0);
  });
});

describe('the credit rules, against a stand-in protocol-2 proxy', { timeout: 20_000 }, () => {
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

  const upgradeHead = (cseq) => 'GET /ws HTTP/1.1\r\nHost: target\r\nCSeq: ' + cseq +
    '\r\nHttpws-From: peer\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nHttpws-Stream: body\r\n\r\n';

  test('a handler\'s 101 is a stream head with Connection and Upgrade; its bytes go raw', async () => {
    let accepted;
    const got = new Promise((resolve) => { accepted = resolve; });
    ep.onrequest = (req, info) => {
      const s = info.upgrade({ 'X-Ok': 'yes' });
      s.onmessage = (event) => s.send(`echo ${text(event.data)}`);
      accepted(s);
    };
    socket.send(upgradeHead(1));
    const head = parseHttp(await inbox());
    assert.equal(head.start, 'HTTP/1.1 101 Switching Protocols');
    assert.equal(head.header('cseq'), '1');
    assert.equal(head.header('connection'), 'Upgrade');
    assert.equal(head.header('upgrade'), 'websocket');
    assert.equal(head.header('httpws-stream'), 'body');
    assert.equal(head.header('x-ok'), 'yes');
    assert.equal(head.header('content-length'), undefined);
    assert.equal(head.body.length, 0);
    const s = await got;
    assert.equal(s.protocol, 'websocket');
    assert.equal(s.headers.get('x-ok'), 'yes');
    socket.send('~data <1\nping');
    assert.equal((await inbox()).toString(), '~data <1\necho ping');
    socket.send('~reset <1 cancel\n');
    assert.equal((await s.closed).reason, 'cancel');
    assert.equal(ep.openStreams, 0);
  });

  test('data beyond the credit a handler\'s socket granted is reset flow-control', async () => {
    let accepted;
    const got = new Promise((resolve) => { accepted = resolve; });
    ep.onrequest = (req, info) => accepted(info.upgrade()); // never listens: grants nothing
    socket.send(upgradeHead(2));
    assert.match((await inbox()).toString(), /^HTTP\/1\.1 101 /);
    const s = await got;
    for (let sent = 0; sent <= STREAM_WINDOW; sent += PIECE) {
      socket.send(Buffer.concat([Buffer.from('~data <2\n'), Buffer.alloc(PIECE)]));
    }
    assert.equal((await inbox()).toString(), '~reset <2 flow-control\n');
    const detail = await s.closed;
    assert.equal(detail.reason, 'flow-control');
    assert.equal(detail.error.name, 'stream-reset');
    assert.equal(ep.openStreams, 0);
  });

  test('data beyond the credit a caller\'s socket granted is reset flow-control', async () => {
    const pending = ep.upgrade('http://peer/ws');
    const head = parseHttp(await inbox());
    const cseq = head.header('cseq');
    socket.send(`HTTP/1.1 101 Switching Protocols\r\nCSeq: ${cseq}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nHttpws-Stream: body\r\n\r\n`);
    const s = await pending;
    s.pause();
    s.onmessage = () => {};
    for (let sent = 0; sent <= STREAM_WINDOW; sent += PIECE) {
      socket.send(Buffer.concat([Buffer.from(`~data >${cseq}\n`), Buffer.alloc(PIECE)]));
    }
    assert.equal((await inbox()).toString(), `~reset >${cseq} flow-control\n`);
    assert.equal((await s.closed).reason, 'flow-control');
    assert.equal(ep.openStreams, 0);
  });

  test('a whole request with upgrade headers is no upgrade: info.upgrade is absent', async () => {
    ep.onrequest = (req, info) => new Response(`upgrade ${typeof info.upgrade}`);
    socket.send('GET /ws HTTP/1.1\r\nHost: target\r\nCSeq: 3\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    const answer = parseHttp(await inbox());
    assert.equal(answer.header('cseq'), '3');
    assert.equal(answer.body.toString(), 'upgrade undefined');
  });

  test('a handler that answers an upgrade without switching ends the exchange', async () => {
    ep.onrequest = (req, info) => {
      assert.equal(typeof info.upgrade, 'function');
      return new Response('no', { status: 403 });
    };
    socket.send(upgradeHead(4));
    const answer = parseHttp(await inbox());
    assert.equal(answer.start, 'HTTP/1.1 403 Forbidden');
    assert.equal(answer.header('httpws-stream'), undefined, 'a whole answer');
    assert.equal(answer.body.toString(), 'no');
    assert.equal(ep.openStreams, 0);
  });
});

describe('upgraded sockets when the tunnel goes', { timeout: 20_000 }, () => {
  test('tunnel loss closes every upgraded socket on both sides with tunnel-down', async () => {
    const proxy = await startProxy();
    const opts = { WebSocket, reconnect: false };
    const caller = await HttpWs.connect(proxy.url, { ...opts, name: 'caller' });
    const server = await HttpWs.connect(proxy.url, { ...opts, name: 'server' });
    try {
      const far = [];
      server.onrequest = (req, info) => { far.push(info.upgrade()); };
      const near = [await caller.upgrade('http://server/a'), await caller.upgrade('http://server/b')];
      assert.equal(far.length, 2);
      assert.equal(caller.openStreams, 2);
      await proxy.stop('SIGKILL');
      for (const socket of [...near, ...far]) {
        const detail = await withTimeout(socket.closed, WAIT_MS, 'the socket to close');
        assert.equal(detail.wasClean, false);
        assert.equal(detail.reason, 'tunnel-down');
        assert.equal(socket.readyState, UpgradedSocket.CLOSED);
      }
      assert.equal(caller.openStreams, 0);
      assert.equal(server.openStreams, 0);
    } finally {
      await Promise.all([caller.close(), server.close()]);
      await proxy.stop();
    }
  });

  test('closing the endpoint closes its upgraded sockets with closed', async () => {
    const proxy = await startProxy();
    const caller = await HttpWs.connect(proxy.url, { WebSocket, name: 'caller' });
    const server = await HttpWs.connect(proxy.url, { WebSocket, name: 'server' });
    try {
      let far;
      server.onrequest = (req, info) => { far = info.upgrade(); };
      const socket = await caller.upgrade('http://server/a');
      const closed = next(socket, 'close');
      await caller.close();
      const detail = await closed;
      assert.equal(detail.reason, 'closed');
      // The proxy tells the target its caller is gone.
      assert.equal((await withTimeout(far.closed, WAIT_MS, 'the far side')).wasClean, false);
    } finally {
      await Promise.all([caller.close(), server.close()]);
      await proxy.stop();
    }
  });

  test('a protocol-1 tunnel cannot upgrade: no-streams', async () => {
    const proxy = await startProxy();
    const ep = await HttpWs.connect(proxy.url, { WebSocket, name: 'old', streams: false });
    try {
      assert.equal(ep.protocol, 1);
      await assert.rejects(ep.upgrade('http://anyone/'), { name: 'no-streams' });
    } finally {
      await ep.close();
      await proxy.stop();
    }
  });
});

/** A raw TCP connection: `write`, `until(pred)` over everything read so far, `ended`. */
async function tcp(port, host = '127.0.0.1') {
  const conn = tcpConnect(port, host);
  await withTimeout(once(conn, 'connect'), WAIT_MS, 'the TCP connection');
  let buf = Buffer.alloc(0);
  let waiters = [];
  const ended = new Promise((resolve) => conn.once('end', resolve));
  conn.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    waiters = waiters.filter((w) => (w.pred(buf) ? (w.resolve(buf), false) : true));
  });
  return {
    conn,
    write: (data) => conn.write(data),
    until: (pred, what) => withTimeout(new Promise((resolve) => {
      if (pred(buf)) resolve(buf);
      else waiters.push({ pred, resolve });
    }), WAIT_MS, what),
    ended: withTimeout(ended, WAIT_MS, 'the far side to end the connection'),
  };
}

describe('interoperation with the Rust agent', { timeout: 30_000 }, () => {
  let proxy;
  let ep;
  let service;
  let serving;
  let listening;
  /** What the service saw of the upgrade. */
  let serviceSaw;

  before(async () => {
    proxy = await startProxy();
    ep = await HttpWs.connect(proxy.url, { name: 'js', WebSocket });
    // A local service that switches to an echo protocol: it writes back what it reads, and
    // ends its side when the caller has ended its.
    service = createServer((req, res) => res.end('not an upgrade'));
    service.on('upgrade', (req, socket) => {
      serviceSaw = { upgrade: req.headers.upgrade, connection: req.headers.connection, from: req.headers['httpws-from'] };
      socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\nX-Service: node\r\n\r\n');
      socket.pipe(socket);
    });
    service.listen(0, '127.0.0.1');
    await once(service, 'listening');
    serving = await startAgent(proxy.url, ['--name', 'agentsvc', '--serve', `http://127.0.0.1:${service.address().port}`]);
    listening = await startAgent(proxy.url, ['--name', 'agentcli', '--listen', '127.0.0.1:0']);
  });

  after(async () => {
    await serving?.stop();
    await listening?.stop();
    service?.close();
    await ep?.close();
    await proxy?.stop();
  });

  test('a JS caller upgrades through the agent to a local service, bytes both ways', async () => {
    const socket = await withTimeout(ep.upgrade('http://agentsvc/echo', { protocol: 'echo' }), WAIT_MS, 'the upgrade');
    assert.equal(socket.protocol, 'echo');
    assert.equal(socket.headers.get('x-service'), 'node');
    assert.deepEqual(serviceSaw, { upgrade: 'echo', connection: 'Upgrade', from: 'js' });
    const received = collect(socket);
    const payload = randomBytes(3 * MIB);
    socket.send(payload);
    await received.until(payload.length);
    assert.equal(sha256(received.bytes()), sha256(payload), 'the service\'s echo, intact');
    // Our end reaches the service as its socket's end; its end comes back.
    const ended = next(socket, 'end');
    socket.close();
    await ended;
    assert.equal((await socket.closed).wasClean, true);
    assert.equal(ep.openStreams, 0);
  });

  test('a local client upgrades through the agent\'s --listen to a JS handler', async () => {
    let accepted;
    const got = new Promise((resolve) => { accepted = resolve; });
    ep.onrequest = (req, info) => {
      const s = info.upgrade(undefined, { protocol: 'chat' });
      accepted({ s, from: info.from, upgrade: req.headers.get('upgrade'), frames: collect(s) });
    };
    const colon = listening.listen.lastIndexOf(':');
    const client = await tcp(Number(listening.listen.slice(colon + 1)), listening.listen.slice(0, colon));
    client.write('GET /room HTTP/1.1\r\nHost: js\r\nConnection: Upgrade\r\nUpgrade: chat\r\n\r\n');
    const head = await client.until((b) => b.includes('\r\n\r\n'), 'the 101');
    const answer = parseHttp(head);
    assert.equal(answer.start, 'HTTP/1.1 101 Switching Protocols');
    assert.equal(answer.header('upgrade'), 'chat');
    const { s, from, upgrade, frames } = await got;
    assert.equal(from, 'agentcli');
    assert.equal(upgrade, 'chat');
    client.write('ping');
    await frames.until(4);
    assert.equal(frames.text(), 'ping');
    const at = head.indexOf('\r\n\r\n') + 4;
    s.send('pong');
    const read = await client.until((b) => b.length >= at + 4, 'the reply');
    assert.equal(read.subarray(at).toString(), 'pong', 'the handler\'s bytes, right after the 101\'s head');
    const ended = next(s, 'end');
    client.conn.end();
    await ended;
    s.close();
    await client.ended;
    assert.equal((await s.closed).wasClean, true);
    assert.equal(ep.openStreams, 0);
  });
});

describe('a WebSocket client through the public ingress to a JS handler', { timeout: 20_000 }, () => {
  let proxy;
  let ep;

  before(async () => {
    proxy = await startProxy(['--domain', 'tunnel.test']);
    ep = await HttpWs.connect(proxy.url, { name: 'wsapp', public: true, WebSocket });
  });

  after(async () => {
    await ep?.close();
    await proxy?.stop();
  });

  /** A client-to-server WebSocket frame (masked, FIN set): RFC 6455 §5.2. */
  function maskedFrame(opcode, payload) {
    assert.ok(payload.length < 126);
    const mask = randomBytes(4);
    const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
    return Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | payload.length]), mask, masked]);
  }

  test('the handshake and the frames pass through as they are, both ways', async () => {
    let accepted;
    const got = new Promise((resolve) => { accepted = resolve; });
    ep.onrequest = (req, info) => {
      assert.equal(info.from, '-internet-');
      assert.equal(req.headers.get('upgrade'), 'websocket');
      const key = info.headers.get('sec-websocket-key');
      const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      const s = info.upgrade({ 'Sec-WebSocket-Accept': accept });
      const frames = collect(s);
      accepted({ s, frames });
    };
    const client = await tcp(proxy.port);
    client.write('GET /chat HTTP/1.1\r\nHost: wsapp.tunnel.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    const head = await client.until((b) => b.includes('\r\n\r\n'), 'the 101');
    const answer = parseHttp(head);
    assert.equal(answer.start, 'HTTP/1.1 101 Switching Protocols');
    assert.equal(answer.header('upgrade'), 'websocket');
    assert.equal(answer.header('connection'), 'Upgrade');
    assert.equal(answer.header('sec-websocket-accept'), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=', 'the handler\'s accept, for the RFC 6455 sample key');
    const { s, frames } = await got;

    // A masked text frame from the client reaches the handler byte for byte.
    const hello = maskedFrame(0x1, Buffer.from('hello'));
    client.write(hello);
    await frames.until(hello.length);
    assert.ok(frames.bytes().equals(hello), 'the handler gets the raw WebSocket frame');
    // The handler's unmasked frame reaches the client as it is, right after the 101's head.
    const at = head.indexOf('\r\n\r\n') + 4;
    const reply = Buffer.concat([Buffer.from([0x81, 5]), Buffer.from('world')]);
    s.send(reply);
    const read = await client.until((b) => b.length >= at + reply.length, 'the reply frame');
    assert.ok(read.subarray(at).equals(reply), 'the client gets the handler\'s frame');

    // The client ends its side: the handler's socket sees the end, ends its own, and the
    // proxy ends the client's connection.
    const ended = next(s, 'end');
    client.conn.end();
    await ended;
    s.close();
    await client.ended;
    assert.equal((await s.closed).wasClean, true);
    assert.equal(ep.openStreams, 0);
  });
});
