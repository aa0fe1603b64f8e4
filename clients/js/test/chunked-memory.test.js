// A hostile caller's chunked body must cost the endpoint what the proxy's message limit
// allows, not memory and time per chunk: a 16 MiB message of 1-byte chunks (2.8 million of
// them) is refused by the chunk cap after one scan, without per-chunk objects, and the event
// loop stays responsive. Its own file: node runs each test file in a process of its own, so
// the peak RSS measured here is this test's alone.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { HttpWs, MAX_CHUNKS } from '../httpws.js';
import { WebSocket, parseHttp, rawEndpoint, startProxy, targetError } from './helpers.js';

const MIB = 1024 * 1024;
/**
 * The proxy's default --max-message-bytes, which the whole message must fit, less room for
 * what the proxy adds on the way (`Httpws-From`, a longer CSeq).
 */
const MESSAGE_LIMIT = 16 * MIB - 1024;
/**
 * Peak RSS growth allowed while the message is sent, received and refused: the sender's
 * masked copy, the receiver's frame buffers and the assembled message are about 16 MiB each.
 * Before the fix this was ~300 MiB (an object and a string per chunk).
 */
const RSS_BUDGET = 64 * MIB;
/** Longest the event loop may stall on the message (before the fix: ~2 s). */
const STALL_BUDGET_MS = 750;

describe('chunked bodies cost bytes, not chunks', { timeout: 60_000 }, () => {
  let proxy;
  let js;
  let raw;
  let handled = 0;

  before(async () => {
    proxy = await startProxy();
    js = await HttpWs.connect(proxy.url, { name: 'js-ep', WebSocket });
    js.onrequest = async (req) => {
      handled += 1;
      return new Response(`${(await req.arrayBuffer()).byteLength}`);
    };
    raw = await rawEndpoint(proxy.url, 'raw');
  });

  after(async () => {
    raw?.close();
    await js?.close();
    await proxy?.stop();
  });

  test('a 16 MiB message of 1-byte chunks: refused by the cap, memory and loop bounded', async () => {
    const head = Buffer.from('POST /c HTTP/1.1\r\nHost: js-ep\r\nCSeq: 1\r\nTransfer-Encoding: chunked\r\n\r\n');
    const CHUNK = '1\r\nx\r\n';
    const END = '0\r\n\r\n';
    const count = Math.floor((MESSAGE_LIMIT - head.length - END.length) / CHUNK.length);
    assert.ok(count > 2_000_000, `${count} chunks`);
    const message = Buffer.concat([head, Buffer.alloc(count * CHUNK.length, CHUNK), Buffer.from(END)]);
    assert.ok(message.length <= MESSAGE_LIMIT);

    const stalls = monitorEventLoopDelay({ resolution: 10 });
    const rssBefore = process.resourceUsage().maxRSS * 1024;
    stalls.enable();
    raw.send(message);
    const res = parseHttp(await raw.next());
    stalls.disable();
    const grown = process.resourceUsage().maxRSS * 1024 - rssBefore;
    const stallMs = stalls.max / 1e6;

    assert.match(res.start, /^HTTP\/1\.1 400 /);
    assert.equal(res.header('cseq'), '1');
    assert.equal(targetError(res), 'bad-request');
    assert.match(res.body.toString(), new RegExp(`more than ${MAX_CHUNKS} chunks`));
    assert.equal(handled, 0, 'the handler never saw it');
    assert.ok(grown < RSS_BUDGET, `peak RSS grew by ${(grown / MIB).toFixed(0)} MiB (budget ${RSS_BUDGET / MIB})`);
    assert.ok(stallMs < STALL_BUDGET_MS, `the event loop stalled for ${stallMs.toFixed(0)} ms`);
  });

  test('a large body in chunks under the cap is decoded whole, into one buffer', async () => {
    const size = 200;
    const count = MAX_CHUNKS;
    const chunk = Buffer.concat([Buffer.from(`${size.toString(16)}\r\n`), Buffer.alloc(size, 'y'), Buffer.from('\r\n')]);
    const message = Buffer.concat([
      Buffer.from('POST /big HTTP/1.1\r\nHost: js-ep\r\nCSeq: 2\r\nTransfer-Encoding: chunked\r\n\r\n'),
      Buffer.alloc(chunk.length * count, chunk),
      Buffer.from('0\r\nX-Trailer: dropped\r\n\r\n'),
    ]);
    raw.send(message);
    const res = parseHttp(await raw.next());
    assert.match(res.start, /^HTTP\/1\.1 200 /);
    assert.equal(res.body.toString(), String(size * count));
    assert.equal(handled, 1);
  });
});
