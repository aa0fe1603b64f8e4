// Test helpers: start the real httpws proxy binary, wait for events with deadlines, and speak
// the protocol by hand over a raw `ws` socket (an endpoint that is not this client).

import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import WsWebSocket from 'ws';

/**
 * The WebSocket implementation the tests give the client: the `ws` package's; with
 * `HTTPWS_JS_PROTOCOL=1`, one that offers the proxy no subprotocol, so that the client speaks
 * protocol 1 as with a proxy that does not take up protocol 2 (the suite runs both ways).
 */
export const WebSocket = process.env.HTTPWS_JS_PROTOCOL === '1'
  ? class ProtocolOneWebSocket extends WsWebSocket {
    constructor(url, _protocols, options) {
      super(url, [], options);
    }
  }
  : WsWebSocket;

/** The proxy binary: $HTTPWS_BIN, or the workspace's debug build. */
export const BIN = process.env.HTTPWS_BIN ??
  fileURLToPath(new URL('../../../target/debug/httpws', import.meta.url));

/** Proxies still running, killed when this process exits whatever happened. */
const running = new Set();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Longest any single wait in these tests may take. */
export const WAIT_MS = 10_000;

/**
 * Start `httpws proxy` on `listen` (default 127.0.0.1:0) with two shards and `args`; resolves
 * once its banner names the address. `stop()` kills it by PID.
 */
export async function startProxy(args = [], { listen = '127.0.0.1:0' } = {}) {
  const child = spawn(BIN, ['proxy', '--listen', listen, '--no-pin', '--shards', '2', ...args], {
    env: { ...process.env, HTTPWS_LOG: process.env.HTTPWS_TEST_LOG ?? 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const keep = (chunk) => { log = (log + chunk).slice(-8192); };
  child.stderr.setEncoding('utf8').on('data', keep);
  running.add(child);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => {
    running.delete(child);
    resolve({ code, signal });
  }));
  const addr = await withTimeout(new Promise((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      keep(chunk);
      out += chunk;
      const m = /httpws proxy listening on ws:\/\/(\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    child.once('error', reject);
    exited.then(({ code, signal }) => reject(new Error(`proxy exited (${code ?? signal}) before its banner:\n${log}`)));
  }), WAIT_MS, 'the proxy banner').catch((err) => {
    child.kill('SIGKILL');
    throw err;
  });
  return {
    pid: child.pid,
    addr,
    port: Number(addr.slice(addr.lastIndexOf(':') + 1)),
    url: `ws://${addr}`,
    exited,
    log: () => log,
    /** Send `signal` to the proxy (by its PID) and wait for it to exit. */
    async stop(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return withTimeout(exited, WAIT_MS, 'the proxy to exit');
    },
  };
}

/** Reject with a clear message if `promise` takes longer than `ms`. */
export function withTimeout(promise, ms, what) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** The next `type` event from an EventTarget, within `ms`. */
export function nextEvent(target, type, ms = WAIT_MS) {
  return withTimeout(new Promise((resolve) => {
    target.addEventListener(type, resolve, { once: true });
  }), ms, `a ${type} event`);
}

/** A tokens file (`[{label, token, names}]`) in a temporary directory removed at exit. */
export function tokensFile(entries) {
  const dir = mkdtempSync(join(tmpdir(), 'httpws-js-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const text = entries.map(({ label, token, names }) => {
    const hashed = spawnSync(BIN, ['hash-token'], { input: token, encoding: 'utf8', timeout: WAIT_MS });
    if (hashed.status !== 0) throw new Error(`hash-token failed: ${hashed.stderr}`);
    return `[[tokens]]\nlabel = "${label}"\nsha256 = "${hashed.stdout.trim()}"\nnames = ${JSON.stringify(names)}\n`;
  }).join('\n');
  const path = join(dir, 'tokens.toml');
  writeFileSync(path, text);
  return path;
}

/**
 * An endpoint that speaks the protocol by hand over `ws`: `next()` resolves with the next
 * message as a Buffer (with `.binary`), `send()` sends text or bytes. `protocols` are the
 * subprotocols it offers (`['httpws.2']` for protocol 2; none, protocol 1, by default).
 */
export async function rawEndpoint(proxyUrl, name, { protocols = [] } = {}) {
  const ws = new WsWebSocket(`${proxyUrl}/${name}`, protocols);
  const queue = [];
  const waiters = [];
  ws.on('message', (data, isBinary) => {
    const message = Object.assign(Buffer.from(data), { binary: isBinary });
    const waiter = waiters.shift();
    if (waiter) waiter(message);
    else queue.push(message);
  });
  await withTimeout(once(ws, 'open'), WAIT_MS, `raw ${name} to open`);
  const next = () => withTimeout(new Promise((resolve) => {
    const queued = queue.shift();
    if (queued) resolve(queued);
    else waiters.push(resolve);
  }), WAIT_MS, `a message for raw ${name}`);
  const hello = (await next()).toString();
  if (hello !== `:host ${name}`) throw new Error(`raw ${name} got ${hello}`);
  return {
    ws,
    address: name,
    next,
    send: (data) => ws.send(data),
    close: () => { ws.terminate(); },
  };
}

/** Parse an HTTP/1.1 message from a Buffer: `{start, headers: [[lower, value]], header(n), body}`. */
export function parseHttp(buf) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`no head in ${JSON.stringify(buf.toString())}`);
  const [start, ...lines] = buf.subarray(0, end).toString('latin1').split('\r\n');
  const headers = lines.map((line) => {
    const colon = line.indexOf(':');
    return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()];
  });
  return {
    start,
    headers,
    header: (name) => headers.find(([n]) => n === name)?.[1],
    all: (name) => headers.filter(([n]) => n === name).map(([, v]) => v),
    body: buf.subarray(end + 4),
  };
}

/**
 * The error token of an answer an endpoint (not the proxy) made: the proxy renames a target's
 * own `Httpws-Error` to `Httpws-Target-Error` on the way to the caller, so that a target
 * cannot pass its answers off as the proxy's (an Httpws-Error there fails the test). Takes a
 * fetch `Response` or a {@link parseHttp} result.
 */
export function targetError(res) {
  const get = typeof res.header === 'function' ? (name) => res.header(name) : (name) => res.headers.get(name) ?? undefined;
  // The proxy renames an endpoint's own Httpws-Error: only the proxy's answers carry it.
  if (get('httpws-error') !== undefined && get('httpws-error') !== null) {
    throw new Error(`an endpoint's answer reached the caller with Httpws-Error: ${get('httpws-error')}`);
  }
  return get('httpws-target-error');
}

/**
 * Start the endpoint agent (`httpws endpoint --proxy <proxyUrl> <args>`); resolves once it has
 * printed that it registered (and, with `--listen`, where it listens). `listen` is that
 * address (`host:port`) or null; `stop()` kills it by its PID.
 */
export async function startAgent(proxyUrl, args) {
  const child = spawn(BIN, ['endpoint', '--proxy', proxyUrl, ...args], {
    env: { ...process.env, HTTPWS_LOG: process.env.HTTPWS_TEST_LOG ?? 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const keep = (chunk) => { log = (log + chunk).slice(-8192); };
  child.stderr.setEncoding('utf8').on('data', keep);
  running.add(child);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => {
    running.delete(child);
    resolve({ code, signal });
  }));
  const wantsListen = args.includes('--listen');
  const ready = await withTimeout(new Promise((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      keep(chunk);
      out += chunk;
      const name = /httpws endpoint registered as (\S+)/.exec(out)?.[1];
      const listen = /httpws endpoint listening on http:\/\/([^/\s]+)/.exec(out)?.[1] ?? null;
      if (name !== undefined && (!wantsListen || listen !== null)) resolve({ name, listen });
    });
    child.once('error', reject);
    exited.then(({ code, signal }) => reject(new Error(`the agent exited (${code ?? signal}) before registering:\n${log}`)));
  }), WAIT_MS, 'the agent to register').catch((err) => {
    child.kill('SIGKILL');
    throw err;
  });
  return {
    ...ready,
    log: () => log,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      return withTimeout(exited, WAIT_MS, 'the agent to exit');
    },
  };
}
