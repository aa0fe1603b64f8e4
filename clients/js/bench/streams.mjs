// Throughput of the JS client's streams (protocol 2) against whole messages (protocol 1) in
// the same run, through one real proxy on loopback: the same bytes sent as 1 MiB whole
// requests (the baseline), as one streamed upload, and as one streamed download; prints MiB/s
// of each and their ratios to the baseline. Bounded: BENCH_MIB (default 64) MiB per case.
//
//   HTTPWS_BIN=../../target/release/httpws node bench/streams.mjs

import { createHash } from 'node:crypto';
import WebSocket from 'ws';
import { HttpWs } from '../httpws.js';
import { startProxy } from '../test/helpers.js';

const MIB = 1024 * 1024;
/** Bytes moved by each case. */
const TOTAL = Number(process.env.BENCH_MIB ?? 64) * MIB;
/** The baseline's request size: whole messages, well under the 16 MiB message limit. */
const WHOLE_REQUEST = 1 * MIB;
/** The streamed bodies' chunk size, as a source of network or file data would give them. */
const CHUNK = 64 * 1024;

const chunk = new Uint8Array(CHUNK).map((_, i) => i);
const whole = new Uint8Array(WHOLE_REQUEST).map((_, i) => i);

/** A body of TOTAL bytes made of `chunk` as it is pulled. */
function source() {
  let made = 0;
  return new ReadableStream({
    pull(controller) {
      controller.enqueue(chunk.slice());
      made += CHUNK;
      if (made >= TOTAL) controller.close();
    },
  });
}

async function timed(what, run) {
  const started = process.hrtime.bigint();
  await run();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { what, seconds, mibs: TOTAL / MIB / seconds };
}

const proxy = await startProxy();
try {
  const p1Caller = await HttpWs.connect(proxy.url, { name: 'p1-caller', WebSocket, streams: false });
  const p1Server = await HttpWs.connect(proxy.url, { name: 'p1-server', WebSocket, streams: false });
  const caller = await HttpWs.connect(proxy.url, { name: 'caller', WebSocket });
  const server = await HttpWs.connect(proxy.url, { name: 'server', WebSocket });
  const count = async (req) => {
    let n = 0;
    for await (const c of req.body) n += c.length;
    return new Response(String(n));
  };
  p1Server.onrequest = count;
  server.onrequest = (req) => (req.method === 'GET' ? new Response(source()) : count(req));

  const results = [];
  results.push(await timed('protocol 1, 1 MiB whole requests', async () => {
    for (let sent = 0; sent < TOTAL; sent += WHOLE_REQUEST) {
      const res = await p1Caller.fetch('http://p1-server/up', { method: 'POST', body: whole });
      if (Number(await res.text()) !== WHOLE_REQUEST) throw new Error('short whole request');
    }
  }));
  results.push(await timed('protocol 2, one streamed upload', async () => {
    const res = await caller.fetch('http://server/up', { method: 'POST', body: source() });
    if (Number(await res.text()) < TOTAL) throw new Error('short upload');
  }));
  results.push(await timed('protocol 2, one streamed download', async () => {
    const res = await caller.fetch('http://server/down');
    const hash = createHash('sha256');
    let n = 0;
    for await (const c of res.body) {
      hash.update(c);
      n += c.length;
    }
    if (n < TOTAL) throw new Error('short download');
  }));
  const base = results[0].mibs;
  for (const r of results) {
    console.log(`${r.what.padEnd(36)} ${r.mibs.toFixed(1).padStart(8)} MiB/s  x${(r.mibs / base).toFixed(2)}  (${r.seconds.toFixed(2)} s)`);
  }
  await Promise.all([p1Caller.close(), p1Server.close(), caller.close(), server.close()]);
} finally {
  await proxy.stop();
}
