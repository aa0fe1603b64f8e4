//! The tunnel session: one WebSocket to the proxy, kept alive for as long as the endpoint
//! runs. It registers the name, numbers outgoing requests with CSeq and matches responses to
//! them, hands incoming requests to whoever serves them, answers pings, notices a dead proxy,
//! and reconnects with exponential backoff and jitter under the same name (a name the proxy
//! assigned is given up only when the proxy refuses it for good: see [`refusal::judge`]).
//!
//! Nothing is ever left hanging: when a tunnel drops, every request waiting on it fails with
//! [`Failure::TargetGone`]; while it is down, new requests fail at once with
//! [`Failure::TunnelDown`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, sleep, sleep_until, timeout};

use super::config::{OUTGOING_QUEUE_FRAMES, SessionConfig};
use super::refusal::{self, Verdict};
use super::tls::ProxyStream;
use super::tls_diagnosis::{self, SchemeMismatch};
use crate::proto::address::VirtualAddress;
use crate::proto::answer_error::AnswerError;
use crate::proto::frame::{
    self, DecoderConfig, Event, MAX_HEADER_LEN, MessageDecoder, OpCode, Role,
};
use crate::proto::handshake::{self, ClientHandshakeError};
use crate::proto::head::{self, HeadKind, HeadLimits};
use crate::proto::http1::head_scanner::{HeadScanner, ScanError};
use crate::proto::http1::{decimal, status, write};
use crate::proto::indication::{self, Indication, IndicationError};

/// Largest handshake response head accepted from the proxy.
const MAX_HANDSHAKE_RESPONSE_BYTES: usize = 16 * 1024;
/// Largest head inspected in a message from the proxy (the proxy enforces its own limit).
const MAX_MESSAGE_HEAD_BYTES: usize = 64 * 1024;
/// Bytes of frames gathered into one write.
const WRITE_BATCH_BYTES: usize = 256 * 1024;
/// A write buffer grown past this by one large message is given back afterwards.
const KEEP_WRITE_BUFFER_BYTES: usize = 1024 * 1024;
/// Room made before each read from the proxy.
const READ_RESERVE_BYTES: usize = 64 * 1024;
/// How long a closing tunnel waits for its writer to flush the close frame.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(1);
/// A registration that lasted this long resets the reconnect backoff.
const STABLE_LINK: Duration = Duration::from_secs(10);

/// Why a request got no response from the far end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// No tunnel right now (connecting or reconnecting).
    #[error("the tunnel to the proxy is down")]
    TunnelDown,
    /// The tunnel dropped while the request was waiting.
    #[error("the tunnel dropped before the response arrived")]
    TargetGone,
    /// The message is larger than the tunnel's message limit.
    #[error("the message exceeds the tunnel's size limit")]
    TooLarge,
    /// The session was closed for good.
    #[error("the endpoint is closed")]
    Closed,
}

/// Why the session stopped trying (it retries everything else).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Fatal {
    /// The proxy refused the registration in a way retrying cannot fix (a bad name or token,
    /// a name another credential holds): its status and the reason it gave (the `text/plain`
    /// body of its answer, else the status line's phrase).
    #[error("the proxy refused the registration: {status} {}: {reason}", status::reason_phrase(*status))]
    Refused { status: u16, reason: String },
    /// The URL says `ws://` and the server speaks TLS, or the other way round.
    #[error("{0}")]
    WrongScheme(SchemeMismatch),
    /// Another connection with our credentials took the name over.
    #[error("replaced by another connection for the same name: {0}")]
    Replaced(String),
    /// `wss://` without any certificate authority to check the proxy against.
    #[error("cannot set up TLS to the proxy: {0}")]
    Tls(String),
}

/// Why one connection attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connecting to the proxy: {0}")]
    Io(#[from] std::io::Error),
    #[error("timed out connecting to the proxy")]
    Timeout,
    #[error("opening handshake: {0}")]
    Handshake(#[from] ClientHandshakeError),
    #[error("the proxy closed the tunnel before registering it")]
    NotRegistered,
    /// The proxy refused the registration; [`refusal::judge`] decides what happens next.
    #[error("the proxy refused the registration: {status} {}: {reason}", status::reason_phrase(*status))]
    Refused { status: u16, reason: String },
    /// The TLS handshake failed (an untrusted or mismatched certificate, say), with what to
    /// do about it where we know. Retried: the proxy's certificate may be fixed or renewed
    /// while we wait.
    #[error("TLS to the proxy: {source}{}", advice.as_ref().map(|a| format!(": {a}")).unwrap_or_default())]
    Tls {
        source: std::io::Error,
        advice: Option<String>,
    },
    #[error("the proxy host {0:?} is not a valid TLS server name")]
    ServerName(String),
    #[error(transparent)]
    Fatal(#[from] Fatal),
}

/// Where the session stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Connecting, or waiting to reconnect.
    Down,
    /// Registered under `address`; `generation` counts registrations (1, 2, … per reconnect).
    Up {
        address: VirtualAddress,
        generation: u64,
    },
    /// Given up: nothing will be retried.
    Failed(Fatal),
    /// Closed by [`Session::close`].
    Closed,
}

/// A request that arrived over the tunnel, to be answered with [`Session::respond`].
#[derive(Debug)]
pub struct Incoming {
    /// The registration it arrived on; a response for an older one is dropped.
    pub generation: u64,
    /// The CSeq the proxy gave it (the response must carry it).
    pub cseq: u64,
    /// The whole message: head then body.
    pub message: Bytes,
    /// Where the body starts in `message`.
    pub head_len: usize,
}

/// What the writer task sends.
enum Outgoing {
    Message { head: Bytes, body: Bytes },
    Pong(Bytes),
    Ping,
    Close(u16),
}

/// The live tunnel, while registered.
struct Link {
    generation: u64,
    out: mpsc::Sender<Outgoing>,
}

type Waiter = oneshot::Sender<Result<Bytes, Failure>>;

struct State {
    link: Option<Link>,
    next_cseq: u64,
    waiting: HashMap<u64, Waiter>,
    /// The name to register under next time: the configured one, else the one assigned.
    address: Option<VirtualAddress>,
    /// An assigned name the proxy refused for good, until a new one is registered.
    refused_name: Option<VirtualAddress>,
}

struct Shared {
    config: SessionConfig,
    state: Mutex<State>,
    status: watch::Sender<Status>,
    /// Set once someone takes the incoming requests; until then they are answered 501.
    serving: AtomicBool,
    incoming_tx: mpsc::Sender<Incoming>,
    incoming_rx: Mutex<Option<mpsc::Receiver<Incoming>>>,
    stop: watch::Sender<bool>,
}

/// A handle on the tunnel session; clones share it. The session runs until
/// [`Session::close`] or a [`Fatal`] error.
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
}

impl Session {
    /// Start the session in the background on the current tokio runtime. It connects, and
    /// keeps reconnecting, until closed; watch [`Session::status`] to see it come up.
    pub fn start(config: SessionConfig) -> Session {
        let (incoming_tx, incoming_rx) = mpsc::channel(config.max_incoming.max(1));
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                link: None,
                next_cseq: 1,
                waiting: HashMap::new(),
                address: config.name.clone(),
                refused_name: None,
            }),
            config,
            status: watch::Sender::new(Status::Down),
            serving: AtomicBool::new(false),
            incoming_tx,
            incoming_rx: Mutex::new(Some(incoming_rx)),
            stop: watch::Sender::new(false),
        });
        tokio::spawn(supervise(Arc::clone(&shared)));
        Session { shared }
    }

    /// Follow the session's status.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.shared.status.subscribe()
    }

    /// The address the tunnel is registered under right now, if it is up.
    pub fn address(&self) -> Option<VirtualAddress> {
        match &*self.shared.status.borrow() {
            Status::Up { address, .. } => Some(address.clone()),
            _ => None,
        }
    }

    /// Whether the tunnel is registered right now.
    pub fn is_up(&self) -> bool {
        lock(&self.shared.state).link.is_some()
    }

    /// Wait until the tunnel is registered (`Ok(address)`) or the session gives up.
    pub async fn ready(&self) -> Result<VirtualAddress, Failure> {
        let mut rx = self.status();
        loop {
            match &*rx.borrow_and_update() {
                Status::Up { address, .. } => return Ok(address.clone()),
                Status::Failed(_) | Status::Closed => return Err(Failure::Closed),
                Status::Down => {}
            }
            if rx.changed().await.is_err() {
                return Err(Failure::Closed);
            }
        }
    }

    /// The largest body that fits in one message with a head.
    pub fn max_body_bytes(&self) -> usize {
        self.shared.config.max_body_bytes()
    }

    /// Send a request and wait for its response (the whole message, CSeq and all).
    ///
    /// `head` is the request line and header lines, each ending in CRLF, without the blank
    /// line and without CSeq: the session appends `CSeq: <n>` and the blank line. Proxy
    /// errors (404, 503, …) are responses like any other.
    pub async fn request(&self, mut head: BytesMut, body: Bytes) -> Result<Bytes, Failure> {
        if head.len() + body.len() + 32 > self.shared.config.max_message_bytes {
            return Err(Failure::TooLarge);
        }
        let (tx, rx) = oneshot::channel();
        let (out, cseq) = {
            let mut state = lock(&self.shared.state);
            let Some(link) = &state.link else {
                return Err(Failure::TunnelDown);
            };
            let out = link.out.clone();
            let cseq = state.next_cseq;
            state.next_cseq += 1;
            state.waiting.insert(cseq, tx);
            (out, cseq)
        };
        // From here on, a caller that gives up (drops this future) must not leave its entry.
        let guard = WaitGuard {
            shared: &self.shared,
            cseq,
        };
        finish_head(&mut head, cseq);
        let message = Outgoing::Message {
            head: head.freeze(),
            body,
        };
        if out.send(message).await.is_err() {
            return Err(Failure::TunnelDown);
        }
        let result = rx.await.unwrap_or(Err(Failure::TargetGone));
        drop(guard);
        result
    }

    /// Answer an [`Incoming`] request. `head` is the status line and header lines without
    /// CSeq and without the blank line. Returns false if the request's tunnel is gone (the
    /// proxy has already answered the caller `target-gone`).
    pub async fn respond(&self, to: &Incoming, mut head: BytesMut, body: Bytes) -> bool {
        let out = {
            let state = lock(&self.shared.state);
            match &state.link {
                Some(link) if link.generation == to.generation => link.out.clone(),
                _ => return false,
            }
        };
        finish_head(&mut head, to.cseq);
        out.send(Outgoing::Message {
            head: head.freeze(),
            body,
        })
        .await
        .is_ok()
    }

    /// Take the stream of incoming requests (once; later calls get `None`). Until it is
    /// taken, incoming requests are answered `501` with `Httpws-Error: no-service`.
    pub fn take_incoming(&self) -> Option<mpsc::Receiver<Incoming>> {
        let rx = lock(&self.shared.incoming_rx).take();
        if rx.is_some() {
            self.shared.serving.store(true, Ordering::Release);
        }
        rx
    }

    /// Close the tunnel (close frame 1000) and stop reconnecting. Waiting requests fail.
    pub async fn close(&self) {
        self.shared.stop.send_replace(true);
        let mut rx = self.status();
        let _ = rx
            .wait_for(|s| matches!(s, Status::Closed | Status::Failed(_)))
            .await;
    }
}

/// Removes a request's waiting entry when its caller stops waiting, however that happens.
struct WaitGuard<'a> {
    shared: &'a Shared,
    cseq: u64,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        lock(&self.shared.state).waiting.remove(&self.cseq);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the maps half-updated in a way that
    // matters more than stopping would, so keep going.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Append `CSeq: <n>` and the blank line.
fn finish_head(head: &mut BytesMut, cseq: u64) {
    head.extend_from_slice(b"CSeq: ");
    decimal::put_u64(head, cseq);
    head.extend_from_slice(b"\r\n\r\n");
}

/// Exponential backoff with jitter: each delay is drawn from [d/2, d], d doubling per
/// attempt up to the maximum, so a fleet of agents does not reconnect in lockstep.
struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            next: initial,
        }
    }

    fn delay(&mut self) -> Duration {
        let d = self.next.min(self.max);
        self.next = (d * 2).min(self.max);
        let half = d / 2;
        half + half.mul_f64(fastrand::f64())
    }

    fn reset(&mut self) {
        self.next = self.initial;
    }
}

/// The session's life: connect, run the link, fail what waited on it, back off, repeat.
async fn supervise(shared: Arc<Shared>) {
    let config = &shared.config;
    // Problems no retry can fix are found once, here: no trust anchors, or a host that can
    // never match a certificate.
    let tls = if config.proxy.tls {
        let tls = match &config.tls {
            Some(tls) => Ok(tls.clone()),
            None => super::tls::client_config(None).map_err(|e| e.to_string()),
        };
        let checked = tls.and_then(
            |tls| match ServerName::try_from(config.proxy.host.as_str()) {
                Ok(_) => Ok(tls),
                Err(_) => Err(format!(
                    "{:?} is not a valid TLS server name",
                    config.proxy.host
                )),
            },
        );
        match checked {
            Ok(tls) => Some(tls),
            Err(why) => {
                let fatal = Fatal::Tls(why);
                tracing::error!(error = %fatal, "tunnel: giving up");
                shared.status.send_replace(Status::Failed(fatal));
                return;
            }
        }
    } else {
        None
    };
    let mut stop = shared.stop.subscribe();
    let mut backoff = Backoff::new(config.reconnect_initial, config.reconnect_max);
    let mut generation = 0u64;
    let mut failures = 0u32;
    loop {
        if *stop.borrow() {
            break;
        }
        let attempt = tokio::select! {
            r = connect(&shared, tls.as_ref()) => r,
            _ = stop.wait_for(|s| *s) => break,
        };
        match attempt {
            Ok((stream, leftover)) => {
                generation += 1;
                let started = Instant::now();
                let end = run_link(&shared, stream, leftover, generation, &mut stop).await;
                teardown(&shared, generation);
                match end {
                    LinkEnd::Stopped => break,
                    LinkEnd::Fatal(fatal) => {
                        tracing::error!(error = %fatal, "tunnel: giving up");
                        shared.status.send_replace(Status::Failed(fatal));
                        return;
                    }
                    LinkEnd::Lost(reason) => {
                        tracing::warn!(%reason, "tunnel lost; reconnecting");
                        if started.elapsed() >= STABLE_LINK {
                            backoff.reset();
                        }
                        failures = 0;
                    }
                    LinkEnd::NeverRegistered => failures += 1,
                }
            }
            Err(ConnectError::Fatal(fatal)) => {
                tracing::error!(error = %fatal, "tunnel: giving up");
                shared.status.send_replace(Status::Failed(fatal));
                return;
            }
            Err(ConnectError::Refused { status, reason }) => {
                match after_refusal(&shared, status, &reason) {
                    Verdict::GiveUp => {
                        let fatal = Fatal::Refused { status, reason };
                        tracing::error!(error = %fatal, "tunnel: giving up");
                        shared.status.send_replace(Status::Failed(fatal));
                        return;
                    }
                    // At once: the next attempt asks for `/`, which cannot be refused this way.
                    Verdict::NewName => continue,
                    Verdict::Retry => {
                        let e = ConnectError::Refused { status, reason };
                        log_retry(config, &e, failures);
                        failures += 1;
                    }
                }
            }
            Err(e) => {
                log_retry(config, &e, failures);
                failures += 1;
            }
        }
        let delay = backoff.delay();
        tokio::select! {
            _ = sleep(delay) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    teardown(&shared, u64::MAX);
    shared.status.send_replace(Status::Closed);
}

/// A failed attempt that will be retried after the backoff delay. The first failure in a
/// row is worth a warning; the rest repeat it.
fn log_retry(config: &SessionConfig, e: &ConnectError, failures: u32) {
    if failures == 0 {
        tracing::warn!(proxy = %config.proxy, error = %e, "tunnel: connect failed; retrying with backoff");
    } else {
        tracing::debug!(proxy = %config.proxy, error = %e, attempt = failures + 1, "tunnel: connect failed");
    }
}

/// What to do after a refusal ([`refusal::judge`]). For [`Verdict::NewName`] the refused
/// assigned name is forgotten here, so that the next attempt asks for `/`.
fn after_refusal(shared: &Shared, status: u16, reason: &str) -> Verdict {
    let config = &shared.config;
    let mut state = lock(&shared.state);
    let assigned = config.name.is_none() && state.address.is_some();
    let verdict = refusal::judge(status, reason, config.token.is_some(), assigned);
    if verdict == Verdict::NewName {
        if let Some(old) = state.address.take() {
            tracing::warn!(name = %old, status, %reason, "tunnel: the proxy refused the name it had assigned; asking for a new one");
            state.refused_name = Some(old);
        }
    }
    verdict
}

/// TCP connect and the opening handshake, within the connect timeout.
async fn connect(
    shared: &Shared,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<(ProxyStream, BytesMut), ConnectError> {
    let config = &shared.config;
    let mut path = match &lock(&shared.state).address {
        Some(address) => format!("/{address}"),
        None => "/".to_owned(),
    };
    if config.public {
        path.push_str("?public=1");
    }
    let attempt = async {
        let tcp = TcpStream::connect((config.proxy.host.as_str(), config.proxy.port)).await?;
        tcp.set_nodelay(true)?;
        let mut stream = match tls {
            None => ProxyStream::Plain(tcp),
            Some(tls) => {
                let host = config.proxy.host.clone();
                let name = ServerName::try_from(host)
                    .map_err(|_| ConnectError::ServerName(config.proxy.host.clone()))?;
                let connector = tokio_rustls::TlsConnector::from(tls.clone());
                let stream = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| tls_failure(e, &config.proxy.host))?;
                ProxyStream::Tls(Box::new(stream))
            }
        };
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(|e| std::io::Error::other(e.to_string()))?;
        let key = handshake::client_key(&nonce);
        let request =
            handshake::client_request(&config.proxy.authority, &path, &key, config.token.as_ref());
        stream.write_all(request.as_bytes()).await?;
        stream.flush().await?;
        let mut buf = BytesMut::with_capacity(1024);
        // Each byte is scanned once; the response is parsed once, when its head is complete.
        let mut scanner = HeadScanner::new(
            MAX_HANDSHAKE_RESPONSE_BYTES,
            handshake::MAX_HANDSHAKE_HEADERS,
        );
        loop {
            let before = buf.len();
            if stream.read_buf(&mut buf).await? == 0 {
                return Err(ConnectError::NotRegistered);
            }
            // The answer's first bytes, once there are enough to tell: a TLS record means
            // the URL should have said wss://.
            if tls.is_none() && before < 2 && tls_diagnosis::looks_like_tls(&buf) {
                return Err(Fatal::WrongScheme(SchemeMismatch::ServerSpeaksTls).into());
            }
            let end = match scanner.scan(&buf) {
                Ok(Some(end)) => end,
                Ok(None) => continue,
                Err(ScanError::TooLarge) => return Err(ClientHandshakeError::HeadTooLarge.into()),
                Err(e @ ScanError::BareLf) => {
                    return Err(ClientHandshakeError::Malformed(e.to_string()).into());
                }
            };
            match handshake::parse_response(&buf[..end], &key, MAX_HANDSHAKE_RESPONSE_BYTES) {
                Ok(Some(head_len)) => {
                    let leftover = buf.split_off(head_len);
                    return Ok((stream, leftover));
                }
                Ok(None) => {
                    let why = "incomplete response head".to_owned();
                    return Err(ClientHandshakeError::Malformed(why).into());
                }
                Err(ClientHandshakeError::Refused { status, reason }) => {
                    let reason = refusal::read_reason(&mut stream, &mut buf, end, &reason).await;
                    return Err(ConnectError::Refused { status, reason });
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    match timeout(config.connect_timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(ConnectError::Timeout),
    }
}

/// A failed TLS handshake as the user should see it: a server that does not speak TLS is a
/// wrong URL (fatal); a certificate problem comes with what to do about it.
fn tls_failure(e: std::io::Error, host: &str) -> ConnectError {
    let Some(tls) = tls_diagnosis::rustls_error(&e) else {
        return ConnectError::Tls {
            source: e,
            advice: None,
        };
    };
    if let Some(mismatch) = tls_diagnosis::plain_server(tls) {
        return Fatal::WrongScheme(mismatch).into();
    }
    let advice = tls_diagnosis::certificate_advice(tls, host);
    ConnectError::Tls { source: e, advice }
}

enum LinkEnd {
    /// Closed on request.
    Stopped,
    /// Lost after registering; reconnect.
    Lost(String),
    /// Closed before the `:host` indication; reconnect with backoff.
    NeverRegistered,
    Fatal(Fatal),
}

/// Run one connected tunnel until it ends: the writer in its own task, the reader (and the
/// liveness timer) here.
async fn run_link(
    shared: &Arc<Shared>,
    stream: ProxyStream,
    buf: BytesMut,
    generation: u64,
    stop: &mut watch::Receiver<bool>,
) -> LinkEnd {
    match stream {
        // A TCP socket splits into halves without a lock; TLS state is shared by both.
        ProxyStream::Plain(tcp) => {
            let (rd, wr) = tcp.into_split();
            run_halves(shared, rd, wr, buf, generation, stop).await
        }
        ProxyStream::Tls(tls) => {
            let (rd, wr) = tokio::io::split(*tls);
            run_halves(shared, rd, wr, buf, generation, stop).await
        }
    }
}

async fn run_halves<R, W>(
    shared: &Arc<Shared>,
    mut rd: R,
    wr: W,
    mut buf: BytesMut,
    generation: u64,
    stop: &mut watch::Receiver<bool>,
) -> LinkEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let config = &shared.config;
    let (out, out_rx) = mpsc::channel(OUTGOING_QUEUE_FRAMES);
    let writer = tokio::spawn(write_loop(wr, out_rx));
    let decoder_config = DecoderConfig {
        role: Role::Client,
        max_message_bytes: config.max_message_bytes,
    };
    let limits = HeadLimits {
        max_head_bytes: MAX_MESSAGE_HEAD_BYTES,
        max_headers: 256,
    };
    let mut decoder = MessageDecoder::new();
    let mut registered = false;
    let mut last_heard = Instant::now();
    let mut ping_sent: Option<Instant> = None;

    let end = 'link: loop {
        // Drain every complete frame before reading more.
        loop {
            let event = match decoder.decode(&mut buf, &decoder_config) {
                Ok(Some(event)) => event,
                Ok(None) => break,
                Err(e) => {
                    let _ = out.try_send(Outgoing::Close(e.close_code()));
                    break 'link LinkEnd::Lost(format!("protocol error from the proxy: {e}"));
                }
            };
            match event {
                Event::Message { payload, .. } if indication::is_indication(&payload) => {
                    match indication::parse(&payload) {
                        Ok(Indication::Host(name)) => {
                            match VirtualAddress::parse(name.as_bytes()) {
                                Ok(address) => {
                                    registered = true;
                                    register(shared, generation, address, out.clone());
                                }
                                Err(e) => {
                                    break 'link LinkEnd::Lost(format!(
                                        "proxy sent an invalid :host: {e}"
                                    ));
                                }
                            }
                        }
                        Ok(Indication::Error { token, reason })
                            if IndicationError::parse(&token)
                                == Some(IndicationError::Replaced) =>
                        {
                            break 'link LinkEnd::Fatal(Fatal::Replaced(reason));
                        }
                        Ok(Indication::Error { token, reason })
                            if IndicationError::parse(&token)
                                == Some(IndicationError::Shutdown) =>
                        {
                            tracing::info!(%reason, "tunnel: the proxy is shutting down");
                        }
                        Ok(Indication::Error { token, reason }) => {
                            tracing::warn!(%token, %reason, "tunnel: proxy reported an error");
                        }
                        Ok(Indication::Other(text)) => {
                            tracing::debug!(%text, "tunnel: unknown indication ignored");
                        }
                        Err(e) => tracing::warn!(error = %e, "tunnel: malformed indication"),
                    }
                }
                Event::Message { payload, .. } => {
                    on_message(shared, generation, payload, &limits, &out).await;
                }
                Event::Ping(data) => {
                    let _ = out.send(Outgoing::Pong(data)).await;
                }
                Event::Pong(_) => {}
                Event::Close { code, .. } => {
                    let _ = out.try_send(Outgoing::Close(1000));
                    break 'link LinkEnd::Lost(format!("proxy closed the tunnel ({code:?})"));
                }
            }
        }

        let deadline = match ping_sent {
            Some(at) => at + config.pong_timeout,
            None => last_heard + config.ping_interval,
        };
        if buf.capacity() - buf.len() < READ_RESERVE_BYTES / 4 {
            buf.reserve(READ_RESERVE_BYTES);
        }
        tokio::select! {
            read = rd.read_buf(&mut buf) => match read {
                Ok(0) => break LinkEnd::Lost("proxy closed the connection".into()),
                Ok(_) => {
                    last_heard = Instant::now();
                    ping_sent = None;
                }
                Err(e) => break LinkEnd::Lost(format!("read: {e}")),
            },
            _ = sleep_until(deadline) => {
                if ping_sent.is_some() {
                    break LinkEnd::Lost("proxy stopped answering pings".into());
                }
                let _ = out.try_send(Outgoing::Ping);
                ping_sent = Some(Instant::now());
            }
            _ = stop.wait_for(|s| *s) => {
                let _ = out.try_send(Outgoing::Close(1000));
                break LinkEnd::Stopped;
            }
        }
    };
    // Unpublish the link first so no new request queues behind a dead writer.
    unpublish(shared, generation);
    drop(out);
    if matches!(end, LinkEnd::Stopped) {
        let _ = timeout(CLOSE_FLUSH_TIMEOUT, writer).await;
    } else {
        writer.abort();
    }
    match end {
        LinkEnd::Lost(_) if !registered => LinkEnd::NeverRegistered,
        end => end,
    }
}

/// `:host` arrived: publish the link so requests can use it.
fn register(
    shared: &Shared,
    generation: u64,
    address: VirtualAddress,
    out: mpsc::Sender<Outgoing>,
) {
    let refused = {
        let mut state = lock(&shared.state);
        state.address = Some(address.clone());
        state.link = Some(Link { generation, out });
        state.refused_name.take()
    };
    match refused {
        // Callers that knew the old name cannot reach us by it any more: say so loudly.
        Some(old) => {
            tracing::warn!(%address, was = %old, proxy = %shared.config.proxy, "tunnel registered under a NEW name")
        }
        None => tracing::info!(%address, proxy = %shared.config.proxy, "tunnel registered"),
    }
    shared.status.send_replace(Status::Up {
        address,
        generation,
    });
}

fn unpublish(shared: &Shared, generation: u64) {
    let mut state = lock(&shared.state);
    if state
        .link
        .as_ref()
        .is_some_and(|l| l.generation == generation)
    {
        state.link = None;
    }
}

/// The tunnel is gone: everything waiting on it fails now.
fn teardown(shared: &Shared, generation: u64) {
    let waiting = {
        let mut state = lock(&shared.state);
        if state
            .link
            .as_ref()
            .is_some_and(|l| l.generation <= generation)
        {
            state.link = None;
        }
        std::mem::take(&mut state.waiting)
    };
    for (_, waiter) in waiting {
        let _ = waiter.send(Err(Failure::TargetGone));
    }
    if matches!(*shared.status.borrow(), Status::Up { .. }) {
        shared.status.send_replace(Status::Down);
    }
}

/// An HTTP message from the proxy: a response to match, or a request to serve.
async fn on_message(
    shared: &Shared,
    generation: u64,
    payload: Bytes,
    limits: &HeadLimits,
    out: &mpsc::Sender<Outgoing>,
) {
    let info = match head::inspect(&payload, limits) {
        Ok(info) => info,
        Err(e) => {
            tracing::warn!(error = %e, "tunnel: unusable message from the proxy dropped");
            return;
        }
    };
    match info.kind {
        HeadKind::Response => {
            let waiter = lock(&shared.state).waiting.remove(&info.cseq);
            match waiter {
                Some(waiter) => {
                    let _ = waiter.send(Ok(payload));
                }
                // Its caller gave up already.
                None => tracing::debug!(cseq = info.cseq, "tunnel: response nobody waits for"),
            }
        }
        HeadKind::Request if shared.serving.load(Ordering::Acquire) => {
            let incoming = Incoming {
                generation,
                cseq: info.cseq,
                message: payload,
                head_len: info.head_len,
            };
            // Waits when the server is at its limit: reading stops, and the proxy answers
            // further callers `target-busy` rather than anything piling up here.
            let _ = shared.incoming_tx.send(incoming).await;
        }
        HeadKind::Request => {
            const BODY: &[u8] = b"this endpoint does not serve requests\n";
            let mut head = BytesMut::new();
            write::put_answer_head(&mut head, AnswerError::NoService, None, BODY.len());
            finish_head(&mut head, info.cseq);
            let body = Bytes::from_static(BODY);
            let _ = out
                .send(Outgoing::Message {
                    head: head.freeze(),
                    body,
                })
                .await;
        }
    }
}

/// The writer: frames queued by anyone, masked (client frames must be) and written in
/// batches.
async fn write_loop<W: AsyncWrite + Unpin>(mut wr: W, mut rx: mpsc::Receiver<Outgoing>) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    while let Some(first) = rx.recv().await {
        let mut closing = encode(&mut buf, first);
        while !closing && buf.len() < WRITE_BATCH_BYTES {
            match rx.try_recv() {
                Ok(next) => closing = encode(&mut buf, next),
                Err(_) => break,
            }
        }
        // TLS accepts plaintext before the socket has taken all of its ciphertext: without
        // the flush, the tail of a batch could wait in rustls until the next write.
        if wr.write_all(&buf).await.is_err() || wr.flush().await.is_err() {
            return;
        }
        if buf.capacity() > KEEP_WRITE_BUFFER_BYTES {
            buf = BytesMut::with_capacity(16 * 1024);
        } else {
            buf.clear();
        }
        if closing {
            let _ = wr.shutdown().await;
            return;
        }
    }
}

/// Append one masked frame; true if it was a close frame.
fn encode(buf: &mut BytesMut, outgoing: Outgoing) -> bool {
    let mask = fastrand::u32(..).to_ne_bytes();
    match outgoing {
        Outgoing::Message { head, body } => {
            let mut header = [0u8; MAX_HEADER_LEN];
            let len = head.len() + body.len();
            let n = frame::encode_header(&mut header, true, OpCode::Binary, Some(mask), len as u64);
            buf.reserve(n + len);
            buf.extend_from_slice(&header[..n]);
            let start = buf.len();
            buf.extend_from_slice(&head);
            buf.extend_from_slice(&body);
            // Masking is the same XOR as unmasking, from offset 0 of the payload.
            frame::unmask(&mut buf[start..], mask);
            false
        }
        Outgoing::Pong(data) => {
            frame::encode_frame(buf, OpCode::Pong, Some(mask), &data);
            false
        }
        Outgoing::Ping => {
            frame::encode_frame(buf, OpCode::Ping, Some(mask), b"");
            false
        }
        Outgoing::Close(code) => {
            frame::encode_frame(
                buf,
                OpCode::Close,
                Some(mask),
                &frame::close_payload(code, ""),
            );
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let delays: Vec<_> = (0..6).map(|_| b.delay()).collect();
        let bounds = [100, 200, 400, 800, 1000, 1000];
        for (d, max) in delays.iter().zip(bounds) {
            let max = Duration::from_millis(max);
            assert!(
                *d >= max / 2 && *d <= max,
                "{d:?} outside [{:?}, {max:?}]",
                max / 2
            );
        }
        b.reset();
        assert!(b.delay() <= Duration::from_millis(100));
    }

    #[test]
    fn masked_message_frame_decodes_back() {
        let mut buf = BytesMut::new();
        encode(
            &mut buf,
            Outgoing::Message {
                head: Bytes::from_static(b"GET / HTTP/1.1\r\n"),
                body: Bytes::from_static(b"body"),
            },
        );
        let cfg = DecoderConfig {
            role: Role::Server,
            max_message_bytes: 1024,
        };
        let event = MessageDecoder::new().decode(&mut buf, &cfg).unwrap();
        assert_eq!(
            event,
            Some(Event::Message {
                opcode: OpCode::Binary,
                payload: Bytes::from_static(b"GET / HTTP/1.1\r\nbody"),
            })
        );
    }
}
