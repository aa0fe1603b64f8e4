// Headless Chromium drives the WebRTC signaling demo (examples/webrtc) through a real httpws
// proxy: bob's page registers, alice's page calls him, the SDP offer/answer and ICE
// candidates travel as HTTP requests over the proxy, and a message crosses the data channel
// both ways. Then two failures the page must show: calling an address nobody holds (404
// unknown-address; Call again once the peer is there connects), and a page whose origin the
// proxy does not allow (handshake refused).
//
//   node webrtc.mjs --page http://127.0.0.1:PORT [--proxy ws://127.0.0.1:PORT] [--no-origin-check]
//
// --page   where /webrtc/ and /httpws.js are served (`httpws proxy --serve-demo`, or serve.mjs)
// --proxy  the proxy, when it is not the page's own origin (passed to the page as ?proxy=)
// The origin check loads the page from http://localhost:PORT instead of 127.0.0.1, an origin
// the proxy must refuse. CHROMIUM overrides the browser (default /usr/bin/chromium).
// Exits 0 on success; on failure prints why, with every page's console and log.

import { chromium } from 'playwright-core';

/** The whole run; a hang anywhere ends in a report, not a stuck test. */
const OVERALL_MS = 30_000;
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
const opt = (name) => {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : undefined;
};
const pageBase = opt('--page');
const proxy = opt('--proxy');
const originCheck = !args.includes('--no-origin-check');
if (!pageBase) {
  console.error('usage: node webrtc.mjs --page http://127.0.0.1:PORT [--proxy ws://127.0.0.1:PORT] [--no-origin-check]');
  process.exit(2);
}

const started = Date.now();
const pages = new Map(); // label → {page, console: [lines]}
let browser;

const overall = setTimeout(async () => {
  await report(new Error(`the whole run took longer than ${OVERALL_MS} ms`));
  process.exit(1);
}, OVERALL_MS);

try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: WAIT_MS,
  });
  const context = await browser.newContext({ permissions: PERMISSIONS });

  // Bob first: he must be registered before alice calls.
  const bob = await open(context, 'bob', demoUrl(pageBase, { name: 'bob' }));
  await waitState(bob, ['registered'], ['refused']);

  const alice = await open(context, 'alice', demoUrl(pageBase, { name: 'alice', peer: 'bob', call: '1' }));
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

  // Calling an address nobody holds: the proxy answers 404 Httpws-Error: unknown-address,
  // and the page says so and stays registered; once dave's page is open, Call again works.
  const carol = await open(context, 'carol', demoUrl(pageBase, { name: 'carol', peer: 'dave', call: '1' }));
  await waitState(carol, ['call-failed'], ['connected']);
  const c = await state(carol);
  check(c.errors[0]?.token === 'unknown-address' && c.errors[0]?.status === 404,
    `carol's call failed with ${JSON.stringify(c.errors[0])}`);
  const dave = await open(context, 'dave', demoUrl(pageBase, { name: 'dave' }));
  await waitState(dave, ['registered'], ['refused']);
  await carol.click('#call', { timeout: WAIT_MS });
  await waitFor(carol, 'carol to hear back from dave after retrying', () => window.demo.received.length >= 1);
  console.log('calling an unknown address: shown as 404 unknown-address; the retry connects');

  if (originCheck) {
    // Same files, another origin (localhost, not 127.0.0.1): the proxy must refuse the page.
    const foreign = new URL(pageBase);
    foreign.hostname = 'localhost';
    const ownProxy = proxy ?? `ws://${new URL(pageBase).host}`;
    const mallory = await open(context, 'mallory',
      demoUrl(foreign.href, { name: 'mallory' }, ownProxy));
    await waitState(mallory, ['refused'], ['registered']);
    const m = await state(mallory);
    check(m.errors[0]?.token === 'connect-failed', `mallory's registration failed with ${JSON.stringify(m.errors[0])}`);
    console.log(`a page from ${foreign.origin}: registration refused`);
  }

  console.log(`ok (${Date.now() - started} ms)`);
  clearTimeout(overall);
  await browser.close();
  process.exit(0);
} catch (err) {
  clearTimeout(overall);
  await report(err);
  process.exit(1);
}

/** The demo page URL under `base`, with query `params` (and ?proxy= where one is set). */
function demoUrl(base, params, proxyUrl = proxy) {
  const url = new URL('/webrtc/', base);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  if (proxyUrl) url.searchParams.set('proxy', proxyUrl);
  return url.href;
}

async function open(context, label, url) {
  const page = await context.newPage();
  const lines = [];
  pages.set(label, { page, lines });
  page.on('console', (msg) => lines.push(`console.${msg.type()}: ${msg.text()}`));
  page.on('pageerror', (err) => lines.push(`pageerror: ${err.stack ?? err}`));
  page.on('requestfailed', (req) => lines.push(`requestfailed: ${req.url()} ${req.failure()?.errorText}`));
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
  for (const [label, { page, lines }] of pages) {
    console.error(`--- page ${label}: ${page.url()}`);
    for (const line of lines) console.error(`  ${line}`);
    const demo = await Promise.race([
      page.evaluate(() => window.demo && JSON.parse(JSON.stringify(window.demo))).catch((e) => `(unreadable: ${e.message})`),
      new Promise((resolve) => setTimeout(() => resolve('(no answer from the page)'), 2_000)),
    ]);
    if (demo && typeof demo === 'object') {
      console.error(`  state=${demo.state} address=${demo.address} peer=${demo.peer} received=${JSON.stringify(demo.received)}`);
      for (const line of demo.log) console.error(`  | ${line}`);
    } else {
      console.error(`  demo: ${demo}`);
    }
  }
  await Promise.race([browser?.close(), new Promise((resolve) => setTimeout(resolve, 3_000))]);
}
