// httpws.js — the httpws endpoint client for browsers and Node (an ES module, no build step,
// no dependencies).
//
// An httpws endpoint holds one WebSocket to an httpws proxy and is known there by a virtual
// address. Through that socket it calls other endpoints with `fetch()` semantics (each request
// is an HTTP/1.1 message carrying `Host: <address>` and a `CSeq`, matched to its response)
// and serves the requests other endpoints send it with an `onrequest` handler that takes a
// standard `Request` and returns a standard `Response`. It re-registers under the same name
// when the tunnel drops. The wire contract is docs/protocol.md in the httpws repository.
//
// It offers protocol 2 (§12, the `httpws.2` subprotocol) and falls back to protocol 1 when the
// proxy does not choose it. In protocol 2 small bodies still travel whole, one message per HTTP
// message; large, unknown-length and endless ones stream as data messages under per-stream
// flow control (credit), so `fetch()` resolves at the response head with a streaming body, a
// request body may be a ReadableStream, and a handler's request and response bodies stream;
// and upgrades (`101 Switching Protocols`, a WebSocket handshake or any other) turn an exchange
// into a WebSocket-like byte socket both ways: `ep.upgrade()` as the caller, `info.upgrade()`
// in a handler.
//
//   import { HttpWs } from './httpws.js';
//   const ep = await HttpWs.connect('wss://relay.example.com', { name: 'alice', token });
//   ep.onrequest = async (req) => new Response(`hello ${req.headers.get('httpws-from')}`);
//   const res = await ep.fetch('http://bob/offer', { method: 'POST', body: sdp });

/** Defaults for {@link ConnectOptions}. */
export const DEFAULTS = Object.freeze({
  /** Client-side deadline for a response, ms: a backstop behind the proxy's own 30 s. */
  timeout: 35_000,
  /** Time allowed from opening the WebSocket to the `:host` indication, ms. */
  connectTimeout: 10_000,
  /** Requests this endpoint may have waiting for responses at once. */
  maxPending: 4096,
  /** Incoming requests whose handler may run at once (more are answered 503 target-busy). */
  maxConcurrentHandlers: 1024,
  /**
   * Bytes of incoming requests (whole messages) that running handlers may hold at once; a
   * request that would go over is answered 503 target-busy instead of being held.
   */
  maxHandlerBytes: 64 * 1024 * 1024,
  /**
   * Largest whole message sent or accepted, bytes (the proxy's default --max-message-bytes).
   * In protocol 2 a larger body streams instead; this bounds whole messages only.
   */
  maxMessageBytes: 16 * 1024 * 1024,
  /** Bytes the WebSocket may have buffered unsent before fetch() fails with tunnel-busy. */
  maxBufferedBytes: 32 * 1024 * 1024,
  /** First reconnect delay, ms; it doubles on each failed or short-lived attempt... */
  reconnectMin: 100,
  /** ...up to this, ms. Each delay is drawn uniformly from the upper half of the interval. */
  reconnectMax: 5_000,
});

/** Largest HTTP head accepted in an incoming message (the proxy's own limit is 16 KiB). */
const MAX_HEAD_BYTES = 64 * 1024;
/** Most header lines accepted in an incoming message (the proxy allows 64). */
const MAX_HEADERS = 100;
/**
 * Most chunks an incoming chunked body may have. Decoding costs a scan step per chunk (no
 * allocation), and this bounds it: a 16 MiB message of 1-byte chunks would hold 2.8 million.
 * Senders batch far larger chunks than the 256 bytes this leaves on average at 16 MiB.
 */
export const MAX_CHUNKS = 65_536;
/** Longest chunk-size line (size and extensions) or trailer line in a chunked body, bytes. */
const MAX_CHUNK_LINE_BYTES = 4096;
/**
 * What the proxy may add to a message on its way here (`Httpws-From: <253-byte address>`, a
 * CSeq of up to 20 digits): an incoming message may exceed `maxMessageBytes` by this much.
 */
const RELAY_STAMP_BYTES = 512;
/** A registration that lasted this long resets the reconnect backoff (as the Rust agent's). */
const STABLE_LINK_MS = 10_000;
/** Registration refusals that retrying cannot fix (bad name, token or origin). */
const FATAL_STATUSES = new Set([400, 401, 403, 404]);

/** The WebSocket subprotocol that asks the proxy for protocol 2 (docs/protocol.md §12). */
export const PROTOCOL_2 = 'httpws.2';
/**
 * Credit each direction of a stream starts with, bytes (§12): what a sender may send before the
 * receiver grants more, and so the most a receiver ever holds unread of one stream.
 */
export const STREAM_WINDOW = 256 * 1024;
/**
 * Bodies whose whole length is known up to this many bytes travel whole in one message, as in
 * protocol 1 (one message, no credit round trips); larger, unknown-length and endless ones
 * stream.
 */
export const WHOLE_BODY_BYTES = 64 * 1024;
/** Largest payload of one data message this client sends: a window goes in four pieces. */
const DATA_PIECE_BYTES = 64 * 1024;
/**
 * Consumed bytes gathered before they are granted back in one `credit` message. At most the
 * window, so a sender that has used all its credit gets some back as soon as its data is read.
 */
const CREDIT_BATCH_BYTES = 64 * 1024;
/** Longest stream tag line (§12). */
const MAX_TAG_BYTES = 64;
/** The stream tag line: verb, direction, CSeq, argument. */
const TAG_RE = /^~(data|end|credit|reset) ([<>])(\d{1,20})(?: ([!-~]{1,40}))?\n/;
/** The `~reset` tokens of §12. */
const RESET_TOKENS = new Set(['cancel', 'target-gone', 'timeout', 'flow-control', 'too-large', 'protocol', 'shutdown']);
/** The largest CSeq or credit a stream tag may carry (u64). */
const MAX_U64 = 2n ** 64n - 1n;
/** Whether a `Request` can carry a streamed body here (else a handler gets it read whole). */
let REQUEST_STREAMS = null;

const HOP_BY_HOP = [
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization',
  'te', 'trailer', 'transfer-encoding', 'upgrade',
];
/** Header names a caller may not set on fetch(): the client writes or forbids them. */
const REFUSED_REQUEST_HEADERS = new Set([
  ...HOP_BY_HOP, 'host', 'cseq', 'httpws-from', 'content-length', 'expect', 'httpws-stream',
]);
/** Header names dropped from a handler's Response: the client writes the framing itself. */
const DROPPED_RESPONSE_HEADERS = new Set([...HOP_BY_HOP, 'content-length', 'cseq', 'httpws-from', 'httpws-stream']);

const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** One protocol in an `Upgrade` header (RFC 9110 §7.8): a name, and maybe `/` a version. */
const UPGRADE_PROTOCOL_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+(?:\/[!#$%&'*+\-.^_`|~0-9A-Za-z]+)?$/;
/** What only this module holds: an {@link UpgradedSocket} is made here, never by its users. */
const INTERNAL = Symbol('httpws internal');
/** One address label: ASCII letters (any case), digits and inner hyphens, 1–63 of them. */
const LABEL_RE = /^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;
/**
 * What no line of an HTTP head may carry: control characters other than HTAB (CR and LF
 * would start a line of their own), DEL, and characters above U+00FF, which have no byte.
 */
const BAD_HEAD_CHAR = /[\x00-\x08\x0a-\x1f\x7f]|[^\x00-\xff]/;
/**
 * Methods that fetch's `Request` folds to upper case (Fetch, "normalize a method"): an
 * incoming `head` is the `HEAD` its handler sees, so it is answered as one. HTTP methods are
 * otherwise case-sensitive and kept as they came.
 */
const FOLDED_METHODS = new Set(['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT']);
const CR = 13;
const LF = 10;
const REASONS = {
  200: 'OK', 201: 'Created', 202: 'Accepted', 204: 'No Content', 206: 'Partial Content',
  301: 'Moved Permanently', 302: 'Found', 303: 'See Other', 304: 'Not Modified',
  307: 'Temporary Redirect', 308: 'Permanent Redirect', 400: 'Bad Request',
  401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
  409: 'Conflict', 410: 'Gone', 413: 'Content Too Large', 415: 'Unsupported Media Type',
  422: 'Unprocessable Content', 429: 'Too Many Requests', 500: 'Internal Server Error',
  501: 'Not Implemented', 502: 'Bad Gateway', 503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/**
 * An error from this client. Its `name` (and `code`) is the failure's token:
 * `tunnel-down`, `target-gone`, `timeout`, `closed`, `message-too-large`, `too-many-pending`,
 * `tunnel-busy`, `bad-response`, `connect-failed`, `connect-timeout`, `registration-refused`,
 * `bad-host` (the proxy's `:host` names no valid address, or another than the one asked for);
 * for streams (protocol 2): `stream-reset` (the stream was reset, by either side or the
 * proxy; `reset` is the §12 token: `cancel`, `target-gone`, `timeout`, `flow-control`,
 * `too-large`, `protocol`, `shutdown`) and `answered` (the exchange was answered whole, so
 * the rest of its request body is not wanted); a stream open when the tunnel drops fails with
 * `tunnel-down`, and with `closed` when the endpoint is closed. For upgrades:
 * `upgrade-refused` (the target answered something other than `101`; `response` is that
 * answer), `no-streams` (the tunnel speaks protocol 1, which cannot carry an upgraded
 * connection), `buffer-full` (an upgraded socket's `send()` would have queued more than its
 * `maxBufferedBytes`; the socket is reset).
 */
export class HttpWsError extends Error {
  /**
   * @param {string} code the failure's token, also used as `name`
   * @param {string} message what happened, for people
   * @param {{cause?: unknown, status?: number, reset?: string, response?: Response}} [extra]
   */
  constructor(code, message, extra = {}) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = code;
    this.code = code;
    /** The registration's HTTP status, where the WebSocket implementation exposes it. */
    if (extra.status !== undefined) this.status = extra.status;
    /** A `stream-reset`'s §12 token. */
    if (extra.reset !== undefined) this.reset = extra.reset;
    /** An `upgrade-refused`'s answer, its body still to read (or cancel). */
    if (extra.response !== undefined) this.response = extra.response;
  }
}

/**
 * Whether `name` is a valid httpws virtual address (docs/protocol.md §1, DNS host-name rules:
 * labels of `[a-z0-9-]`, 1–63 characters, not starting or ending with `-`, joined by `.`, at
 * most 253 in all; ASCII upper case is accepted, and means the same as lower case). Use it on
 * any name that came from outside before putting it in a URL: `printer/admin?x` is not one.
 * @param {unknown} name
 * @returns {boolean}
 */
export function isValidAddress(name) {
  if (typeof name !== 'string' || name.length === 0 || name.length > 253) return false;
  // Split before folding case: toLowerCase() maps some non-ASCII letters (U+212A KELVIN SIGN)
  // to ASCII ones, and the label rule must see the characters as given.
  return name.split('.').every((label) => LABEL_RE.test(label));
}

/**
 * @typedef {object} ConnectOptions
 * @property {string} [name] the address to register; default: the URL's path, and with
 *   neither, the proxy assigns one (kept across reconnects)
 * @property {string} [token] bearer token (visible ASCII); sent as the `access_token`
 *   query parameter, percent-encoded, because a browser's WebSocket cannot set headers
 * @property {boolean} [public=false] take calls from the internet: asks the proxy (with the
 *   `public=1` query parameter) to route its plain-HTTP ingress for this address here
 * @property {typeof WebSocket} [WebSocket] the WebSocket implementation (default
 *   `globalThis.WebSocket`; in Node before 22 pass the `ws` package's)
 * @property {object} [wsOptions] third constructor argument for the implementation (for `ws`:
 *   `{headers: {Authorization: 'Bearer …'}, maxPayload}`); browsers have none
 * @property {boolean} [reconnect=true] re-register after the tunnel drops
 * @property {boolean} [streams=true] offer protocol 2 (streams, the `httpws.2` subprotocol);
 *   false speaks protocol 1 only. A proxy that does not take the offer up is spoken to in
 *   protocol 1; one whose handshake fails over the offer (a WebSocket implementation fails a
 *   handshake whose `101` names no subprotocol) is asked again at once without it, and this
 *   endpoint then stays on protocol 1
 * @property {number} [timeout] default response deadline of {@link Endpoint#fetch}, ms
 * @property {number} [connectTimeout] ms from opening the socket to `:host`
 * @property {number} [maxPending] requests waiting for responses at once
 * @property {number} [maxConcurrentHandlers] incoming requests handled at once
 * @property {number} [maxHandlerBytes] bytes of incoming requests held by running handlers
 * @property {number} [maxMessageBytes] largest message sent or accepted
 * @property {number} [maxBufferedBytes] unsent bytes the socket may hold before fetch fails
 * @property {number} [reconnectMin] first reconnect delay, ms
 * @property {number} [reconnectMax] longest reconnect delay, ms
 * @property {(req: Request, info: RequestInfo) => Response | Promise<Response>} [onrequest]
 *   handler for incoming requests (may also be set later on the endpoint)
 */

/**
 * @typedef {object} RequestInfo
 * @property {string} from the caller's address (`Httpws-From`, stamped by the proxy)
 * @property {string} cseq the CSeq the request arrived with
 * @property {boolean} streamed whether the request body streams (protocol 2): the Request's
 *   body then comes as it is sent, and may be endless
 * @property {Headers} headers every header the request came with, as it came (a browser's
 *   `Request` hides some: `Connection`, `Upgrade`, `Sec-WebSocket-Key`, …)
 * @property {((headers?: HeadersInit, options?: {protocol?: string, maxBufferedBytes?: number})
 *   => UpgradedSocket) | undefined} upgrade present only on an upgrade request (protocol 2,
 *   `Connection: Upgrade` with `Upgrade`): answers `101 Switching Protocols` with `headers`
 *   (and `Connection: Upgrade`, `Upgrade: <protocol>`, by default the one asked for) at once,
 *   and returns the connection as an {@link UpgradedSocket}; what the handler returns after
 *   is not sent. A handler that does not call it answers with its `Response` as usual
 */

/**
 * One endpoint: a registered tunnel to an httpws proxy. Create it with
 * {@link Endpoint.connect} (or `HttpWs.connect`).
 *
 * Events (all `CustomEvent`s with a `detail`):
 * - `open` — registered (also after each reconnect): `{address, reconnected}`
 * - `reconnect` — the tunnel is down and another attempt is scheduled:
 *   `{attempt, delay, code?, reason?, error?}`
 * - `error` — an `:error` indication from the proxy: `{token, reason, source: 'proxy'}`;
 *   or one this client found: a failing handler `{token: 'handler-error', reason, error}`,
 *   an unusable or oversized incoming message `{token: 'bad-message' | 'message-too-large'}`,
 *   a `:host` naming no valid address `{token: 'bad-host'}`, a reconnect refused for good
 *   `{token: 'registration-refused', status}` (then `close` follows), with `source: 'client'`
 * - `close` — the endpoint is finished (closed, replaced, refused, or the tunnel dropped
 *   with `reconnect: false`): `{code, reason, error?}`
 */
export class Endpoint extends EventTarget {
  /**
   * Handler for requests from other endpoints: receives a standard `Request` (url
   * `http://<this address><path>`, `Httpws-From` among its headers) and the
   * {@link RequestInfo}, returns a `Response`. Throwing answers 500; without a handler
   * requests are answered 501 with `Httpws-Error: no-service`.
   * @type {((req: Request, info: RequestInfo) => Response | Promise<Response>) | null}
   */
  onrequest = null;

  #opts;
  #WebSocket;
  #wsOptions;
  #base;
  #name;
  #token;
  #public;
  /** Whether the next registration offers protocol 2. */
  #offerStreams;
  /** @type {any} */
  #ws = null;
  /** The protocol the registered tunnel speaks: 2 when its `101` chose `httpws.2`. */
  #protocol = 1;
  /** Exchanges with a streamed direction on the registered tunnel, by `>cseq` / `<cseq`. */
  #streams = new Map();
  /** The socket of a registration in progress. */
  #dialing = null;
  /** 'connecting' | 'open' | 'down' | 'closed' */
  #state = 'connecting';
  #address = null;
  /** CSeq → waiting fetch. */
  #pending = new Map();
  #nextCseq = 1;
  /** Handlers running now, and the bytes of the requests they hold. */
  #handlers = 0;
  #handlerBytes = 0;
  /** Failed or short-lived registrations since the last stable one: the backoff's exponent. */
  #attempt = 0;
  /** When the current registration's `:host` came (ms since the epoch). */
  #openedAt = 0;
  #reconnectTimer = null;
  #replaced = false;
  #closed;
  #resolveClosed;

  /**
   * Prefer {@link Endpoint.connect}, which also waits for registration.
   * @param {string | URL} url the proxy, `ws://host:port` or `wss://…` (`http(s)://` works too)
   * @param {ConnectOptions} [options]
   */
  constructor(url, options = {}) {
    super();
    this.#opts = { ...DEFAULTS, reconnect: true };
    for (const key of Object.keys(DEFAULTS)) {
      if (options[key] !== undefined) this.#opts[key] = positive(options[key], key);
    }
    if (options.reconnect !== undefined) this.#opts.reconnect = Boolean(options.reconnect);
    this.#offerStreams = options.streams === undefined ? true : Boolean(options.streams);
    this.#WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (typeof this.#WebSocket !== 'function') {
      throw new TypeError(
        'no WebSocket implementation: pass one as {WebSocket} (in Node before 22, the ws package)',
      );
    }
    this.#wsOptions = options.wsOptions;
    const base = new URL(url);
    if (base.protocol === 'http:') base.protocol = 'ws:';
    if (base.protocol === 'https:') base.protocol = 'wss:';
    if (base.protocol !== 'ws:' && base.protocol !== 'wss:') {
      throw new TypeError(`the proxy URL must be ws:// or wss://, not ${base.protocol}`);
    }
    let name = options.name;
    if (name === undefined && base.pathname !== '/') name = decodeURIComponent(base.pathname.slice(1));
    if (name !== undefined && name !== null && name !== '') {
      if (!isValidAddress(name)) {
        throw new TypeError(
          `"${name}" is not a valid httpws address (DNS host-name rules: labels of a-z, 0-9 and -)`,
        );
      }
      this.#name = name.toLowerCase();
    } else {
      this.#name = null;
    }
    base.pathname = '/';
    base.search = '';
    base.hash = '';
    this.#base = base;
    this.#token = options.token ?? null;
    if (this.#token !== null && !/^[\x21-\x7e]+$/.test(this.#token)) {
      // The proxy refuses other tokens (400); say so here, where the reason can be seen.
      throw new TypeError('a token must be non-empty visible ASCII (no spaces or control characters)');
    }
    this.#public = Boolean(options.public);
    if (typeof options.onrequest === 'function') this.onrequest = options.onrequest;
    this.#closed = new Promise((resolve) => { this.#resolveClosed = resolve; });
  }

  /**
   * Open the tunnel and register. Resolves once the proxy's `:host` indication arrives;
   * rejects with an {@link HttpWsError} (`registration-refused` with `status` where the
   * WebSocket implementation reveals it, as `ws` does; otherwise `connect-failed`, since a
   * browser cannot see why a handshake failed), `connect-timeout`, or `bad-host` when the
   * proxy's `:host` names no valid address or another than the one asked for.
   * @param {string | URL} url
   * @param {ConnectOptions} [options]
   * @returns {Promise<Endpoint>}
   */
  static async connect(url, options) {
    const ep = new Endpoint(url, options);
    try {
      await ep.#register();
    } catch (err) {
      ep.#finish({ code: 1006, reason: err.message, error: err });
      throw err;
    }
    return ep;
  }

  /** The registered address (`:host`); after an assigned registration, the assigned one. */
  get address() {
    return this.#address;
  }

  /** Whether the tunnel is registered right now. */
  get connected() {
    return this.#state === 'open';
  }

  /** Requests waiting for their responses. */
  get pendingCount() {
    return this.#pending.size;
  }

  /**
   * The protocol the tunnel speaks: 2 (streams) when the proxy took up the `httpws.2` offer,
   * else 1 (whole messages only). Meaningful while {@link Endpoint#connected}.
   */
  get protocol() {
    return this.#protocol;
  }

  /** Exchanges with a body still streaming one way or the other (protocol 2). */
  get openStreams() {
    return this.#streams.size;
  }

  /** Resolves with the `close` event's detail once the endpoint is finished. */
  get closed() {
    return this.#closed;
  }

  /**
   * Send a request to another endpoint and wait for its response. The URL's host is the
   * target address (`http://bob/offer`). Answers the proxy makes (unknown address, busy, gone,
   * timeout) come back as `Response`s carrying an `Httpws-Error` header; this rejects only
   * when no response can come: an {@link HttpWsError} named `tunnel-down`, `target-gone`,
   * `timeout`, `closed`, `message-too-large`, `too-many-pending`, `tunnel-busy`,
   * `bad-response` or `stream-reset`, the signal's reason when aborted, or a `TypeError` for
   * a bad request (hop-by-hop headers, `Host`, `CSeq`, `Httpws-From`, `Content-Length`,
   * `Expect`, `Httpws-Stream` are refused).
   *
   * In protocol 1 the request and its response each travel as one whole message. In protocol
   * 2 ({@link Endpoint#protocol}) a body that is a ReadableStream, or longer than
   * {@link WHOLE_BODY_BYTES}, or of a length only reading tells (a `Request` given as input,
   * FormData) and not over by the time the body has given what it has ready, streams: it is
   * sent as it is read, within the credit the target grants, so it may be of any length. A
   * streamed response resolves this at its head, with a `Response` whose body streams; it is
   * granted to the target as it is read, and cancelling it, or aborting the signal, resets
   * the stream (`cancel`). The timeout runs until the response head comes (for a streamed
   * request, from the end of its body).
   * @param {string | URL | Request} input
   * @param {RequestInit & {timeout?: number}} [init] `timeout` in ms overrides the default
   * @returns {Promise<Response>}
   */
  async fetch(input, init) {
    if (init?.headers !== undefined) checkRequestHeaders(new Headers(init.headers));
    // A stream body is taken as it is: a Request holds one only with `duplex`, and not at all
    // in some browsers, so the Request is built without it.
    const streamBody = typeof ReadableStream === 'function' && init?.body instanceof ReadableStream ? init.body : null;
    const request = input instanceof Request && init === undefined ? input
      : new Request(input, streamBody === null ? init : { ...init, body: undefined });
    if (streamBody !== null && (request.method === 'GET' || request.method === 'HEAD')) {
      throw new TypeError(`a ${request.method} request cannot have a body`);
    }
    checkRequestHeaders(request.headers);
    const url = new URL(request.url);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new TypeError(`fetch over httpws takes http:// URLs naming the target, not ${url.href}`);
    }
    const target = url.hostname;
    if (!isValidAddress(target)) throw new TypeError(`"${target}" is not a valid httpws address`);
    const timeout = init?.timeout === undefined ? this.#opts.timeout : positive(init.timeout, 'timeout');
    const signal = request.signal;
    signal?.throwIfAborted?.();
    this.#checkUsable();
    const limit = this.#opts.maxMessageBytes;
    let plan = this.#protocol === 2
      ? await planRequestBody(request, streamBody, init, limit)
      : { whole: streamBody === null ? await readRequestBody(request, limit) : await readBody(streamBody, limit, 'the request body') };
    const source = plan.stream ?? null;
    try {
      signal?.throwIfAborted?.();
      this.#checkUsable();
      // The tunnel came back without streams while the body was looked at: send it whole.
      if (source !== null && this.#protocol !== 2) plan = { whole: await readRest(source, limit) };
      if (this.#pending.size >= this.#opts.maxPending) {
        throw new HttpWsError('too-many-pending', `${this.#pending.size} requests already wait for responses`);
      }
      if (this.#ws.bufferedAmount > this.#opts.maxBufferedBytes) {
        throw new HttpWsError('tunnel-busy', `${this.#ws.bufferedAmount} bytes wait to be sent on the tunnel`);
      }
    } catch (err) {
      source?.reader?.cancel(err).catch(() => {});
      throw err;
    }
    const ws = this.#ws;
    const streamed = plan.stream ?? null;
    const body = plan.whole ?? null;
    const cseq = this.#allocCseq();
    const lines = [`${request.method} ${url.pathname}${url.search} HTTP/1.1`, `Host: ${target}`, `CSeq: ${cseq}`];
    let message;
    try {
      for (const [name, value] of request.headers) lines.push(headerLine(name, value));
      if (streamed !== null) {
        lines.push('Httpws-Stream: body');
        if (streamed.length !== null) lines.push(`Content-Length: ${streamed.length}`);
      } else if (body !== null || !['GET', 'HEAD', 'OPTIONS', 'DELETE', 'TRACE'].includes(request.method)) {
        lines.push(`Content-Length: ${body === null ? 0 : body.length}`);
      }
      message = encodeMessage(lines, body);
      if (message.length > limit) {
        throw new HttpWsError('message-too-large',
          `the request is ${message.length} bytes, over the ${limit}-byte limit`);
      }
    } catch (err) {
      streamed?.reader?.cancel(err).catch(() => {});
      throw err;
    }
    return new Promise((resolve, reject) => {
      url.hash = '';
      const entry = { resolve, reject, method: request.method, url: url.href, timer: null, signal, onAbort: null };
      const ex = streamed === null ? null : this.#openExchange(ws, '>', cseq, 'open', 'waiting');
      const arm = () => {
        entry.timer = setTimeout(() => {
          const error = new HttpWsError('timeout', `no response from ${target} within ${timeout} ms`);
          this.#settle(cseq)?.reject(error);
          ex?.reset('cancel', error);
        }, Math.min(timeout, 2 ** 31 - 1));
      };
      if (ex === null) arm();
      if (signal) {
        entry.onAbort = () => {
          this.#settle(cseq)?.reject(signal.reason);
          ex?.reset('cancel', signal.reason);
        };
        signal.addEventListener('abort', entry.onAbort, { once: true });
      }
      // The stream failed before the response head (reset, tunnel lost): no response comes.
      if (ex !== null) ex.onfail = (error) => this.#settle(cseq)?.reject(error);
      this.#pending.set(cseq, entry);
      try {
        ws.send(message);
      } catch (err) {
        const error = new HttpWsError('tunnel-down', 'the tunnel could not send', { cause: err });
        this.#settle(cseq)?.reject(error);
        ex?.lost(error);
        streamed?.reader?.cancel(error).catch(() => {});
        return;
      }
      if (ex === null) return;
      pumpBody(ex, streamed).then(({ error }) => {
        // Sent whole: the response is due from now on (the proxy's timeout starts here too).
        if (error === null && this.#pending.get(cseq) === entry) arm();
      });
    });
  }

  /**
   * Ask another endpoint to switch protocols (a WebSocket handshake, or any other upgrade:
   * docs/protocol.md §12, *Upgrades*) and, when it answers `101`, get the connection as an
   * {@link UpgradedSocket}: the bytes of the new protocol both ways, as they are, under
   * credit, each side ending its own. The URL's host is the target address
   * (`http://bob/chat`). The request is a stream head keeping `Connection: Upgrade` and
   * `Upgrade: <protocol>`, with nothing sent before the answer. Any other answer rejects
   * with an {@link HttpWsError} named `upgrade-refused` whose `response` is that answer (the
   * proxy's own ones included: `404 unknown-address`, `502 bad-response` for a target that
   * speaks protocol 1, …; a streamed one's body is read or cancelled as any `fetch` body).
   * Rejects otherwise as {@link Endpoint#fetch} does when no answer can come (`tunnel-down`,
   * `target-gone`, `timeout`, `closed`, `too-many-pending`, `tunnel-busy`, `bad-response`,
   * `stream-reset`, the signal's reason), with `no-streams` on a protocol-1 tunnel, and with
   * a `TypeError` for a bad URL, protocol or header (the client writes `Connection` and
   * `Upgrade` itself; the others it refuses are those of `fetch`).
   * @param {string | URL} input
   * @param {{protocol?: string, method?: string, headers?: HeadersInit, signal?: AbortSignal,
   *   timeout?: number, maxBufferedBytes?: number}} [options] `protocol`: the one protocol
   *   asked for (default `websocket`; `name` or `name/version`); `method` (default `GET`);
   *   `headers`: more request headers, as given (`Sec-WebSocket-Key` and the like);
   *   `signal`: aborts the wait, and afterwards resets the socket (or a refusal's streaming
   *   body: `cancel`); `timeout`: ms until the answer's head (default the endpoint's);
   *   `maxBufferedBytes`: what the socket's `send()` may queue waiting for credit (default
   *   the endpoint's)
   * @returns {Promise<UpgradedSocket>}
   */
  async upgrade(input, options = {}) {
    const protocol = options.protocol ?? 'websocket';
    if (typeof protocol !== 'string' || !UPGRADE_PROTOCOL_RE.test(protocol)) {
      throw new TypeError(`${JSON.stringify(String(protocol))} is not one protocol to upgrade to (a token, or token/version)`);
    }
    const method = options.method ?? 'GET';
    if (typeof method !== 'string' || !TOKEN_RE.test(method)) throw new TypeError(`${JSON.stringify(String(method))} is not an HTTP method`);
    const url = new URL(input);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new TypeError(`upgrade over httpws takes http:// URLs naming the target, not ${url.href}`);
    }
    const target = url.hostname;
    if (!isValidAddress(target)) throw new TypeError(`"${target}" is not a valid httpws address`);
    const headers = new Headers(options.headers);
    checkRequestHeaders(headers);
    const timeout = options.timeout === undefined ? this.#opts.timeout : positive(options.timeout, 'timeout');
    const maxBufferedBytes = options.maxBufferedBytes === undefined
      ? this.#opts.maxBufferedBytes : positive(options.maxBufferedBytes, 'maxBufferedBytes');
    const signal = options.signal ?? null;
    signal?.throwIfAborted?.();
    this.#checkUsable();
    if (this.#protocol !== 2) {
      throw new HttpWsError('no-streams', 'the tunnel speaks protocol 1, which cannot carry an upgraded connection');
    }
    if (this.#pending.size >= this.#opts.maxPending) {
      throw new HttpWsError('too-many-pending', `${this.#pending.size} requests already wait for responses`);
    }
    if (this.#ws.bufferedAmount > this.#opts.maxBufferedBytes) {
      throw new HttpWsError('tunnel-busy', `${this.#ws.bufferedAmount} bytes wait to be sent on the tunnel`);
    }
    const ws = this.#ws;
    const cseq = this.#allocCseq();
    const lines = [`${method} ${url.pathname}${url.search} HTTP/1.1`, `Host: ${target}`, `CSeq: ${cseq}`];
    for (const [name, value] of headers) lines.push(headerLine(name, value));
    lines.push('Connection: Upgrade', `Upgrade: ${protocol}`, 'Httpws-Stream: body');
    const message = encodeMessage(lines, null);
    url.hash = '';
    return new Promise((resolve, reject) => {
      const entry = {
        resolve, reject, method, url: url.href, timer: null, signal, onAbort: null,
        upgrade: { maxBufferedBytes },
      };
      // The request stream is open from its head on; nothing goes on it before a 101.
      const ex = this.#openExchange(ws, '>', cseq, 'open', 'waiting');
      entry.timer = setTimeout(() => {
        const error = new HttpWsError('timeout', `no answer from ${target} within ${timeout} ms`);
        this.#settle(cseq)?.reject(error);
        ex.reset('cancel', error);
      }, Math.min(timeout, 2 ** 31 - 1));
      if (signal) {
        entry.onAbort = () => {
          this.#settle(cseq)?.reject(signal.reason);
          ex.reset('cancel', signal.reason);
        };
        signal.addEventListener('abort', entry.onAbort, { once: true });
      }
      ex.onfail = (error) => this.#settle(cseq)?.reject(error);
      this.#pending.set(cseq, entry);
      try {
        ws.send(message);
      } catch (err) {
        const error = new HttpWsError('tunnel-down', 'the tunnel could not send', { cause: err });
        this.#settle(cseq)?.reject(error);
        ex.lost(error);
      }
    });
  }

  /**
   * Close the tunnel for good: no more reconnects; waiting requests reject with `closed`.
   * @returns {Promise<object>} the `close` event's detail, once the socket is closed
   */
  close() {
    if (this.#state === 'closed') return this.#closed;
    const ws = this.#ws;
    const detail = { code: 1000, reason: 'closed by the application' };
    this.#state = 'closed';
    this.#ws = null;
    clearTimeout(this.#reconnectTimer);
    this.#failPending('closed', 'the endpoint was closed');
    this.#failStreams('closed', 'the endpoint was closed while the body was streaming');
    try { this.#dialing?.close(); } catch { /* not open yet */ }
    if (!ws || ws.readyState >= 2) {
      this.#finish(detail);
      return this.#closed;
    }
    const done = () => {
      clearTimeout(timer);
      this.#finish(detail);
    };
    // Wait for the closing handshake, but not forever.
    const timer = setTimeout(done, 2_000);
    ws.addEventListener('close', done, { once: true });
    try {
      ws.close(1000);
    } catch {
      done();
    }
    return this.#closed;
  }

  // --- the tunnel ---------------------------------------------------------------------------

  #registrationUrl() {
    const url = new URL(this.#base);
    url.pathname = `/${this.#name ?? ''}`;
    const query = [];
    if (this.#token !== null) query.push(`access_token=${encodeURIComponent(this.#token)}`);
    if (this.#public) query.push('public=1');
    if (query.length > 0) url.search = `?${query.join('&')}`;
    return url.href;
  }

  /**
   * Register, offering protocol 2 unless told not to. A handshake that failed over the offer
   * (a WebSocket implementation fails one whose `101` names no subprotocol: an older proxy's)
   * is tried again at once without it; so is one that failed without saying why, as a
   * browser's does, since it may have failed so.
   */
  async #register() {
    if (!this.#offerStreams) return this.#dial(false);
    try {
      return await this.#dial(true);
    } catch (err) {
      if (!OVER_OFFER.has(err) || this.#state === 'closed') throw err;
      const address = await this.#dial(false);
      this.#offerStreams = false;
      return address;
    }
  }

  /**
   * Open one WebSocket and register, offering `httpws.2` when `offer`; resolves with the
   * address from `:host`.
   */
  #dial(offer) {
    return new Promise((resolve, reject) => {
      const url = this.#registrationUrl();
      const shownUrl = this.#token === null ? url : url.replace(/access_token=[^&]*/, 'access_token=…');
      const protocols = offer ? [PROTOCOL_2] : [];
      let ws;
      try {
        ws = this.#wsOptions === undefined
          ? new this.#WebSocket(url, protocols)
          : new this.#WebSocket(url, protocols, this.#wsOptions);
      } catch (err) {
        reject(new HttpWsError('connect-failed', `cannot open ${shownUrl}: ${err.message}`, { cause: err }));
        return;
      }
      ws.binaryType = 'arraybuffer';
      this.#dialing = ws;
      let registered = false;
      let settled = false;
      let opened = false;
      let lastError;
      const fail = (err) => {
        if (this.#dialing === ws) this.#dialing = null;
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(err);
      };
      const timer = setTimeout(() => {
        fail(new HttpWsError('connect-timeout',
          `no registration from ${shownUrl} within ${this.#opts.connectTimeout} ms`));
        try { ws.close(); } catch { /* already closing */ }
      }, this.#opts.connectTimeout);
      ws.addEventListener('open', () => { opened = true; });
      ws.addEventListener('error', (event) => {
        lastError = event?.error ?? event?.message;
        // The WebSocket API fires close after error, but not every implementation does (Node
        // 20's experimental one does not, for a refused handshake): act on the error itself.
        if (registered) {
          this.#onDown(ws, { code: 1006, reason: String(detailOf(lastError) ?? 'connection error') });
          try { ws.close(); } catch { /* already closing */ }
        } else {
          refused();
        }
      });
      ws.addEventListener('message', (event) => {
        if (registered) {
          if (ws === this.#ws) this.#onMessage(ws, event.data);
          return;
        }
        const text = typeof event.data === 'string' ? event.data : new TextDecoder().decode(event.data);
        const host = /^:host (\S+)$/.exec(text);
        if (!host || settled || this.#state === 'closed') {
          if (text.startsWith(':error ')) this.#onIndication(text);
          fail(new HttpWsError('connect-failed',
            `expected :host from ${shownUrl}, got ${JSON.stringify(text.slice(0, 100))}`));
          try { ws.close(); } catch { /* already closing */ }
          return;
        }
        // The address is this endpoint's name from now on (in Host lines, in reconnects): a
        // proxy that names an invalid one, or another than the one asked for, is broken.
        const address = host[1].toLowerCase();
        const problem = !isValidAddress(address) ? 'is not a valid address'
          : this.#name !== null && address !== this.#name ? `is not the "${this.#name}" asked for` : null;
        if (problem !== null) {
          const reason = `the proxy's ${JSON.stringify(text.slice(0, 300))} ${problem}`;
          this.#emit('error', { token: 'bad-host', reason, source: 'client' });
          fail(new HttpWsError('bad-host', reason));
          try { ws.close(); } catch { /* already closing */ }
          return;
        }
        registered = true;
        settled = true;
        this.#dialing = null;
        clearTimeout(timer);
        const reconnected = this.#address !== null;
        this.#ws = ws;
        this.#protocol = offer && ws.protocol === PROTOCOL_2 ? 2 : 1;
        this.#address = address;
        this.#name = address;
        this.#state = 'open';
        this.#openedAt = Date.now();
        resolve(address);
        this.#emit('open', { address, reconnected });
      });
      ws.addEventListener('close', (event) => {
        if (registered) this.#onDown(ws, event);
        else refused();
      });
      const refused = () => {
        if (settled) return;
        const detail = detailOf(lastError);
        const status = /\b(\d{3})\b/.exec(String(detail ?? ''))?.[1];
        // Failed over the subprotocol (ws says so; a browser-shaped WebSocket says nothing).
        const overOffer = offer && !opened &&
          (detail === undefined || detail === null || detail === '' || /protocol/i.test(String(detail)));
        const what = this.#name === null ? 'an assigned address' : `"${this.#name}"`;
        if (status !== undefined && /server response/i.test(String(detail))) {
          fail(new HttpWsError(
            'registration-refused',
            `the proxy refused to register ${what}: HTTP ${status} (${explainStatus(Number(status))})`,
            { status: Number(status), cause: lastError },
          ));
        } else {
          fail(markOverOffer(overOffer, new HttpWsError(
            'connect-failed',
            `could not register ${what} at ${shownUrl}${detail ? `: ${detail}` : ''}` +
              (opened ? ' (the socket closed before :host)' :
                ' (the proxy is unreachable, or refused the handshake: the name taken (409), ' +
                'the token missing or not allowed (401/403), or this page\'s origin not in ' +
                'its --allowed-origins (403); a browser cannot tell which)'),
            { cause: lastError },
          )));
        }
        // Some implementations leave a handshake they failed half open (Node 20's, over a
        // subprotocol): let it go.
        try { ws.close(); } catch { /* already closing */ }
      };
    });
  }

  /** The registered socket closed. */
  #onDown(ws, event) {
    if (ws !== this.#ws) return;
    this.#ws = null;
    this.#failPending('target-gone', 'the tunnel dropped before the response came');
    this.#failStreams('tunnel-down', 'the tunnel dropped while the body was streaming');
    if (this.#state === 'closed') return;
    const detail = { code: event?.code, reason: event?.reason };
    if (!this.#opts.reconnect || this.#replaced) {
      const error = this.#replaced
        ? new HttpWsError('replaced', 'another connection with the same token took the address')
        : undefined;
      this.#finish(error ? { ...detail, error } : detail);
      return;
    }
    this.#state = 'down';
    // Only a registration that lasted resets the backoff: a proxy that accepts and drops at
    // once (overloaded, or hostile) must not get a reconnect every reconnectMin.
    if (Date.now() - this.#openedAt >= STABLE_LINK_MS) this.#attempt = 0;
    this.#scheduleReconnect(detail);
  }

  #scheduleReconnect(detail) {
    const ceiling = Math.min(this.#opts.reconnectMax, this.#opts.reconnectMin * 2 ** Math.min(this.#attempt, 30));
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.#attempt += 1;
    this.#reconnectTimer = setTimeout(() => this.#reconnect(), delay);
    this.#emit('reconnect', { attempt: this.#attempt, delay, ...detail });
  }

  async #reconnect() {
    this.#reconnectTimer = null;
    if (this.#state === 'closed') return;
    try {
      await this.#register();
    } catch (error) {
      if (this.#state === 'closed') return;
      if (FATAL_STATUSES.has(error.status)) {
        // Retrying cannot fix a bad name, token or origin: stop, and say why, as the agent does.
        this.#emit('error', { token: 'registration-refused', status: error.status, reason: error.message, error, source: 'client' });
        this.#finish({ code: 1006, reason: error.message, error });
      } else {
        this.#scheduleReconnect({ error });
      }
    }
  }

  #finish(detail) {
    if (this.#resolveClosed === null) return;
    this.#state = 'closed';
    clearTimeout(this.#reconnectTimer);
    this.#failPending('closed', 'the endpoint was closed');
    this.#failStreams('closed', 'the endpoint was closed while the body was streaming');
    const resolve = this.#resolveClosed;
    this.#resolveClosed = null;
    resolve(detail);
    this.#emit('close', detail);
  }

  #checkUsable() {
    if (this.#state === 'closed') throw new HttpWsError('closed', 'the endpoint is closed');
    if (this.#state !== 'open' || this.#ws === null) {
      throw new HttpWsError('tunnel-down', 'the tunnel to the proxy is down; reconnecting');
    }
  }

  #allocCseq() {
    let cseq;
    do {
      cseq = this.#nextCseq;
      this.#nextCseq = cseq >= Number.MAX_SAFE_INTEGER ? 1 : cseq + 1;
    } while (this.#pending.has(cseq) || this.#streams.has(`>${cseq}`));
    return cseq;
  }

  /** Remove a waiting request and its timer; returns its entry (or undefined). */
  #settle(cseq) {
    const entry = this.#pending.get(cseq);
    if (entry === undefined) return undefined;
    this.#pending.delete(cseq);
    clearTimeout(entry.timer);
    if (entry.onAbort) entry.signal.removeEventListener('abort', entry.onAbort);
    return entry;
  }

  #failPending(code, message) {
    for (const cseq of [...this.#pending.keys()]) this.#settle(cseq)?.reject(new HttpWsError(code, message));
  }

  /** Fail every open stream (the tunnel they were on is gone). */
  #failStreams(code, message) {
    const streams = [...this.#streams.values()];
    this.#streams.clear();
    for (const ex of streams) ex.lost(new HttpWsError(code, message));
  }

  /** A new exchange on `ws`, in the table until both its directions are over. */
  #openExchange(ws, mark, cseq, send, recv, declared = null) {
    const link = {
      send: (bytes) => this.#send(ws, bytes),
      remove: (ex) => {
        if (this.#streams.get(ex.key) === ex) this.#streams.delete(ex.key);
      },
    };
    const ex = new Exchange(link, mark, String(cseq), send, recv, declared);
    this.#streams.set(ex.key, ex);
    return ex;
  }

  #emit(type, detail) {
    let event;
    if (typeof CustomEvent === 'function') {
      event = new CustomEvent(type, { detail });
    } else {
      event = new Event(type);
      Object.defineProperty(event, 'detail', { value: detail });
    }
    this.dispatchEvent(event);
  }

  // --- messages -----------------------------------------------------------------------------

  #onIndication(text) {
    const error = /^:error (\S+)(?: (.*))?$/s.exec(text);
    if (!error) return; // `:host` after registration, or an indication this client does not know
    const token = error[1];
    if (token === 'replaced') this.#replaced = true;
    this.#emit('error', { token, reason: unquote(error[2] ?? ''), source: 'proxy' });
  }

  #onMessage(ws, data) {
    let bytes;
    if (typeof data === 'string') {
      if (data.startsWith(':')) {
        this.#onIndication(data);
        return;
      }
      bytes = new TextEncoder().encode(data);
    } else if (data instanceof ArrayBuffer) {
      bytes = new Uint8Array(data);
    } else if (ArrayBuffer.isView(data)) {
      bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    } else {
      return; // a Blob: this implementation ignored binaryType
    }
    if (bytes[0] === 0x3a) {
      this.#onIndication(new TextDecoder().decode(bytes));
      return;
    }
    if (bytes[0] === 0x7e && this.#protocol === 2) {
      this.#onStreamMessage(bytes);
      return;
    }
    let message;
    try {
      message = parseMessage(bytes, this.#opts.maxMessageBytes + RELAY_STAMP_BYTES, this.#protocol === 2);
    } catch (err) {
      const code = err.code === 'message-too-large' ? 'message-too-large' : 'bad-response';
      if (err.kind === 'response' && err.cseq !== null && err.cseq !== undefined) {
        const cseq = Number(err.cseq);
        this.#settle(cseq)?.reject(new HttpWsError(code, `unusable response: ${err.message}`));
        // Our request's body has no answer to stream for.
        this.#streams.get(`>${canonicalCseq(err.cseq)}`)?.reset('cancel');
      } else if (err.kind === 'request' && err.cseq !== null && err.cseq !== undefined) {
        const [status, token] = code === 'message-too-large' ? [413, 'message-too-large'] : [400, 'bad-request'];
        this.#send(ws, errorResponse(err.cseq, status, token, `${err.message}\n`));
      }
      this.#emit('error', {
        token: code === 'message-too-large' ? code : 'bad-message', reason: err.message, source: 'client',
      });
      return;
    }
    if (message.kind === 'response') {
      this.#onResponse(ws, message);
    } else {
      // The exchange exists before anything waits, so that the data following the head finds it.
      const ex = message.stream
        ? this.#openExchange(ws, '<', canonicalCseq(message.cseq), 'waiting', 'open', message.declared)
        : null;
      this.#serve(ws, message, bytes.length, ex);
    }
  }

  /** A response: to the fetch waiting for it, its body streaming when it has a stream head. */
  #onResponse(ws, message) {
    const cseq = Number(message.cseq);
    const key = `>${canonicalCseq(message.cseq)}`;
    const ex = this.#streams.get(key);
    let entry = this.#settle(cseq);
    if (entry?.upgrade !== undefined) {
      if (ex !== undefined) {
        this.#onUpgradeAnswer(message, ex, entry);
        return;
      }
      // Its stream is gone (it cannot be, while the upgrade waits): answered as a late one.
      entry.reject(new HttpWsError('bad-response', 'an answer to an upgrade whose stream is over'));
      entry = undefined;
    }
    if (!message.stream) {
      // A whole answer ends the exchange: what is left of our request body is not wanted.
      ex?.responseArrived(false, null);
      if (entry === undefined) return; // timed out or aborted already: a late answer
      try {
        entry.resolve(toResponse(message, entry.method, entry.url, null));
      } catch (err) {
        entry.reject(new HttpWsError('bad-response', `unusable response: ${err.message}`, { cause: err }));
      }
      return;
    }
    const stream = ex ?? this.#openExchange(ws, '>', canonicalCseq(message.cseq), 'done', 'waiting');
    stream.responseArrived(true, message.declared);
    // Nobody takes this body (the fetch timed out or was aborted): the target is told at once.
    if (entry === undefined) {
      stream.reset('cancel');
      return;
    }
    const noBody = entry.method === 'HEAD' || [204, 205, 304].includes(message.status);
    let response;
    try {
      response = toResponse(message, entry.method, entry.url, noBody ? null : stream.readable());
    } catch (err) {
      stream.reset('cancel');
      entry.reject(new HttpWsError('bad-response', `unusable response: ${err.message}`, { cause: err }));
      return;
    }
    if (noBody) stream.reset('cancel');
    const signal = entry.signal;
    if (signal && !stream.over) {
      const onAbort = () => stream.reset('cancel', signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      stream.onfinish.push(() => signal.removeEventListener('abort', onAbort));
    }
    entry.resolve(response);
  }

  /**
   * The answer to an upgrade we sent on `ex`: a streamed `101` makes it an upgraded socket;
   * any other answer rejects the upgrade with it, our (empty) request stream ending.
   */
  #onUpgradeAnswer(message, ex, entry) {
    const refused = (response) => new HttpWsError('upgrade-refused',
      `${new URL(entry.url).hostname} answered ${response.status} instead of 101 Switching Protocols`, { response });
    const unusable = (why) => new HttpWsError('bad-response', `unusable answer to an upgrade: ${why}`);
    if (!message.stream) {
      // A whole answer ends the exchange (a whole 101 cannot switch: it is not a stream head).
      ex.responseArrived(false, null);
      try {
        entry.reject(refused(toResponse(message, entry.method, entry.url, null)));
      } catch (err) {
        entry.reject(unusable(err.message));
      }
      return;
    }
    if (message.status === 101) {
      if (message.declared !== null) {
        ex.reset('cancel');
        entry.reject(unusable('a 101 with a Content-Length'));
        return;
      }
      ex.responseArrived(true, null);
      const headers = new Headers();
      for (const [name, value] of message.headers) {
        if (name.toLowerCase() !== 'cseq') headers.append(name, value);
      }
      const socket = new UpgradedSocket(INTERNAL, ex, {
        protocol: headers.get('upgrade') ?? '', headers, url: entry.url,
        maxBufferedBytes: entry.upgrade.maxBufferedBytes, signal: entry.signal,
      });
      entry.resolve(socket);
      return;
    }
    // Not switched: our request had no body, and ends now; the answer's body streams.
    ex.responseArrived(true, message.declared);
    if (ex.send === 'open') ex.end();
    const noBody = entry.method === 'HEAD' || [204, 205, 304].includes(message.status);
    let response;
    try {
      response = toResponse(message, entry.method, entry.url, noBody ? null : ex.readable());
    } catch (err) {
      ex.reset('cancel');
      entry.reject(unusable(err.message));
      return;
    }
    if (noBody) ex.reset('cancel');
    const signal = entry.signal;
    if (signal && !ex.over) {
      const onAbort = () => ex.reset('cancel', signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      ex.onfinish.push(() => signal.removeEventListener('abort', onAbort));
    }
    entry.reject(refused(response));
  }

  /**
   * A stream message: to the exchange it names (`>`: our call, `<`: a request we serve). One
   * for an exchange that is over, or never streamed, is late and dropped (§12); a malformed
   * one is dropped and reported, and harms no other exchange.
   */
  #onStreamMessage(bytes) {
    const tag = parseStreamTag(bytes);
    if (tag === null) {
      const reason = `a malformed stream message ${JSON.stringify(latin1(bytes.subarray(0, MAX_TAG_BYTES)))}`;
      this.#emit('error', { token: 'bad-message', reason, source: 'client' });
      return;
    }
    const ex = this.#streams.get(`${tag.mark}${tag.cseq}`);
    if (ex === undefined) return;
    switch (tag.verb) {
      case 'data':
        ex.onData(tag.payload);
        break;
      case 'end':
        ex.onEnd();
        break;
      case 'credit':
        ex.onCredit(Number(tag.arg));
        break;
      default:
        ex.onReset(tag.arg);
    }
  }

  #send(ws, bytes) {
    if (ws !== this.#ws) return; // that tunnel is gone: the proxy answered the caller itself
    try {
      ws.send(bytes);
    } catch {
      // The socket is closing; its close event takes care of the rest.
    }
  }

  /**
   * Run the handler for one incoming request of `size` bytes (its whole message, or its
   * head when its body streams on `ex`).
   */
  async #serve(ws, message, size, ex) {
    const cseq = message.cseq;
    const handler = this.onrequest;
    // A whole answer ends a streamed request's exchange: the rest of its body is not wanted.
    const answerWhole = (bytes) => {
      ex?.responded(false);
      this.#send(ws, bytes);
    };
    if (typeof handler !== 'function') {
      answerWhole(errorResponse(cseq, 501, 'no-service', 'this endpoint does not serve requests\n'));
      return;
    }
    // Requests a slow handler has not answered yet stay in memory: bound them by count and
    // bytes, and answer the rest at once rather than hold them. A streamed body holds at most
    // the window unread, and counts as that.
    if (ex !== null) size += Math.min(message.declared ?? STREAM_WINDOW, STREAM_WINDOW);
    if (this.#handlers >= this.#opts.maxConcurrentHandlers) {
      answerWhole(errorResponse(cseq, 503, 'target-busy', 'this endpoint is handling too many requests\n'));
      return;
    }
    if (this.#handlerBytes + size > this.#opts.maxHandlerBytes) {
      answerWhole(errorResponse(cseq, 503, 'target-busy',
        `this endpoint's handlers hold ${this.#handlerBytes} bytes of requests; this one (${size}) ` +
        `would go over its ${this.#opts.maxHandlerBytes}-byte budget\n`));
      return;
    }
    this.#handlers += 1;
    this.#handlerBytes += size;
    let answer;
    try {
      answer = await this.#handle(ws, message, ex, handler);
    } finally {
      this.#handlers -= 1;
      this.#handlerBytes -= size;
    }
    // Upgraded: the socket is the answer, and the handler's to keep.
    if (answer.upgraded) return;
    // Reset while the handler ran (by the caller, a credit violation, the tunnel): no answer.
    if (ex?.over) {
      answer.streamed?.source.reader?.cancel(ex.recvError ?? ex.sendError).catch(() => {});
    } else if (answer.whole !== undefined) {
      answerWhole(answer.whole);
    } else {
      await this.#streamResponse(ws, cseq, ex, answer.streamed);
    }
  }

  /**
   * The handler's answer to one request: `{whole}`, the bytes of one whole message,
   * `{streamed: {head, source}}`, a stream head and the body to stream after it, or
   * `{upgraded: true}` when the handler took an upgrade request's connection (its `101` is sent).
   */
  async #handle(ws, message, ex, handler) {
    const cseq = message.cseq;
    // An upgrade comes as a stream head whose stream, once switched, is the caller's bytes.
    const asked = ex !== null ? upgradeAsked(message.headers) : null;
    let body = null;
    if (ex !== null && asked === null) {
      if (message.method === 'GET' || message.method === 'HEAD') {
        // A Request of these cannot have a body: what comes is read and let go.
        ex.readable().pipeTo(new WritableStream()).catch(() => {});
      } else if (REQUEST_STREAMS ??= requestStreams()) {
        body = ex.readable();
      } else {
        // This platform's Request cannot stream: the handler gets the body whole.
        try {
          body = await readBody(ex.readable(), this.#opts.maxMessageBytes, 'the request body');
        } catch (err) {
          if (err.code === 'message-too-large') ex.reset('too-large');
          const [status, token] = err.code === 'message-too-large' ? [413, 'message-too-large'] : [400, 'bad-request'];
          return { whole: errorResponse(cseq, status, token, `${err.message}\n`) };
        }
      }
    }
    let request;
    try {
      request = toRequest(message, this.#address, body);
    } catch (err) {
      return { whole: errorResponse(cseq, 400, 'bad-request', `${err.message}\n`) };
    }
    // The Request has its own copy of the body: let the message's bytes go.
    message.body = null;
    const from = message.headers.find(([name]) => name.toLowerCase() === 'httpws-from')?.[1] ?? '';
    const headers = new Headers();
    for (const [name, value] of message.headers) {
      if (name.toLowerCase() !== 'cseq') headers.append(name, value);
    }
    const info = { from, cseq, streamed: ex !== null && asked === null, headers };
    let socket = null;
    let answered = false;
    if (asked !== null) {
      info.upgrade = (answerHeaders = undefined, options = {}) => {
        if (socket !== null) throw new TypeError('this request was upgraded already');
        if (answered) throw new TypeError('the handler has answered: upgrade before it returns');
        if (ex.over) throw ex.recvError ?? new HttpWsError('stream-reset', 'the exchange is over');
        if (ws !== this.#ws) throw new HttpWsError('tunnel-down', 'the tunnel dropped before the answer');
        const protocol = options.protocol ?? asked;
        if (typeof protocol !== 'string' || !UPGRADE_PROTOCOL_RE.test(protocol)) {
          throw new TypeError(`${JSON.stringify(String(protocol))} is not one protocol: name the one switched to as {protocol}`);
        }
        const maxBufferedBytes = options.maxBufferedBytes === undefined
          ? this.#opts.maxBufferedBytes : positive(options.maxBufferedBytes, 'maxBufferedBytes');
        const sent = new Headers(answerHeaders);
        const head = switchHead(cseq, sent, protocol);
        this.#send(ws, head);
        ex.responded(true);
        sent.set('Connection', 'Upgrade');
        sent.set('Upgrade', protocol);
        socket = new UpgradedSocket(INTERNAL, ex, { protocol, headers: sent, url: request.url, maxBufferedBytes, signal: null });
        return socket;
      };
    }
    try {
      const response = await handler.call(this, request, info);
      answered = true;
      if (socket !== null) {
        // What the handler returned besides is not sent: a body it made is let go.
        if (typeof response?.body?.cancel === 'function' && !response.bodyUsed) response.body.cancel().catch(() => {});
        return { upgraded: true };
      }
      if (!response || !Number.isInteger(response.status) || typeof response.headers !== 'object' ||
          response.status < 200 || response.status > 599) {
        throw new TypeError('onrequest must return a Response with a status from 200 to 599');
      }
      // request.method, not the wire's: the handler was told `head` is HEAD.
      const isHead = request.method === 'HEAD';
      const noBody = response.status === 204 || response.status === 304 || response.body === null;
      const limit = this.#opts.maxMessageBytes;
      const plan = this.#protocol === 2 && ws === this.#ws && !noBody
        ? await planBody(response.body, declaredLength(response.headers), isEventStream(response.headers), limit, 'the response body')
        : { whole: await readBody(response.body, limit, 'the response body') };
      let length = 'body';
      if (plan.stream !== undefined) {
        if (!isHead) {
          return { streamed: { head: serializeStreamHead(cseq, response, plan.stream.length), source: plan.stream } };
        }
        // A HEAD answer carries no body: the one the handler made is let go, and its length
        // is told only when known (a GET handler's endless event stream has none).
        plan.stream.reader?.cancel().catch(() => {});
        length = plan.stream.length;
        plan.whole = null;
      }
      const bytes = serializeResponse(cseq, response, plan.whole, isHead, length);
      if (bytes.length > limit) {
        throw new HttpWsError('message-too-large',
          `the response is ${bytes.length} bytes, over the ${limit}-byte limit`);
      }
      return { whole: bytes };
    } catch (error) {
      answered = true;
      this.#emit('error', { token: 'handler-error', reason: String(error?.message ?? error), error, source: 'client' });
      if (socket !== null) {
        // It failed after switching: the connection it took is reset, not left to no one.
        socket.reset('cancel');
        return { upgraded: true };
      }
      return { whole: errorResponse(cseq, 500, 'service-error', 'the request handler failed\n') };
    }
  }

  /** Send a handler's answer as a stream head and its body as data messages. */
  async #streamResponse(ws, cseq, ex, { head, source }) {
    const key = `<${canonicalCseq(cseq)}`;
    // The tunnel dropped while the handler ran (or a stream of that CSeq is open: a confused
    // proxy's).
    if (ws !== this.#ws || (ex === null && this.#streams.has(key))) {
      source.reader?.cancel(new HttpWsError('tunnel-down', 'the tunnel dropped before the answer')).catch(() => {});
      return;
    }
    const out = ex ?? this.#openExchange(ws, '<', canonicalCseq(cseq), 'waiting', 'done');
    this.#send(ws, head);
    out.responded(true);
    const { error, bySource } = await pumpBody(out, source);
    if (bySource) {
      this.#emit('error', { token: 'handler-error', reason: `the response body failed: ${error?.message ?? error}`, error, source: 'client' });
    }
  }
}

/**
 * An upgraded connection (a `101 Switching Protocols` through the proxy, docs/protocol.md §12,
 * *Upgrades*): the bytes of the new protocol both ways, as they are, shaped like a WebSocket.
 * It comes from {@link Endpoint#upgrade} (the caller's side) or a handler's `info.upgrade()`
 * (the target's); it is never constructed by hand.
 *
 * - `send(data)` (a string, sent as UTF-8, an `ArrayBuffer` or a view of one) sends at once
 *   what the credit allows and queues the rest, copied, until credit comes; `bufferedAmount`
 *   is what waits. A `send()` that would take it over the socket's `maxBufferedBytes` resets
 *   the connection (`cancel`) and throws `buffer-full`.
 * - `message` events carry the received bytes as a `Uint8Array` in `data`, in order, from the
 *   first `message` listener (or `onmessage`) on, and never while `pause()`d: bytes not
 *   delivered are not granted back, so a reader that pauses, or never listens, holds the
 *   sender at the window (256 KiB). Delivered bytes are granted back as they are delivered.
 * - `end` — the other side ended its bytes (a half-close); it may still read ours.
 * - `close()` ends our bytes (`~end`, a half-close) once what is queued has gone; `reset()`
 *   aborts both ways at once (`~reset cancel`, or another §12 token).
 * - `close` fires once, after both sides have ended (`wasClean: true`, `code` 1000), or at a
 *   reset from either side or the proxy, the tunnel's loss or the endpoint's closing
 *   (`wasClean: false`, `code` 1006, `reason` the §12 token or the error's name:
 *   `tunnel-down`, `closed`, `buffer-full`; `error` the {@link HttpWsError}). It is
 *   dispatched a task later than `readyState` turns `CLOSED`, so a listener added right
 *   after the socket came still gets it; `closed` resolves with the same detail.
 * - `drain` — what `send()` queued has all gone.
 */
export class UpgradedSocket extends EventTarget {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;

  #ex;
  #protocol;
  #headers;
  #url;
  #limit;
  /** What send() queued waiting for credit, and its byte count. */
  #out = [];
  #buffered = 0;
  #state = UpgradedSocket.OPEN;
  /** close() was called: our end goes once the queue has. */
  #closing = false;
  #paused = false;
  /** A message listener exists: from then on, received bytes are delivered. */
  #listening = false;
  /** Their end has been delivered. */
  #ended = false;
  #scheduled = false;
  /** Handlers set as `on<type>` properties. */
  #on = Object.create(null);
  #signal;
  #onAbort = null;
  #closed;
  #resolveClosed;

  /** @private */
  constructor(key, ex, { protocol, headers, url, maxBufferedBytes, signal }) {
    if (key !== INTERNAL) {
      throw new TypeError('an UpgradedSocket comes from Endpoint#upgrade() or a handler\'s info.upgrade()');
    }
    super();
    this.#ex = ex;
    this.#protocol = protocol;
    this.#headers = headers;
    this.#url = url;
    this.#limit = maxBufferedBytes;
    this.#closed = new Promise((resolve) => { this.#resolveClosed = resolve; });
    ex.onreadable = () => this.#schedule();
    ex.oncredit = () => this.#pump();
    ex.onfail = (error) => this.#failed(error);
    this.#signal = signal ?? null;
    if (this.#signal !== null) {
      this.#onAbort = () => this.#reset('cancel', this.#signal.reason);
      this.#signal.addEventListener('abort', this.#onAbort, { once: true });
      if (this.#signal.aborted) queueMicrotask(this.#onAbort);
    }
    this.#schedule();
  }

  /** `CONNECTING` (never seen: a socket exists from its `101` on), `OPEN`, `CLOSING`, `CLOSED`. */
  get readyState() { return this.#state; }

  /** Bytes `send()` queued that have not gone yet (they wait for credit). */
  get bufferedAmount() { return this.#buffered; }

  /** The protocol switched to (the `101`'s `Upgrade`). */
  get protocol() { return this.#protocol; }

  /** The `101`'s headers (`Connection`, `Upgrade`, `Sec-WebSocket-Accept`, …). */
  get headers() { return this.#headers; }

  /** The status that switched: always 101. */
  get status() { return 101; }

  /** The upgrade request's URL (`http://<target><path>`). */
  get url() { return this.#url; }

  /** Whether delivery is paused. */
  get paused() { return this.#paused; }

  /** Resolves with the `close` event's detail (`{code, reason, wasClean, error?}`). */
  get closed() { return this.#closed; }

  get onmessage() { return this.#on.message ?? null; }
  set onmessage(fn) { this.#setHandler('message', fn); }
  get onend() { return this.#on.end ?? null; }
  set onend(fn) { this.#setHandler('end', fn); }
  get onclose() { return this.#on.close ?? null; }
  set onclose(fn) { this.#setHandler('close', fn); }
  get ondrain() { return this.#on.drain ?? null; }
  set ondrain(fn) { this.#setHandler('drain', fn); }

  addEventListener(type, listener, options) {
    super.addEventListener(type, listener, options);
    if (type === 'message' && listener) {
      this.#listening = true;
      this.#schedule();
    }
  }

  /**
   * Send bytes: a string (as UTF-8), an `ArrayBuffer` or a view of one. Throws `closed` once
   * our side has ended (`close()`) or the socket is closed, and `buffer-full` (resetting the
   * connection) when the queue would go over `maxBufferedBytes`.
   * @param {string | ArrayBuffer | ArrayBufferView} data
   */
  send(data) {
    let bytes;
    let owned = false;
    if (typeof data === 'string') {
      bytes = new TextEncoder().encode(data);
      owned = true;
    } else if (data instanceof ArrayBuffer) {
      bytes = new Uint8Array(data);
    } else if (ArrayBuffer.isView(data)) {
      bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    } else {
      throw new TypeError('send() takes a string, an ArrayBuffer or a view of one');
    }
    if (this.#state !== UpgradedSocket.OPEN) {
      throw new HttpWsError('closed', this.#state === UpgradedSocket.CLOSING
        ? 'this side has ended (close() was called): nothing more can be sent'
        : 'the upgraded connection is closed');
    }
    if (bytes.length === 0) return;
    const rest = this.#out.length === 0 ? bytes.subarray(this.#ex.writeNow(bytes)) : bytes;
    if (rest.length === 0) return;
    if (this.#buffered + rest.length > this.#limit) {
      const error = new HttpWsError('buffer-full',
        `send() would queue ${this.#buffered + rest.length} bytes, over the socket's ${this.#limit}-byte maxBufferedBytes`);
      this.#reset('cancel', error);
      throw error;
    }
    // Kept until credit comes: a copy, since the caller may reuse its buffer.
    this.#out.push(owned ? rest : new Uint8Array(rest));
    this.#buffered += rest.length;
  }

  /** End our side (`~end`) once what is queued has gone; the other side may go on sending. */
  close() {
    if (this.#state !== UpgradedSocket.OPEN) return;
    this.#state = UpgradedSocket.CLOSING;
    this.#closing = true;
    this.#pump();
  }

  /**
   * Abort the connection both ways at once: the other side is sent `~reset <token>` (a §12
   * token, `cancel` by default), queued and undelivered bytes are dropped.
   * @param {string} [token]
   */
  reset(token = 'cancel') {
    if (!RESET_TOKENS.has(token)) throw new TypeError(`${JSON.stringify(String(token))} is not a reset token`);
    this.#reset(token, resetError(token, 'this endpoint reset the upgraded connection'));
  }

  /** Stop delivering `message` events (and so granting credit) until {@link resume}. */
  pause() {
    this.#paused = true;
  }

  /** Deliver again what came while paused, and what comes. */
  resume() {
    this.#paused = false;
    this.#schedule();
  }

  #setHandler(type, fn) {
    if (!(type in this.#on)) super.addEventListener(type, (event) => this.#on[type]?.call(this, event));
    this.#on[type] = typeof fn === 'function' ? fn : null;
    if (type === 'message' && this.#on[type] !== null) {
      this.#listening = true;
      this.#schedule();
    }
  }

  #reset(token, error) {
    if (this.#state === UpgradedSocket.CLOSED) return;
    // Over on the wire already (both sides ended; their bytes still being delivered): no one
    // to tell.
    if (this.#ex.removed) this.#failed(error);
    else this.#ex.reset(token, error);
  }

  #schedule() {
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      this.#deliver();
    });
  }

  /** Deliver what came, while someone listens and delivery is not paused; then their end. */
  #deliver() {
    const ex = this.#ex;
    while (this.#state !== UpgradedSocket.CLOSED && this.#listening && !this.#paused) {
      const chunk = ex.take();
      if (chunk === null) break;
      this.dispatchEvent(makeEvent('message', { data: chunk }));
    }
    if (this.#state !== UpgradedSocket.CLOSED && !this.#ended && ex.recv === 'done' && ex.queue.length === 0) {
      this.#ended = true;
      this.dispatchEvent(makeEvent('end', {}));
      this.#maybeClosed();
    }
  }

  /** Send what waited for credit; then our end, if close() asked for it. */
  #pump() {
    const ex = this.#ex;
    const waited = this.#out.length > 0;
    while (this.#out.length > 0) {
      const piece = this.#out[0];
      const n = ex.writeNow(piece);
      this.#buffered -= n;
      if (n < piece.length) {
        this.#out[0] = piece.subarray(n);
        return;
      }
      this.#out.shift();
    }
    if (waited) {
      queueMicrotask(() => {
        if (this.#state !== UpgradedSocket.CLOSED) this.dispatchEvent(makeEvent('drain', {}));
      });
    }
    if (this.#closing && ex.send === 'open') {
      ex.end();
      this.#maybeClosed();
    }
  }

  /** Both sides have ended, and their end was delivered: closed cleanly. */
  #maybeClosed() {
    if (this.#state === UpgradedSocket.CLOSED || !this.#ended || this.#ex.send !== 'done') return;
    this.#finish({ code: 1000, reason: '', wasClean: true });
  }

  /** Reset (by either side or the proxy), or the tunnel lost. */
  #failed(error) {
    if (this.#state === UpgradedSocket.CLOSED) return;
    this.#out = [];
    // A reset's §12 token, else the error's name (`tunnel-down`, `closed`, `buffer-full`, …).
    const reason = error?.reset ?? (typeof error?.name === 'string' ? error.name : 'error');
    this.#finish({ code: 1006, reason, wasClean: false, error });
  }

  #finish(detail) {
    this.#state = UpgradedSocket.CLOSED;
    this.#signal?.removeEventListener('abort', this.#onAbort);
    this.#resolveClosed(detail);
    setTimeout(() => this.dispatchEvent(makeEvent('close', detail)), 0);
  }
}

/** An event of `type` with `props` on it (a `MessageEvent` for messages, where there is one). */
function makeEvent(type, props) {
  if (type === 'message' && typeof MessageEvent === 'function') return new MessageEvent(type, props);
  const event = new Event(type);
  for (const [key, value] of Object.entries(props)) Object.defineProperty(event, key, { value, enumerable: true });
  return event;
}

/** The protocol an upgrade request asks for (its `Upgrade`, with `Connection: upgrade`); else null. */
function upgradeAsked(headers) {
  let connection = false;
  const protocols = [];
  for (const [name, value] of headers) {
    const lower = name.toLowerCase();
    if (lower === 'connection' && value.split(',').some((token) => token.trim().toLowerCase() === 'upgrade')) {
      connection = true;
    } else if (lower === 'upgrade' && value.trim() !== '') {
      protocols.push(value.trim());
    }
  }
  return connection && protocols.length > 0 ? protocols.join(', ') : null;
}

/**
 * A handler's `101` as a stream head (§12): its headers, then `Connection: Upgrade`,
 * `Upgrade: <protocol>`; a header the client writes itself is refused (a `TypeError`).
 */
function switchHead(cseq, headers, protocol) {
  const lines = ['HTTP/1.1 101 Switching Protocols', `CSeq: ${cseq}`];
  for (const [name, value] of headers) {
    if (DROPPED_RESPONSE_HEADERS.has(canonicalName(name))) {
      throw new TypeError(`header ${name} cannot be set on a 101: the client writes the framing and Connection, Upgrade`);
    }
    lines.push(headerLine(name, value));
  }
  lines.push('Connection: Upgrade', `Upgrade: ${protocol}`, 'Httpws-Stream: body');
  return encodeMessage(lines, null);
}

/**
 * Connect an endpoint to the proxy at `url` and register it; see {@link Endpoint.connect}.
 * @param {string | URL} url
 * @param {ConnectOptions} [options]
 * @returns {Promise<Endpoint>}
 */
export function connect(url, options) {
  return Endpoint.connect(url, options);
}

/** The module's API as one object: `HttpWs.connect(url, options)`. */
export const HttpWs = Object.freeze({ connect, Endpoint, HttpWsError, UpgradedSocket, isValidAddress, DEFAULTS });
export default HttpWs;

// --- streams (protocol 2, docs/protocol.md §12) --------------------------------------------

/**
 * One exchange with a streamed direction, on one tunnel: our body sent only within the credit
 * the far side granted, theirs granted back as its consumer reads it, each direction ended
 * exactly once (by `end`, by being whole, or by the exchange's one reset, sent or received),
 * and both failed when the tunnel drops. It leaves the tunnel's table once both are over.
 */
class Exchange {
  /**
   * @param {{send: (bytes: Uint8Array) => void, remove: (ex: Exchange) => void}} link
   * @param {'>' | '<'} mark `>` for our calls, `<` for requests we serve
   * @param {string} cseq its CSeq in that numbering, in canonical decimal
   * @param {'waiting' | 'open' | 'done'} send our body: head not sent yet, streaming, whole
   * @param {'waiting' | 'open' | 'done'} recv their body, likewise
   * @param {number | null} declared the length their stream head declared
   */
  constructor(link, mark, cseq, send, recv, declared = null) {
    this.link = link;
    this.mark = mark;
    this.cseq = cseq;
    this.key = `${mark}${cseq}`;
    /** 'waiting' | 'open' | 'done' | 'closed' */
    this.send = send;
    /** Why our body had to stop ('closed'). */
    this.sendError = null;
    this.credit = STREAM_WINDOW;
    /** Our body bytes sent so far. */
    this.sent = 0;
    /** 'waiting' | 'open' | 'done' | 'failed' */
    this.recv = recv;
    this.recvError = null;
    /** Bytes of their declared length still to come; null when none was declared. */
    this.left = recv === 'open' ? declared : null;
    this.received = 0;
    /** What they may have sent so far: the window plus every grant. */
    this.allowed = STREAM_WINDOW;
    /** Bytes their consumer took but not yet granted back. */
    this.released = 0;
    /** Their data not yet handed to the consumer. */
    this.queue = [];
    /** A reset was sent or received, or the tunnel dropped. */
    this.over = false;
    this.removed = false;
    /** Called with the error when the exchange fails (the fetch waiting for its head rejects). */
    this.onfail = null;
    /** Called with the error when our body must stop (the body's source is cancelled). */
    this.onsendclosed = null;
    /** Called once the exchange has left the table. */
    this.onfinish = [];
    /** Called when their data or end is ready to take (an upgraded socket's delivery). */
    this.onreadable = null;
    /** Called when credit comes (an upgraded socket sends what waited for it). */
    this.oncredit = null;
    this.creditWaiter = null;
    /** A pull of the consumer's waiting for data: its resolve. */
    this.puller = null;
    this.controller = null;
  }

  #finished() {
    return this.over || (!['waiting', 'open'].includes(this.send) && !['waiting', 'open'].includes(this.recv));
  }

  /** After a change: leave the table once both directions are over. */
  #settle() {
    this.#feed();
    if (this.removed || !this.#finished()) return;
    this.removed = true;
    this.link.remove(this);
    for (const hook of this.onfinish.splice(0)) hook();
  }

  #message(verb, arg, payload) {
    const tag = `~${verb} ${this.mark}${this.cseq}${arg === null ? '' : ` ${arg}`}\n`;
    const out = new Uint8Array(tag.length + (payload === null ? 0 : payload.length));
    for (let i = 0; i < tag.length; i++) out[i] = tag.charCodeAt(i);
    if (payload !== null) out.set(payload, tag.length);
    return out;
  }

  /** Stop both directions for `error`. */
  #fail(error) {
    this.over = true;
    this.queue = [];
    if (this.recv === 'waiting' || this.recv === 'open') {
      this.recv = 'failed';
      this.recvError = error;
      try { this.controller?.error(error); } catch { /* already closed */ }
    }
    if (this.send === 'waiting' || this.send === 'open') {
      this.send = 'closed';
      this.sendError = error;
      this.onsendclosed?.(error);
    }
    this.creditWaiter?.();
    this.creditWaiter = null;
    this.onfail?.(error);
  }

  /**
   * Reset the exchange from this side, once: the far side is told `token`, our halves stop
   * with `error` (by default a `stream-reset` naming the token).
   */
  reset(token, error = resetError(token, 'this endpoint reset the stream')) {
    if (this.over) return;
    this.#fail(error);
    this.link.send(this.#message('reset', token, null));
    this.#settle();
  }

  /** The tunnel dropped, or the endpoint closed: both halves fail with `error`. */
  lost(error) {
    if (this.over) return;
    this.#fail(error);
    this.#settle();
  }

  // ---- what the tunnel delivers ------------------------------------------------------------

  onData(payload) {
    if (this.over) return;
    if (this.recv !== 'open') {
      // Data before their head, after their end, or for a body that was whole (§12).
      if (this.recv !== 'failed') this.reset('protocol', resetError('protocol', 'data came for a direction that is not streaming'));
      return;
    }
    if (this.left !== null && payload.length > this.left) {
      this.reset('too-large', resetError('too-large', 'more body came than its Content-Length declared'));
      return;
    }
    if (this.left !== null) this.left -= payload.length;
    this.received += payload.length;
    if (this.received > this.allowed) {
      this.reset('flow-control', resetError('flow-control', 'the other side sent more than the credit granted'));
      return;
    }
    if (payload.length > 0) this.queue.push(payload);
    this.#feed();
  }

  onEnd() {
    if (this.over) return;
    if (this.recv === 'waiting') {
      this.reset('protocol', resetError('protocol', 'an end came before the head'));
    } else if (this.recv === 'open') {
      if (this.left !== null && this.left > 0) {
        this.reset('too-large', resetError('too-large', `the body ended ${this.left} bytes short of its Content-Length`));
        return;
      }
      this.recv = 'done';
      this.#settle();
    }
  }

  onCredit(n) {
    if (this.send !== 'open') return;
    this.credit += n;
    this.creditWaiter?.();
    this.creditWaiter = null;
    this.oncredit?.();
  }

  onReset(token) {
    if (this.over) return;
    this.#fail(resetError(token, 'the stream was reset by the other side or the proxy'));
    this.#settle();
  }

  /** A call's response head came: streaming (with its declared length), or whole. */
  responseArrived(streaming, declared) {
    if (this.over) return;
    if (streaming) {
      this.recv = 'open';
      this.left = declared;
    } else {
      this.recv = 'done';
      // A whole answer ends the exchange: the rest of our request body is not wanted.
      if (this.send === 'waiting' || this.send === 'open') {
        this.send = 'closed';
        this.sendError = new HttpWsError('answered', 'the request was answered before its body was sent');
        this.onsendclosed?.(this.sendError);
        this.creditWaiter?.();
        this.creditWaiter = null;
      }
    }
    this.#settle();
  }

  /** We answered a served request: with a stream head, or whole (which ends the exchange). */
  responded(streaming) {
    if (this.over) return;
    if (streaming) {
      this.send = 'open';
    } else {
      this.send = 'done';
      if (this.recv === 'waiting' || this.recv === 'open') {
        this.recv = 'failed';
        this.recvError = new HttpWsError('answered', 'the request was answered before its body was read');
        this.queue = [];
        try { this.controller?.error(this.recvError); } catch { /* already closed */ }
      }
    }
    this.#settle();
  }

  // ---- our body ----------------------------------------------------------------------------

  /** Send `bytes` as data messages, each within the credit; waits for credit as needed. */
  async write(bytes) {
    let at = 0;
    while (at < bytes.length) {
      if (this.send !== 'open') throw this.sendError ?? new HttpWsError('closed', 'the stream is over');
      if (this.credit <= 0) {
        await new Promise((resolve) => { this.creditWaiter = resolve; });
        continue;
      }
      const n = Math.min(this.credit, DATA_PIECE_BYTES, bytes.length - at);
      this.credit -= n;
      this.sent += n;
      this.link.send(this.#message('data', null, bytes.subarray(at, at + n)));
      at += n;
    }
  }

  /**
   * Send as much of `bytes` as the credit allows now, in data messages of at most a piece
   * each (the payload is copied into them); returns how many bytes went.
   */
  writeNow(bytes) {
    let at = 0;
    while (at < bytes.length && this.send === 'open' && this.credit > 0) {
      const n = Math.min(this.credit, DATA_PIECE_BYTES, bytes.length - at);
      this.credit -= n;
      this.sent += n;
      this.link.send(this.#message('data', null, bytes.subarray(at, at + n)));
      at += n;
    }
    return at;
  }

  /** Our body is complete: `end`, after all its data. */
  end() {
    if (this.send !== 'open') throw this.sendError ?? new HttpWsError('closed', 'the stream is over');
    this.send = 'done';
    this.link.send(this.#message('end', null, null));
    this.#settle();
  }

  // ---- their body --------------------------------------------------------------------------

  /**
   * Their body as a ReadableStream. It pulls: a piece is handed over only when the consumer
   * reads, and only then granted back, so a consumer that stops reading holds the sender at
   * the window. Cancelling it resets the exchange (`cancel`) unless the body had ended.
   */
  readable() {
    return new ReadableStream({
      start: (controller) => { this.controller = controller; },
      pull: () => new Promise((resolve) => {
        this.puller = resolve;
        this.#feed();
      }),
      cancel: (reason) => {
        this.controller = null;
        if (this.recv === 'open' || this.recv === 'waiting') {
          this.reset('cancel', reason instanceof Error ? reason : resetError('cancel', 'the body was cancelled'));
        }
      },
    }, { highWaterMark: 0 });
  }

  /** Their next piece, granted back as it is taken; null when none waits. */
  take() {
    if (this.queue.length === 0) return null;
    const chunk = this.queue.shift();
    this.#release(chunk.length);
    return chunk;
  }

  /** Hand the waiting consumer its next piece, or their end. */
  #feed() {
    this.onreadable?.();
    const resolve = this.puller;
    const controller = this.controller;
    if (resolve === null || controller === null) return;
    if (this.queue.length > 0) {
      const chunk = this.queue.shift();
      this.puller = null;
      controller.enqueue(chunk);
      this.#release(chunk.length);
      resolve();
    } else if (this.recv === 'done') {
      this.puller = null;
      this.controller = null;
      controller.close();
      resolve();
    } else if (this.recv === 'failed') {
      this.puller = null;
      this.controller = null;
      // Errored already if the stream existed when the exchange failed; erroring again is a no-op.
      controller.error(this.recvError);
      resolve();
    }
  }

  /** The consumer took `n` bytes: grant them back, in batches. */
  #release(n) {
    if (this.recv !== 'open') return;
    this.released += n;
    if (this.released < CREDIT_BATCH_BYTES) return;
    const grant = this.released;
    this.released = 0;
    this.allowed += grant;
    this.link.send(this.#message('credit', grant, null));
  }
}

/** A `stream-reset` error for a reset with `token`. */
function resetError(token, why) {
  return new HttpWsError('stream-reset', `${why} (reset ${token})`, { reset: token });
}

/**
 * The tag line at the front of a stream message (§12), read strictly, as the proxy reads it:
 * `{verb, mark, cseq, arg, payload}`, or null for a malformed one.
 */
function parseStreamTag(bytes) {
  const window = Math.min(bytes.length, MAX_TAG_BYTES);
  let lf = -1;
  for (let i = 0; i < window; i++) {
    if (bytes[i] === LF) {
      lf = i;
      break;
    }
  }
  if (lf < 0) return null;
  const m = TAG_RE.exec(latin1(bytes.subarray(0, lf + 1)));
  if (!m) return null;
  const [, verb, mark, digits, arg] = m;
  const payload = bytes.subarray(lf + 1);
  let cseq;
  try {
    cseq = BigInt(digits);
  } catch {
    return null;
  }
  if (cseq > MAX_U64) return null;
  switch (verb) {
    case 'data':
      if (arg !== undefined) return null;
      break;
    case 'end':
      if (arg !== undefined || payload.length > 0) return null;
      break;
    case 'credit':
      if (arg === undefined || !/^\d{1,20}$/.test(arg) || BigInt(arg) > MAX_U64 || payload.length > 0) return null;
      break;
    default: // reset
      if (arg === undefined || !RESET_TOKENS.has(arg) || payload.length > 0) return null;
  }
  return { verb, mark, cseq: cseq.toString(), arg, payload };
}

/** A chunk from a body stream as bytes; anything else is the source's error. */
function chunkBytes(chunk) {
  if (chunk instanceof Uint8Array) return chunk;
  if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk);
  if (ArrayBuffer.isView(chunk)) return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw new TypeError('a body stream must yield Uint8Array chunks');
}

/** The byte length of a fetch body init when it is known without reading it; else null. */
function knownLength(body) {
  if (body === undefined || body === null) return 0;
  if (typeof body === 'string') return new TextEncoder().encode(body).length;
  if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) return body.byteLength;
  if (typeof Blob === 'function' && body instanceof Blob) return body.size;
  if (body instanceof URLSearchParams) return new TextEncoder().encode(body.toString()).length;
  return null; // FormData, a stream, anything else: only reading tells
}

/** Registration failures that may have been over the `httpws.2` offer (worth a retry without). */
const OVER_OFFER = new WeakSet();

function markOverOffer(overOffer, error) {
  if (overOffer) OVER_OFFER.add(error);
  return error;
}

/** What {@link readAhead} resolves with when the body is still producing. */
const LATER = Symbol('later');

/**
 * Read what a body has ready (what comes without waiting for a timer: in-memory bodies come
 * whole this way), up to `limit` bytes. `{chunks, total, done, pending}`: `pending` is a read
 * still in progress, to be awaited first by whoever goes on reading.
 */
async function readAhead(reader, limit) {
  const chunks = [];
  let total = 0;
  for (;;) {
    const pending = reader.read();
    let timer;
    const later = new Promise((resolve) => { timer = setTimeout(() => resolve(LATER), 0); });
    const got = await Promise.race([pending, later]);
    clearTimeout(timer);
    if (got === LATER) return { chunks, total, done: false, pending };
    if (got.done) return { chunks, total, done: true, pending: null };
    const chunk = chunkBytes(got.value);
    chunks.push(chunk);
    total += chunk.length;
    if (total > limit) return { chunks, total, done: false, pending: null };
  }
}

/**
 * Whether a body read ahead past the limit is over already: one more read, if it comes at
 * once, tells (a large in-memory body comes as one chunk; its length is then known and sent).
 * `ahead` is updated with that read.
 */
async function overAfterAll(reader, ahead) {
  const pending = reader.read();
  let timer;
  const later = new Promise((resolve) => { timer = setTimeout(() => resolve(LATER), 0); });
  const got = await Promise.race([pending, later]);
  clearTimeout(timer);
  if (got === LATER) {
    ahead.pending = pending;
    return false;
  }
  if (got.done) return true;
  const chunk = chunkBytes(got.value);
  ahead.chunks.push(chunk);
  ahead.total += chunk.length;
  return false;
}

/**
 * How a body goes over a protocol-2 tunnel: `{whole}` (bytes or null), one message with its
 * head; or `{stream}`, a stream head then data messages: `{length, chunks, pending, reader}`
 * (`length` null when unknown, `chunks` already read, `pending` a read in progress).
 * @param {ReadableStream | null} body
 * @param {number | null} length its length if known without reading it
 * @param {boolean} eager stream at once, without reading ahead (a stream the caller built,
 *   an event stream: it may wait long for its next bytes)
 * @param {number} limit the whole-message limit, for a body read whole
 */
async function planBody(body, length, eager, limit, what) {
  if (body === null || body === undefined) return { whole: null };
  if (length !== null && length <= WHOLE_BODY_BYTES) return { whole: await readBody(body, limit, what) };
  const reader = body.getReader();
  if (length !== null || eager) return { stream: { length, chunks: [], pending: null, reader } };
  const ahead = await readAhead(reader, WHOLE_BODY_BYTES);
  if (ahead.done) return { whole: ahead.total === 0 ? null : concat(ahead.chunks, ahead.total) };
  const known = ahead.pending === null && await overAfterAll(reader, ahead);
  return { stream: { length: known ? ahead.total : null, chunks: ahead.chunks, pending: ahead.pending, reader: known ? null : reader } };
}

/**
 * Send a planned body's stream as data messages within the credit, then `end`. Resolves with
 * `{error: null}` once ended, or with why it stopped: the exchange's error (reset, answered
 * whole, tunnel lost), or, with `bySource`, the source's (which resets the exchange: `cancel`,
 * or `too-large` for a body that broke its declared length). The source is cancelled
 * whenever the exchange stops it first.
 */
async function pumpBody(ex, source) {
  const { reader } = source;
  ex.onsendclosed = (error) => { reader?.cancel(error).catch(() => {}); };
  try {
    const write = async (chunk) => {
      const bytes = chunkBytes(chunk);
      if (source.length !== null && ex.sent + bytes.length > source.length) {
        throw resetError('too-large', `the body is longer than its declared ${source.length} bytes`);
      }
      await ex.write(bytes);
    };
    for (const chunk of source.chunks) await write(chunk);
    source.chunks = [];
    let next = source.pending;
    source.pending = null;
    while (reader !== null) {
      const { done, value } = await (next ?? reader.read());
      next = null;
      if (done) break;
      await write(value);
    }
    if (source.length !== null && ex.sent !== source.length) {
      throw resetError('too-large', `the body ended at ${ex.sent} of its declared ${source.length} bytes`);
    }
    ex.end();
    return { error: null, bySource: false };
  } catch (error) {
    if (ex.send === 'closed') return { error: ex.sendError, bySource: false };
    ex.reset(error?.reset === 'too-large' ? 'too-large' : 'cancel', error);
    reader?.cancel(error).catch(() => {});
    return { error, bySource: true };
  }
}

/** How a fetch's request body goes over a protocol-2 tunnel (see {@link planBody}). */
async function planRequestBody(request, streamBody, init, limit) {
  const what = 'the request body';
  if (streamBody !== null) return planBody(streamBody, null, true, limit, what);
  if (request.body === undefined) {
    // Firefox and Safari have no Request.body stream: read it at once, then decide.
    const bytes = new Uint8Array(await request.arrayBuffer());
    if (bytes.length <= WHOLE_BODY_BYTES) return { whole: bytes.length === 0 ? null : bytes };
    return { stream: { length: bytes.length, chunks: [bytes], pending: null, reader: null } };
  }
  if (request.body === null) return { whole: null };
  // The length is known from the init's body; a Request given as input only reading tells.
  const length = init?.body !== undefined && init?.body !== null ? knownLength(init.body) : null;
  return planBody(request.body, length, false, limit, what);
}

/** The rest of a planned stream, read whole (for a tunnel that speaks protocol 1 after all). */
async function readRest(source, limit) {
  const chunks = [...source.chunks];
  let total = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
  const tooLarge = () => new HttpWsError('message-too-large', `the request body is over the ${limit}-byte message limit`);
  if (total > limit) throw tooLarge();
  let next = source.pending;
  while (source.reader !== null) {
    const { done, value } = await (next ?? source.reader.read());
    next = null;
    if (done) break;
    const chunk = chunkBytes(value);
    total += chunk.length;
    if (total > limit) throw tooLarge();
    chunks.push(chunk);
  }
  return total === 0 ? null : concat(chunks, total);
}

/**
 * Whether this platform's `Request` can carry a ReadableStream body (Chromium and Node can;
 * Firefox and Safari cannot yet): the feature test the Fetch standard's authors recommend.
 */
function requestStreams() {
  try {
    let duplex = false;
    const hasType = new Request('http://x/', {
      body: new ReadableStream(),
      method: 'POST',
      get duplex() { duplex = true; return 'half'; },
    }).headers.has('Content-Type');
    return duplex && !hasType;
  } catch {
    return false;
  }
}

// --- helpers (HTTP/1.1 in one message) ------------------------------------------------------

function positive(value, what) {
  const n = Number(value);
  if (!(n > 0)) throw new TypeError(`${what} must be a positive number, not ${value}`);
  return n;
}

function detailOf(error) {
  return error instanceof Error ? error.message : error;
}

function explainStatus(status) {
  switch (status) {
    case 400: return 'bad request: the name or the handshake is not acceptable';
    case 401: return 'a token is required, or this one is unknown';
    case 403: return 'this token may not register that name, or this origin is not allowed';
    case 409: return 'the name is held by another connection';
    case 503: return 'the proxy is shutting down';
    default: return 'refused';
  }
}

/**
 * A header name as the proxy compares it: case folded, and `_` read as `-`, since some
 * servers treat `Httpws_From` as `Httpws-From` (docs/protocol.md §2).
 */
function canonicalName(name) {
  return name.toLowerCase().replaceAll('_', '-');
}

function checkRequestHeaders(headers) {
  for (const [name] of headers) {
    if (REFUSED_REQUEST_HEADERS.has(canonicalName(name))) {
      throw new TypeError(`header ${name} cannot be set on an httpws request ` +
        '(the client writes Host, CSeq and the framing; the proxy writes Httpws-From)');
    }
  }
}

/** A request's body, whole; null for none. */
async function readRequestBody(request, limit) {
  if (request.body !== undefined) return readBody(request.body, limit, 'the request body');
  // Firefox and Safari have no Request.body stream: read it at once, and check afterwards.
  const bytes = new Uint8Array(await request.arrayBuffer());
  if (bytes.length > limit) {
    throw new HttpWsError('message-too-large', `the request body is over the ${limit}-byte message limit`);
  }
  return bytes.length === 0 ? null : bytes;
}

/** Read a body stream whole, refusing more than `limit` bytes; null for no body. */
async function readBody(stream, limit, what) {
  if (stream === null || stream === undefined) return null;
  const reader = stream.getReader();
  const chunks = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const chunk = value instanceof Uint8Array ? value : new Uint8Array(value);
    total += chunk.length;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      throw new HttpWsError('message-too-large', `${what} is over the ${limit}-byte message limit`);
    }
    chunks.push(chunk);
  }
  return concat(chunks, total);
}

function concat(chunks, total) {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/**
 * One header line; throws a TypeError for a name that is not an HTTP token or a value that
 * could not be written as it is (CR, LF, other control characters, code points above 0xFF).
 * A `Headers` object already refuses most of these, but a handler may return a plain object.
 */
function headerLine(name, value) {
  const text = String(value);
  if (typeof name !== 'string' || !TOKEN_RE.test(name)) {
    throw new TypeError(`header name ${JSON.stringify(String(name)).slice(0, 100)} is not an HTTP token`);
  }
  if (BAD_HEAD_CHAR.test(text)) {
    throw new TypeError(`the value of header ${name} has a control character or a character above U+00FF`);
  }
  return `${name}: ${text}`;
}

/**
 * A head (lines without CRLF) and optional body as one message, the head in Latin-1. Every
 * line is checked again here, so that nothing can add a line of its own or lose its high
 * bits (U+010A would otherwise be written as LF).
 */
function encodeMessage(lines, body) {
  for (const line of lines) {
    if (BAD_HEAD_CHAR.test(line)) {
      throw new TypeError(`refusing to write the head line ${JSON.stringify(line.slice(0, 100))}`);
    }
  }
  const head = `${lines.join('\r\n')}\r\n\r\n`;
  const out = new Uint8Array(head.length + (body === null ? 0 : body.length));
  for (let i = 0; i < head.length; i++) out[i] = head.charCodeAt(i) & 0xff;
  if (body !== null) out.set(body, head.length);
  return out;
}

function latin1(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i += 8192) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
  }
  return s;
}

function unquote(text) {
  if (!(text.length >= 2 && text.startsWith('"') && text.endsWith('"'))) return text;
  return text.slice(1, -1).replace(/\\(.)/gs, '$1');
}

function errorResponse(cseq, status, token, text) {
  const body = new TextEncoder().encode(text);
  return encodeMessage([
    `HTTP/1.1 ${status} ${REASONS[status] ?? ''}`,
    `CSeq: ${cseq}`,
    `Httpws-Error: ${token}`,
    'Content-Type: text/plain; charset=utf-8',
    `Content-Length: ${body.length}`,
  ], body);
}

/** A handler's response head as lines, without its framing; and the length it declared. */
function responseHeadLines(cseq, response) {
  const status = response.status;
  const reason = (typeof response.statusText === 'string' && response.statusText) || REASONS[status] || '';
  const lines = [`HTTP/1.1 ${status} ${reason}`, `CSeq: ${cseq}`];
  let declared = null;
  for (const [name, value] of response.headers) {
    const line = headerLine(name, value);
    const canonical = canonicalName(name);
    if (canonical === 'content-length') declared = String(value);
    if (!DROPPED_RESPONSE_HEADERS.has(canonical)) lines.push(line);
  }
  return { lines, declared };
}

/** A handler's response as a stream head (§12): its body follows as data messages. */
function serializeStreamHead(cseq, response, length) {
  const { lines } = responseHeadLines(cseq, response);
  lines.push('Httpws-Stream: body');
  if (length !== null) lines.push(`Content-Length: ${length}`);
  return encodeMessage(lines, null);
}

/** The length a handler's response headers declare, if they declare a valid one. */
function declaredLength(headers) {
  const value = typeof headers.get === 'function' ? headers.get('content-length') : null;
  return value !== null && /^\d{1,15}$/.test(value.trim()) ? Number(value.trim()) : null;
}

/** Whether a response is an event stream (Server-Sent Events), to stream from its first byte. */
function isEventStream(headers) {
  const type = typeof headers.get === 'function' ? headers.get('content-type') : null;
  return type !== null && /^\s*text\/event-stream\s*(;|$)/i.test(type);
}

/** A CSeq in canonical decimal (the proxy writes them so; `007` is 7). */
function canonicalCseq(cseq) {
  return BigInt(cseq).toString();
}

/**
 * A handler's response as one whole message. `length` is what a HEAD answer's Content-Length
 * says: `'body'` for the body's (or, with none, the handler's own declared one), a number, or
 * null for none (a body of unknown length).
 */
function serializeResponse(cseq, response, body, isHead, length = 'body') {
  const status = response.status;
  const { lines, declared } = responseHeadLines(cseq, response);
  if (isHead && length !== 'body') {
    if (length !== null) lines.push(`Content-Length: ${length}`);
  } else if (status !== 204 && status !== 304) {
    let told = body === null ? 0 : body.length;
    // A HEAD handler may declare the length of the body it does not send.
    if (isHead && told === 0 && declared !== null && /^\d+$/.test(declared)) told = Number(declared);
    lines.push(`Content-Length: ${told}`);
  }
  return encodeMessage(lines, isHead || status === 204 || status === 304 ? null : body);
}

/**
 * Parse one message into `{kind, method, target, status, reason, headers, cseq, body, stream,
 * declared}` (`stream`: a stream head, whose body follows as data messages, `declared` its
 * Content-Length). Throws an Error carrying `kind` and `cseq` when they could be read, so that
 * the request or response it belongs to can still be answered; one with
 * `code: 'message-too-large'` when the message is over `limit` bytes (checked once its head is
 * read, before its body is looked at). Stream heads are accepted only when `streams`.
 */
function parseMessage(bytes, limit, streams) {
  let end = -1;
  const scan = Math.min(bytes.length, MAX_HEAD_BYTES + 4);
  for (let i = 0; i + 3 < scan; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) {
      end = i;
      break;
    }
  }
  if (end < 0) throw new Error('no complete HTTP head');
  const lines = latin1(bytes.subarray(0, end)).split('\r\n');
  const start = lines[0];
  const message = {
    kind: 'request', method: '', target: '', status: 0, reason: '', headers: [], cseq: null, body: null,
    stream: false, declared: null,
  };
  const fail = (what) => Object.assign(new Error(what), { kind: message.kind, cseq: message.cseq });
  let m;
  if (start.startsWith('HTTP/')) {
    message.kind = 'response';
    m = /^HTTP\/1\.[01] (\d{3})(?: ([^\r\n]*))?$/.exec(start);
    if (!m) throw fail(`bad status line ${JSON.stringify(start.slice(0, 100))}`);
    message.status = Number(m[1]);
    message.reason = m[2] ?? '';
  } else {
    m = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([^ \r\n]+) HTTP\/1\.[01]$/.exec(start);
    if (!m) throw fail(`bad request line ${JSON.stringify(start.slice(0, 100))}`);
    const upper = m[1].toUpperCase();
    message.method = FOLDED_METHODS.has(upper) ? upper : m[1];
    message.target = m[2];
  }
  if (lines.length - 1 > MAX_HEADERS) throw fail(`more than ${MAX_HEADERS} header lines`);
  let problem = null;
  let contentLength = null;
  let chunked = false;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    if (!TOKEN_RE.test(name) || /[\r\n\0]/.test(line)) {
      problem ??= `bad header line ${JSON.stringify(line.slice(0, 100))}`;
      continue;
    }
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    const lower = name.toLowerCase();
    if (lower === 'cseq') {
      if (message.cseq !== null || !/^\d{1,20}$/.test(value)) problem ??= 'a missing, repeated or malformed CSeq';
      else message.cseq = value;
    } else if (lower === 'content-length') {
      if (contentLength !== null || !/^\d{1,15}$/.test(value)) problem ??= 'a repeated or malformed Content-Length';
      else contentLength = Number(value);
    } else if (lower === 'transfer-encoding') {
      if (chunked || value.toLowerCase() !== 'chunked') problem ??= `unsupported Transfer-Encoding ${value}`;
      chunked = true;
    } else if (canonicalName(name) === 'httpws-stream') {
      if (!streams) problem ??= 'a stream head on a tunnel that speaks protocol 1';
      else if (message.stream || value.toLowerCase() !== 'body') problem ??= `a repeated or malformed Httpws-Stream ${value}`;
      message.stream = true;
      continue; // framing, never shown to the application
    }
    message.headers.push([name, value]);
  }
  if (message.cseq === null) throw fail('no CSeq');
  if (bytes.length > limit) {
    throw Object.assign(fail(`a ${bytes.length}-byte message, over the ${limit}-byte limit`), { code: 'message-too-large' });
  }
  if (problem !== null) throw fail(problem);
  if (chunked && contentLength !== null) throw fail('both Transfer-Encoding and Content-Length');
  const rest = bytes.subarray(end + 4);
  if (message.stream) {
    // Its body follows as data messages: nothing after the head, no chunk framing (§12).
    if (chunked) throw fail('a stream head with Transfer-Encoding');
    if (rest.length > 0) throw fail('a stream head with bytes after it');
    message.declared = contentLength;
    message.body = rest;
    return message;
  }
  if (chunked) {
    message.body = decodeChunked(rest, fail);
  } else if (contentLength !== null) {
    if (rest.length > contentLength) throw fail('more body than its Content-Length');
    // Less is allowed in a response: one to HEAD declares a length it does not carry.
    if (rest.length < contentLength && message.kind === 'request') throw fail('less body than its Content-Length');
    message.body = rest;
  } else {
    message.body = rest; // no length: the body is the rest of the message
  }
  return message;
}

/**
 * The body of a chunked message (RFC 9112 §7.1, read strictly, as the proxy reads it: hex
 * sizes, CRLF line ends, data followed by CRLF, trailer lines up to an empty one; extensions
 * and trailers are dropped). Two passes over the bytes: the first checks the framing and
 * adds up the sizes, the second copies the data into one buffer of exactly that size. Nothing
 * is allocated per chunk, and there are at most {@link MAX_CHUNKS} chunks.
 */
function decodeChunked(bytes, fail) {
  let total = 0;
  let chunks = 0;
  let pos = 0;
  for (;;) {
    const [size, data] = chunkSizeLine(bytes, pos, fail);
    pos = data + size;
    if (size === 0) break;
    chunks += 1;
    if (chunks > MAX_CHUNKS) throw fail(`more than ${MAX_CHUNKS} chunks in a chunked body`);
    if (pos + 2 > bytes.length || bytes[pos] !== CR || bytes[pos + 1] !== LF) throw fail('an incomplete chunked body');
    total += size;
    pos += 2;
  }
  for (;;) { // trailer lines, dropped, up to the empty line
    const eol = lineEnd(bytes, pos, fail);
    const empty = eol === pos;
    pos = eol + 2;
    if (empty) break;
  }
  if (pos !== bytes.length) throw fail('bytes after the chunked body');
  const out = new Uint8Array(total);
  let at = 0;
  for (pos = 0; at < total;) {
    const [size, data] = chunkSizeLine(bytes, pos, fail);
    out.set(bytes.subarray(data, data + size), at);
    at += size;
    pos = data + size + 2;
  }
  return out;
}

/** Read the chunk-size line at `pos`: `[size, where its data starts]`. */
function chunkSizeLine(bytes, pos, fail) {
  let size = 0;
  let digits = 0;
  let at = pos;
  for (; at < bytes.length; at++) {
    const digit = hexValue(bytes[at]);
    if (digit < 0) break;
    // Eight digits (4 GiB) are more than any message can carry.
    if (++digits > 8) throw fail('a bad chunk size');
    size = size * 16 + digit;
  }
  if (digits === 0 || (at < bytes.length && bytes[at] !== CR && bytes[at] !== 0x3b /* ; */)) {
    throw fail('a bad chunk size');
  }
  return [size, lineEnd(bytes, pos, fail) + 2];
}

/** Where the line starting at `pos` ends (its CR), within {@link MAX_CHUNK_LINE_BYTES}. */
function lineEnd(bytes, pos, fail) {
  const limit = Math.min(bytes.length, pos + MAX_CHUNK_LINE_BYTES + 1);
  for (let i = pos; i < limit; i++) {
    if (bytes[i] === LF) throw fail('a bare LF in a chunked body');
    if (bytes[i] === CR) {
      if (bytes[i + 1] !== LF) throw fail(i + 1 < bytes.length ? 'a bare CR in a chunked body' : 'an incomplete chunked body');
      return i;
    }
  }
  if (limit === bytes.length) throw fail('an incomplete chunked body');
  throw fail(`a chunk line or trailer over ${MAX_CHUNK_LINE_BYTES} bytes`);
}

function hexValue(byte) {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  const lower = byte | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

/** A fetch `Response` for a response message; `body` is its stream when it streams. */
function toResponse(message, method, url, body) {
  const headers = new Headers();
  for (const [name, value] of message.headers) {
    const lower = name.toLowerCase();
    if (lower !== 'cseq' && lower !== 'transfer-encoding') headers.append(name, value);
  }
  const status = message.status;
  if (status < 200 || status > 599) throw new Error(`status ${status} cannot be a final response`);
  const noBody = method === 'HEAD' || status === 204 || status === 205 || status === 304;
  const content = noBody ? null : message.stream ? body : message.body;
  let response;
  try {
    response = new Response(content, { status, statusText: message.reason, headers });
  } catch {
    response = new Response(content, { status, headers });
  }
  Object.defineProperty(response, 'url', { value: url });
  return response;
}

/** A fetch `Request` for a request message; `body` is its stream (or bytes) when it streams. */
function toRequest(message, address, body) {
  let path = message.target;
  if (!path.startsWith('/')) {
    if (path === '*') path = '/';
    else {
      const absolute = new URL(path);
      path = absolute.pathname + absolute.search;
    }
  }
  const headers = new Headers();
  for (const [name, value] of message.headers) {
    const lower = name.toLowerCase();
    if (lower !== 'cseq' && lower !== 'content-length' && lower !== 'transfer-encoding') headers.append(name, value);
  }
  const init = { method: message.method, headers };
  if (message.stream) {
    if (body instanceof ReadableStream) {
      init.body = body;
      init.duplex = 'half';
    } else if (body !== null && body.length > 0) {
      init.body = body;
    }
  } else if (message.body.length > 0) {
    if (message.method === 'GET' || message.method === 'HEAD') {
      throw new Error(`a ${message.method} request with a body cannot be handled as a fetch Request`);
    }
    init.body = message.body;
  }
  return new Request(`http://${address}${path}`, init);
}
