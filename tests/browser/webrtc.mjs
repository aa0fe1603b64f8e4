// Headless Chromium drives the WebRTC signaling demo (examples/webrtc) through a real httpws
// proxy that serves it (`--serve-demo`): bob and alice register and call by clicks, the SDP
// offer/answer and ICE candidates travel as HTTP requests over the proxy, and a message
// crosses the data channel both ways. Then what the page must refuse or survive:
//
//   - a link's query acts on nothing: it fills in name and peer only; ?token= and ?call=1
//     are ignored, and ?proxy= does not move the connection (the page's CSP would not let it
//     either: a WebSocket to another origin is a connect-src violation);
//   - a third endpoint's offer during a call is answered 409, and the call goes on;
//   - calling an address nobody holds shows 404 unknown-address; Call again works later;
//   - a peer or name that is not an address (printer/admin/factory-reset?…) is refused
//     before anything is sent;
//   - another site cannot frame the demo (frame-ancestors 'none', X-Frame-Options: DENY);
//   - a page from another origin can import /httpws.js (CORS) but not register.
//
//   node webrtc.mjs --page http://127.0.0.1:PORT
//
// --page is the proxy, which serves /webrtc/ and /httpws.js. CHROMIUM overrides the browser
// (default /usr/bin/chromium). Exits 0 on success; on failure prints why, with every page's
// console and log.

import { createServer } from 'node:net';
import { chromium } from 'playwright-core';
import { startForeignSite } from './foreign_site.mjs';

/** The whole run; a hang anywhere ends in a report, not a stuck test. */
const OVERALL_MS = 60_000;
/** Any single wait for a page to reach a state. */
const WAIT_MS = 15_000;

/**
 * Chromium's flags. Playwright adds its own automation defaults (--no-sandbox,
 * --disable-background-networking, …, and a fresh temporary --user-data-dir that it removes
 * on close; it refuses a --user-data-dir of ours); the ones listed are those this test relies
 * on, repeated where Playwright has them too.
 */
const CHROMIUM_ARGS = [
  '--headless',
  // Containers and CI run as root without user namespaces: the sandbox cannot start.
  '--no-sandbox',
  '--disable-gpu',
  // Nothing beyond loopback is contacted (CI may have no network, and it would be slow).
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // WebRTC skips loopback interfaces unless told otherwise: where 127.0.0.1 is the only
  // address (a sandbox with no network), the peers would have no candidate at all.
  '--allow-loopback-in-peer-connection',
];
// Not needed: --disable-features=WebRtcHideLocalIpsWithMdns. Chromium disguises host
// candidates as `<uuid>.local` (resolvable only by multicast DNS) for pages without camera or
// microphone permission, and otherwise uses only the default route's interface; the context
// below grants those permissions instead, which exposes every interface, loopback included.
// (A second --disable-features would also replace Playwright's own list.)
const PERMISSIONS = ['camera', 'microphone'];

const args = process.argv.slice(2);
const at = args.indexOf('--page');
const pageBase = at >= 0 ? args[at + 1] : undefined;
if (!pageBase) {
  console.error('usage: node webrtc.mjs --page http://127.0.0.1:PORT');
  process.exit(2);
}
const proxyHost = new URL(pageBase).host;

const started = Date.now();
/** label → {page, lines: [console lines], sockets: [{url, sent}]} */
const pages = new Map();
let browser;
let foreign;
let decoy;

const overall = setTimeout(async () => {
  await report(new Error(`the whole run took longer than ${OVERALL_MS} ms`));
  process.exit(1);
}, OVERALL_MS);

try {
  // A "proxy" a link might point the page at: it must never hear from the page.
  decoy = await listenDecoy();
  foreign = await startForeignSite(new URL(pageBase).origin);
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: WAIT_MS,
  });
  const context = await browser.newContext({ permissions: PERMISSIONS });

  // 1. A link that tries to act: register, call, use its token, at its proxy. Nothing happens.
  const bob = await open(context, 'bob', demoUrl({
    name: 'bob', peer: 'alice', call: '1', token: 'from-the-link', proxy: decoy.url,
  }));
  const idle = await state(bob);
  check(idle.state === 'idle', `bob's page did nothing on load: state ${idle.state}`);
  check(await bob.inputValue('#name') === 'bob' && await bob.inputValue('#peer') === 'alice',
    'the link filled in name and peer');
  check(await bob.inputValue('#token') === '', 'the link\'s ?token= is not in the token field');
  check(await bob.getAttribute('#token', 'type') === 'password', 'the token field is a password field');
  check(['?token=', '?proxy=', '?call='].every((p) => idle.log.some((line) => line.startsWith(p))),
    `the page says what it ignored: ${JSON.stringify(idle.log)}`);
  await bob.fill('#token', 'typed-secret');
  await bob.click('#connect');
  await waitState(bob, ['registered'], ['refused']);
  const bobSockets = pages.get('bob').sockets;
  check(bobSockets.length === 1 && new URL(bobSockets[0].url).host === proxyHost,
    `bob connected to the page's own origin only: ${JSON.stringify(bobSockets.map((s) => s.url))}`);
  check(!bobSockets[0].url.includes('from-the-link'), 'the link\'s token was not used');
  // The CSP stops even a script that tries: connecting elsewhere is a connect-src violation.
  const violation = await bob.evaluate((url) => new Promise((resolve) => {
    document.addEventListener('securitypolicyviolation', (e) => resolve(e.effectiveDirective), { once: true });
    try { new WebSocket(url); } catch (err) { resolve(`threw ${err.name}`); }
  }), decoy.url);
  check(violation === 'connect-src' || violation === 'threw SecurityError', `a WebSocket to the decoy: ${violation}`);
  check(decoy.connections === 0, `the decoy proxy was contacted ${decoy.connections} times`);
  console.log('a link acts on nothing; the page connects to its own origin only');

  // 2. Alice registers and calls bob, each by a click.
  const alice = await open(context, 'alice', demoUrl({ name: 'alice', peer: 'bob' }));
  await alice.click('#connect');
  await waitState(alice, ['registered'], ['refused']);
  check((await state(bob)).requests.length === 0, 'registering alone calls nobody');
  await alice.click('#call');
  await waitFor(alice, 'alice to hear back over the data channel', () => window.demo.received.length >= 1);
  await waitFor(bob, 'bob to hear alice over the data channel', () => window.demo.received.length >= 1);
  const b = await state(bob);
  const a = await state(alice);
  check(b.peer === 'alice', `bob learned his caller from Httpws-From: peer=${b.peer}`);
  check(b.received[0] === 'hello bob from alice', `bob received ${JSON.stringify(b.received[0])}`);
  check(a.received[0]?.startsWith('hi alice, bob here') && a.received[0].includes('hello bob from alice'),
    `alice received ${JSON.stringify(a.received[0])}`);
  check(a.state === 'connected' && b.state === 'connected', `states: alice ${a.state}, bob ${b.state}`);
  check(a.errors.length === 0 && b.errors.length === 0,
    `no errors shown: ${JSON.stringify([...a.errors, ...b.errors])}`);
  console.log(`data channel: bob got "${b.received[0]}", alice got "${a.received[0]}" (${Date.now() - started} ms)`);

  // 3. Carol offers to bob during his call: 409 busy, and alice and bob still talk.
  const carol = await open(context, 'carol', demoUrl({ name: 'carol', peer: 'bob' }));
  await carol.click('#connect');
  await waitState(carol, ['registered'], ['refused']);
  await carol.click('#call');
  await waitState(carol, ['call-failed'], ['connected']);
  const c = await state(carol);
  check(c.errors[0]?.status === 409, `carol's call to a busy bob: ${JSON.stringify(c.errors[0])}`);
  const busy = await state(bob);
  check(busy.state === 'connected' && busy.peer === 'alice', `bob's call survived: ${busy.state} with ${busy.peer}`);
  check(JSON.stringify(busy.requests.at(-1)) === JSON.stringify({ method: 'POST', path: '/offer', from: 'carol', status: 409 }),
    `bob answered carol 409: ${JSON.stringify(busy.requests.at(-1))}`);
  await alice.fill('#message', 'still there?');
  await alice.click('#send');
  await waitFor(bob, 'bob to hear alice after the refused offer', () => window.demo.received.includes('still there?'));
  await waitFor(alice, 'alice to hear bob\'s reply', () => window.demo.received.length >= 2);
  console.log('an offer from a third endpoint during a call: 409, and the call goes on');

  // 4. Carol calls an address nobody holds: 404 unknown-address; once dave is there, it works.
  await carol.fill('#peer', 'dave');
  await carol.click('#call');
  await waitFor(carol, 'carol\'s call to dave to fail', () => window.demo.errors.length >= 2);
  const c2 = await state(carol);
  check(c2.errors[1]?.token === 'unknown-address' && c2.errors[1]?.status === 404,
    `carol's call to nobody failed with ${JSON.stringify(c2.errors[1])}`);
  const dave = await open(context, 'dave', demoUrl({ name: 'dave' }));
  await dave.click('#connect');
  await waitState(dave, ['registered'], ['refused']);
  await carol.click('#call');
  await waitFor(carol, 'carol to hear back from dave after retrying', () => window.demo.received.length >= 1);
  console.log('calling an unknown address: shown as 404 unknown-address; the retry connects');

  // 5. Names that are not addresses are refused before anything is sent.
  const printer = await open(context, 'printer', demoUrl({ name: 'printer' }));
  await printer.click('#connect');
  await waitState(printer, ['registered'], ['refused']);
  const eve = await open(context, 'eve', demoUrl({ name: 'eve', peer: 'printer/admin/factory-reset?confirm=1' }));
  await eve.click('#connect');
  await waitState(eve, ['registered'], ['refused']);
  await eve.click('#call');
  await waitFor(eve, 'eve\'s call to be refused', () => window.demo.errors.length >= 1);
  const e = await state(eve);
  check(e.errors[0]?.token === 'bad-address', `eve's call: ${JSON.stringify(e.errors[0])}`);
  check(e.state === 'registered', `eve is still registered, calling nobody: ${e.state}`);
  check(pages.get('eve').sockets.every((s) => s.sent === 0), 'eve sent no message at all');
  check((await state(printer)).requests.length === 0, 'the printer received no request');
  const bad = await open(context, 'bad-name', demoUrl({ name: 'bad/name' }));
  await bad.click('#connect');
  await waitFor(bad, 'the bad name to be refused', () => window.demo.errors.length >= 1);
  const bn = await state(bad);
  check(bn.errors[0]?.token === 'bad-address' && bn.state === 'idle', `name bad/name: ${bn.state} ${JSON.stringify(bn.errors[0])}`);
  check(pages.get('bad-name').sockets.length === 0, 'no WebSocket for a bad name');
  console.log('a peer or name that is not an address: refused, nothing sent');

  // 6. Another site frames the demo: the browser refuses to show it.
  const framer = await open(context, 'framer', `${foreign.origin}/frame.html`);
  await framer.waitForFunction(() => document.getElementById('demo') !== null, null, { timeout: WAIT_MS });
  const frame = await (await framer.$('#demo')).contentFrame();
  await frame.waitForLoadState('load', { timeout: WAIT_MS }).catch(() => {});
  const framed = await frame.evaluate(() => typeof window.demo).catch((err) => `unreadable (${err.message.split('\n')[0]})`);
  check(framed !== 'object', `the framed demo did not load: window.demo is ${framed} in ${frame.url()}`);
  console.log(`a framed demo is refused (${frame.url()})`);

  // 7. A page from another origin imports the client (CORS) but may not register.
  const mallory = await open(context, 'mallory', `${foreign.origin}/mallory.html`);
  await waitFor(mallory, 'mallory\'s attempt to end', () => window.result?.done === true);
  const m = await mallory.evaluate(() => window.result);
  check(m.imported === true, `mallory's page imported /httpws.js across origins: ${JSON.stringify(m)}`);
  check(m.error === 'connect-failed', `mallory's registration failed with ${m.error}`);
  console.log(`a page from ${foreign.origin}: imports /httpws.js, registration refused`);

  check(decoy.connections === 0, `the decoy proxy was contacted ${decoy.connections} times`);
  console.log(`ok (${Date.now() - started} ms)`);
  clearTimeout(overall);
  await browser.close();
  await foreign.close();
  decoy.close();
  process.exit(0);
} catch (err) {
  clearTimeout(overall);
  await report(err);
  process.exit(1);
}

/** The demo page URL, with query `params`. */
function demoUrl(params) {
  const url = new URL('/webrtc/', pageBase);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  return url.href;
}

/** A TCP listener that only counts who connects: `{url, connections, close()}`. */
async function listenDecoy() {
  const server = createServer((socket) => {
    decoyState.connections += 1;
    socket.destroy();
  });
  const decoyState = { connections: 0, url: '', close: () => server.close() };
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  decoyState.url = `ws://127.0.0.1:${server.address().port}`;
  return decoyState;
}

async function open(context, label, url) {
  const page = await context.newPage();
  const lines = [];
  const sockets = [];
  pages.set(label, { page, lines, sockets });
  page.on('console', (msg) => lines.push(`console.${msg.type()}: ${msg.text()}`));
  page.on('pageerror', (err) => lines.push(`pageerror: ${err.stack ?? err}`));
  page.on('requestfailed', (req) => lines.push(`requestfailed: ${req.url()} ${req.failure()?.errorText}`));
  page.on('websocket', (ws) => {
    const socket = { url: ws.url(), sent: 0 };
    sockets.push(socket);
    ws.on('framesent', () => { socket.sent += 1; });
  });
  await page.goto(url, { timeout: WAIT_MS });
  return page;
}

async function state(page) {
  return page.evaluate(() => JSON.parse(JSON.stringify(window.demo)));
}

async function waitFor(page, what, predicate, arg) {
  try {
    await page.waitForFunction(predicate, arg, { timeout: WAIT_MS, polling: 50 });
  } catch (err) {
    throw new Error(`timed out after ${WAIT_MS} ms waiting for ${what}: ${err.message.split('\n')[0]}`);
  }
}

/** Wait until the page's demo.state is one of `want`; one of `fatal` ends the wait early. */
async function waitState(page, want, fatal) {
  const label = [...pages].find(([, p]) => p.page === page)?.[0];
  await waitFor(page, `${label} to reach ${want.join('|')}`,
    ([w, f]) => w.includes(window.demo?.state) || f.includes(window.demo?.state), [want, fatal]);
  const now = (await state(page)).state;
  check(want.includes(now), `${label} reached ${now}, wanted ${want.join('|')}`);
}

function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
}

/** Print the failure and everything each page said, then close the browser (bounded). */
async function report(err) {
  console.error(`FAILED after ${Date.now() - started} ms: ${err.stack ?? err}`);
  for (const [label, { page, lines, sockets }] of pages) {
    console.error(`--- page ${label}: ${page.url()}`);
    for (const line of lines) console.error(`  ${line}`);
    for (const s of sockets) console.error(`  websocket ${s.url} (${s.sent} frames sent)`);
    const demo = await Promise.race([
      page.evaluate(() => window.demo && JSON.parse(JSON.stringify(window.demo))).catch((e) => `(unreadable: ${e.message})`),
      new Promise((resolve) => setTimeout(() => resolve('(no answer from the page)'), 2_000)),
    ]);
    if (demo && typeof demo === 'object') {
      console.error(`  state=${demo.state} address=${demo.address} peer=${demo.peer} received=${JSON.stringify(demo.received)}`);
      console.error(`  requests=${JSON.stringify(demo.requests)} errors=${JSON.stringify(demo.errors)}`);
      for (const line of demo.log) console.error(`  | ${line}`);
    } else {
      console.error(`  demo: ${demo}`);
    }
  }
  await Promise.race([browser?.close(), new Promise((resolve) => setTimeout(resolve, 3_000))]);
  await foreign?.close();
  decoy?.close();
}
