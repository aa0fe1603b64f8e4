// WebRTC signaling over httpws: each page is an httpws endpoint, and the signaling messages
// are ordinary HTTP requests between endpoints, relayed by the proxy:
//
//   alice → POST http://bob/offer       body: SDP offer      → response body: SDP answer
//   alice → POST http://bob/candidate   body: ICE candidate (JSON), as they are found
//   bob   → POST http://alice/candidate body: ICE candidate (JSON), as they are found
//
// Bob needs no configuration: the proxy stamps every relayed request with `Httpws-From:
// <caller's address>` (replacing anything the caller wrote), so bob learns who calls from
// it and sends his candidates back to that address. Once ICE connects, the data channel runs
// peer to peer; the proxy only carried the handshake.
//
// The page is served by the proxy (`httpws proxy --serve-demo`) and trusted as the proxy's
// own, so it must not be a tool against its users: it connects only back to the origin that
// served it; the query (`?name=…&peer=…`) only fills in the fields, and registering and calling
// each take a click; names are checked against the address grammar before they go into a URL
// (`peer=printer/admin?x` is refused, not sent); the token is typed, never read from the URL;
// and while a call is up or being set up, an offer from anyone but its peer is answered 409.
// The proxy serves the page with a CSP that forbids framing it and connecting elsewhere.
//
// For tests, `window.demo` mirrors the state: {state, address, peer, received, sent,
// errors, requests, log}.

import { HttpWs, isValidAddress } from '/httpws.js';

/** A call that has not connected by then is given up, so that nobody keeps the page busy. */
const CALL_SETUP_MS = 30_000;
/** Candidates kept for a call whose remote description is not set yet. */
const MAX_EARLY_CANDIDATES = 64;

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

const demo = {
  /** idle | connecting | registered | calling | connected | call-failed | refused | disconnected */
  state: 'idle',
  address: null,
  peer: null,
  /** Data-channel messages from the peer, in order. */
  received: [],
  sent: [],
  /** {what, token?, status?, message} for every failure shown to the user. */
  errors: [],
  /** {method, path, from, status} of every request other endpoints sent this page. */
  requests: [],
  log: [],
};
window.demo = demo;

/** The registered endpoint (null until connected). */
let ep = null;
/**
 * The one call this page has at a time:
 * {peer, pc, channel, remoteSet, early: [remote candidates that came before the remote
 *  description], outbox: [own candidates not sent yet], canSend}.
 */
let call = null;

/** Query parameters older versions of this page obeyed, and why this one does not. */
const IGNORED = {
  token: 'type the token into the field (a token in a link ends up in histories and logs)',
  proxy: 'this page connects only to the proxy that served it',
  call: 'calling takes a click on Call',
};

// --- the page --------------------------------------------------------------------------------

// A link may fill in the fields, nothing more: what it says is shown, and acted on only when
// the user presses Connect or Call (and only if it is an address).
$('name').value = params.get('name') ?? '';
$('peer').value = params.get('peer') ?? '';

function log(text, cls = '') {
  demo.log.push(text);
  const line = document.createElement('div');
  line.textContent = `${new Date().toISOString().slice(11, 23)}  ${text}`;
  if (cls) line.className = cls;
  $('log').append(line);
}

function fail(what, message, extra = {}) {
  demo.errors.push({ what, message, ...extra });
  log(`✗ ${what}: ${message}`, 'err');
}

function setState(state) {
  demo.state = state;
  $('state').textContent = state;
  $('state').className = ['refused', 'call-failed', 'disconnected'].includes(state) ? 'error' : '';
  const registered = ep !== null && ep.connected;
  $('call').disabled = !registered || state === 'calling';
  $('send').disabled = call?.channel?.readyState !== 'open';
}

$('register').addEventListener('submit', (event) => {
  event.preventDefault();
  connect();
});
$('dial').addEventListener('submit', (event) => {
  event.preventDefault();
  startCall($('peer').value.trim());
});
$('chat').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = $('message').value;
  if (text && call?.channel?.readyState === 'open') {
    send(call.channel, text);
    $('message').value = '';
  }
});

// --- registering ---------------------------------------------------------------------------

/**
 * The proxy is the origin that served this page (ws:// or wss:// to match http/https), and no
 * other: the typed token goes nowhere else, whatever a link says.
 */
function proxyUrl() {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`;
}

/** `text` if it is an address (lowercase), else null with the failure shown as `what`. */
function address(what, text) {
  if (isValidAddress(text)) return text.toLowerCase();
  fail(what, `${JSON.stringify(text.slice(0, 80))} is not an address (letters, digits, - and ., ` +
    'like bob or team-a.bob): nothing was sent', { token: 'bad-address' });
  return null;
}

async function connect() {
  const name = address('register', $('name').value.trim());
  if (name === null) return;
  const token = $('token').value.trim();
  if (ep) {
    // Connect again (e.g. under another name): leave the old registration first.
    const old = ep;
    ep = null;
    hangUp();
    await old.close();
  }
  setState('connecting');
  log(`registering "${name}" on ${proxyUrl()} …`);
  let me;
  try {
    me = await HttpWs.connect(proxyUrl(), {
      name,
      token: token || undefined,
      onrequest: handleRequest,
    });
  } catch (err) {
    // A browser cannot see why a WebSocket handshake failed, so the client's message lists
    // the possible causes (name taken, token refused, origin not allowed, proxy down).
    fail('register', `${err.name}: ${err.message}`, { token: err.name });
    setState('refused');
    log('fix the name or token and press Connect to retry');
    return;
  }
  ep = me;
  demo.address = ep.address;
  $('address').textContent = ep.address;
  log(`registered as "${ep.address}"`);
  ep.addEventListener('reconnect', (e) => log(`tunnel down, reconnecting in ${e.detail.delay} ms`, 'err'));
  ep.addEventListener('open', (e) => {
    if (e.detail.reconnected) log('tunnel back up');
    setState(call?.channel?.readyState === 'open' ? 'connected' : 'registered');
  });
  ep.addEventListener('error', (e) => fail(`proxy says ${e.detail.token}`, e.detail.reason, { token: e.detail.token }));
  ep.addEventListener('close', (e) => {
    if (ep !== me) return; // we closed it ourselves to connect again
    fail('tunnel closed', e.detail.reason || `code ${e.detail.code}`, { token: e.detail.error?.name });
    ep = null;
    setState('disconnected');
  });
  setState('registered');
}

// --- serving the peer's signaling requests -------------------------------------------------

/** Requests from other endpoints: `POST /offer` and `POST /candidate`. */
async function handleRequest(req) {
  // Stamped by the proxy: the true address of whoever sent this request.
  const from = req.headers.get('httpws-from') ?? '';
  const path = new URL(req.url).pathname;
  const response = await answerRequest(req, from, path);
  demo.requests.push({ method: req.method, path, from, status: response.status });
  return response;
}

async function answerRequest(req, from, path) {
  if (!isValidAddress(from)) return new Response('only endpoints may call this page\n', { status: 403 });
  if (req.method === 'POST' && path === '/offer') {
    // A call being set up or running belongs to its peer: nobody else may hang it up.
    if (call && call.peer !== from) {
      log(`offer from "${from}" refused: busy with "${call.peer}"`, 'err');
      // Whom this page is talking to is nobody else's business.
      return new Response('busy: in another call\n', { status: 409 });
    }
    log(`offer from "${from}" (Httpws-From)`);
    const c = newCall(from);
    c.pc.addEventListener('datachannel', (event) => wireChannel(c, event.channel));
    try {
      await c.pc.setRemoteDescription({ type: 'offer', sdp: await req.text() });
      await remoteDescriptionSet(c);
      await c.pc.setLocalDescription();
    } catch (err) {
      callFailed(c, 'bad-offer', `the offer from "${from}" is unusable: ${err.message}`);
      return new Response(`unusable offer: ${err.message}\n`, { status: 400 });
    }
    // The answer goes back in the response; our candidates follow it as requests to the
    // caller, sent from here on (the caller queues any that overtake the answer).
    c.canSend = true;
    flushOutbox(c);
    setState('registered');
    return new Response(c.pc.localDescription.sdp, { headers: { 'content-type': 'application/sdp' } });
  }
  if (req.method === 'POST' && path === '/candidate') {
    // Only the peer of the current call may add candidates to it.
    if (!call || call.peer !== from) {
      return new Response(`no call with ${from}\n`, { status: 409 });
    }
    const candidate = await req.json().catch(() => null);
    if (candidate === null || typeof candidate !== 'object') return new Response('not a candidate\n', { status: 400 });
    if (call.remoteSet) {
      await addCandidate(call, candidate);
    } else if (call.early.length < MAX_EARLY_CANDIDATES) {
      call.early.push(candidate);
    } else {
      return new Response('too many candidates before the offer\n', { status: 429 });
    }
    return new Response(null, { status: 204 });
  }
  return new Response(`no ${req.method} ${path} here\n`, { status: 404 });
}

// --- calling -------------------------------------------------------------------------------

async function startCall(text) {
  if (!ep) return;
  const peer = address('call', text);
  if (peer === null) return;
  if (peer === ep.address) {
    fail('call', 'this page cannot call itself', { token: 'bad-address' });
    return;
  }
  const c = newCall(peer);
  setState('calling');
  // The caller opens the data channel; creating it before the offer puts it in the SDP.
  wireChannel(c, c.pc.createDataChannel('chat'));
  await c.pc.setLocalDescription();
  if (call !== c) return; // hung up or replaced meanwhile
  log(`calling "${peer}": POST http://${peer}/offer`);
  let res;
  try {
    res = await ep.fetch(`http://${peer}/offer`, {
      method: 'POST',
      headers: { 'content-type': 'application/sdp' },
      body: c.pc.localDescription.sdp,
    });
  } catch (err) {
    // No response can come: the tunnel is down (tunnel-down, target-gone, timeout, …).
    return callFailed(c, err.name, `${err.name}: ${err.message}`);
  }
  if (!res.ok) {
    // The proxy's own answers carry Httpws-Error: 404 unknown-address when nobody holds
    // that name (the peer's page is not open yet), 403 forbidden, 504 timeout, …
    const token = res.headers.get('httpws-error') ?? `http-${res.status}`;
    const hint = token === 'unknown-address' ? ` ("${peer}" is not connected: open its page, then Call again)`
      : res.status === 409 ? ` ("${peer}" is busy in another call)` : '';
    return callFailed(c, token, `${res.status} ${token}${hint}`, res.status);
  }
  if (call !== c) return; // hung up or replaced meanwhile
  await c.pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
  await remoteDescriptionSet(c);
  log(`answer from "${peer}"; exchanging ICE candidates`);
  // Our candidates were held until now so that none reaches the peer before the offer does.
  c.canSend = true;
  flushOutbox(c);
}

function callFailed(c, token, message, status) {
  fail('call', message, { token, status });
  if (call === c) hangUp();
  setState('call-failed');
}

/** A fresh RTCPeerConnection for a call with `peer`, replacing any previous call. */
function newCall(peer) {
  hangUp();
  // No STUN/TURN: host candidates only, enough on loopback and a LAN, no internet needed.
  const pc = new RTCPeerConnection({ iceServers: [] });
  const c = { peer, pc, channel: null, remoteSet: false, early: [], outbox: [], canSend: false, timer: null };
  call = c;
  demo.peer = peer;
  c.timer = setTimeout(() => {
    if (call === c && c.channel?.readyState !== 'open') {
      callFailed(c, 'setup-timeout', `no connection with "${peer}" within ${CALL_SETUP_MS / 1000} s`);
    }
  }, CALL_SETUP_MS);
  pc.addEventListener('icecandidate', ({ candidate }) => {
    // null marks the end of gathering; the peer does not need to be told (no fallback).
    if (!candidate) return;
    log(`ICE candidate found: ${candidate.address ?? '?'} ${candidate.protocol ?? ''} ${candidate.type ?? ''}`.trim());
    c.outbox.push(candidate.toJSON());
    flushOutbox(c);
  });
  pc.addEventListener('connectionstatechange', () => {
    log(`peer connection: ${pc.connectionState}`);
    if (pc.connectionState === 'failed' && call === c) callFailed(c, 'ice-failed', 'ICE found no working path');
  });
  return c;
}

function hangUp() {
  if (!call) return;
  clearTimeout(call.timer);
  call.channel?.close();
  call.pc.close();
  call = null;
}

/** Send queued own candidates to the peer, once sending is allowed. */
function flushOutbox(c) {
  if (!c.canSend) return;
  for (const candidate of c.outbox.splice(0)) {
    ep?.fetch(`http://${c.peer}/candidate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(candidate),
    }).then(
      (res) => { if (!res.ok) fail('candidate', `${res.status} ${res.headers.get('httpws-error') ?? ''}`.trim(), { status: res.status }); },
      (err) => fail('candidate', `${err.name}: ${err.message}`, { token: err.name }),
    );
  }
}

/** Apply the candidates that arrived before the remote description could take them. */
async function remoteDescriptionSet(c) {
  c.remoteSet = true;
  for (const candidate of c.early.splice(0)) await addCandidate(c, candidate);
}

async function addCandidate(c, candidate) {
  try {
    await c.pc.addIceCandidate(candidate);
  } catch (err) {
    fail('candidate', `cannot add ${candidate.candidate}: ${err.message}`);
  }
}

// --- the data channel ----------------------------------------------------------------------

function wireChannel(c, channel) {
  c.channel = channel;
  channel.addEventListener('open', () => {
    log(`data channel open with "${c.peer}" (peer to peer now)`);
    setState('connected');
    // The caller speaks first; the callee answers whatever it hears.
    if (channel.label === 'chat' && c.pc.localDescription?.type === 'offer') {
      send(channel, `hello ${c.peer} from ${demo.address}`);
    }
  });
  channel.addEventListener('message', (event) => {
    demo.received.push(event.data);
    log(`← ${c.peer}: ${event.data}`, 'rx');
    // The callee answers every message, so the caller can see the round trip.
    if (c.pc.localDescription?.type === 'answer') {
      send(channel, `hi ${c.peer}, ${demo.address} here — got "${event.data}"`);
    }
  });
  channel.addEventListener('close', () => {
    log(`data channel with "${c.peer}" closed`);
    if (call !== c) return;
    // The call is over: the page takes offers from anyone again.
    hangUp();
    setState(ep?.connected ? 'registered' : 'disconnected');
  });
}

function send(channel, text) {
  channel.send(text);
  demo.sent.push(text);
  log(`→ ${text}`);
}

// Start: nothing happens until a click.
for (const ignored of ['token', 'proxy', 'call']) {
  if (params.has(ignored)) log(`?${ignored}= is ignored: ${IGNORED[ignored]}`, 'err');
}
log($('name').value ? `press Connect to register as ${JSON.stringify($('name').value)}` : 'enter a name and press Connect');
