//! Admission: read and check the opening handshake (bounded in size and time), then
//! register the connection on the shard that owns its address, or refuse it.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use monoio::io::IntoPollIo;
use monoio::net::TcpStream;
use sha2::{Digest, Sha256};

use crate::proto::address::VirtualAddress;
use crate::proto::frame::{self, OpCode};
use crate::proto::handshake::{self, HandshakeError, UpgradeRequest};
use crate::proto::http1::head_scanner::{HeadScanner, ScanError};
use crate::proto::indication::{self, IndicationError};
use crate::proto::origin;
use crate::proxy::connection::{self, Conn};
use crate::proxy::ingress;
use crate::proxy::router::{Handoff, OutFrame, ShardMessage};
use crate::proxy::shard::Shard;
use crate::proxy::table::{Claim, CredentialHash, Registration};
use crate::proxy::tls::TlsStream;
use crate::proxy::transport::Transport;

/// First read size for a handshake; grown up to the handshake limit only if needed.
const HANDSHAKE_READ_BYTES: usize = 1024;
/// How addresses the proxy assigns (for path `/`) begin; 64 random bits follow, so nobody
/// can guess and squat on the next one.
const ASSIGNED_ADDRESS_PREFIX: &str = "ep-";
/// The first read on a TLS listener, to tell a TLS client from a plain HTTP one (a
/// ClientHello usually fits; the rest arrives through the TLS session's own reads).
const FIRST_TLS_READ_BYTES: usize = 2048;
/// The first byte of a TLS record carrying a handshake message (a ClientHello).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

enum Refusal {
    /// The peer vanished or stalled: nothing to answer.
    Silent,
    Handshake(HandshakeError),
}

/// Handle one accepted TCP connection up to registration (or refusal). A first request
/// without `Upgrade` is plain HTTP: the connection goes to the public ingress.
pub async fn admit(shard: Rc<Shard>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let Ok(io) = stream.into_poll_io() else {
        return;
    };
    let timeout = shard.config.handshake_timeout;
    let started = Instant::now();
    // The TLS handshake runs inside the first reads, so the handshake timeout covers it too.
    let mut io = match shard.control.tls() {
        None => Transport::Plain(io),
        Some(config) => {
            let Some(tls) = start_tls(io, config, timeout).await else {
                return;
            };
            Transport::Tls(Box::new(tls))
        }
    };
    let timeout = timeout.saturating_sub(started.elapsed());
    let max = shard.config.max_handshake_bytes;
    let mut buf = BytesMut::with_capacity(HANDSHAKE_READ_BYTES.min(max));
    let parsed = match monoio::time::timeout(timeout, read_handshake(&mut io, &mut buf, max)).await
    {
        Ok(result) => result,
        Err(_) => {
            tracing::debug!("handshake timed out");
            return;
        }
    };
    let (request, head_len) = match parsed {
        Ok(Head::Upgrade(request, head_len)) => (request, head_len),
        Ok(Head::Plain) => {
            ingress::serve(shard, io, peer.ip(), buf, true).await;
            return;
        }
        Err(Refusal::Silent) => return,
        Err(Refusal::Handshake(e)) => {
            tracing::debug!(error = %e, "handshake refused");
            refuse(io, e.response(), timeout).await;
            return;
        }
    };
    if let Some(origin) = &request.origin {
        // Pages the proxy serves itself (--serve-demo) may connect back to it.
        let tls = matches!(io, Transport::Tls(_));
        let own_page = shard.config.serve_demo
            && origin::own_page(origin, &request.host, tls, shard.config.names());
        if !own_page && !origin::allowed(&shard.config.allowed_origins, origin) {
            tracing::debug!(%origin, "handshake refused: origin not allowed");
            let reason = "this Origin may not open a WebSocket here (see --allowed-origins)";
            refuse(io, handshake::refusal(403, reason), timeout).await;
            return;
        }
    }
    // Only bytes the client actually sent past its head are kept; an empty leftover must
    // not hold on to the handshake buffer for the life of an idle connection.
    let leftover = if buf.len() > head_len {
        BytesMut::from(&buf[head_len..])
    } else {
        BytesMut::new()
    };
    drop(buf);
    let address = match &request.address {
        Some(address) => address.clone(),
        None => match assign_address() {
            Some(address) => address,
            None => {
                let refusal = handshake::refusal(503, "could not assign an address");
                refuse(io, refusal, timeout).await;
                return;
            }
        },
    };
    let owner = address.shard_index(shard.router.shards());
    if owner == shard.id {
        register(&shard, io, request, address, leftover);
        return;
    }
    // Move the socket (and TLS session) to the owner shard; the handshake is answered there,
    // after the owner has checked the address is free.
    let transport = match io.detach() {
        Ok(transport) => transport,
        Err(e) => {
            tracing::debug!(error = %e, "could not hand a connection over");
            return;
        }
    };
    let handoff = Handoff {
        transport,
        request,
        address,
        leftover: leftover.freeze(),
    };
    shard.send_to(owner, ShardMessage::Adopt(Box::new(handoff)));
}

/// What the first request head on a connection turned out to be.
enum Head {
    Upgrade(UpgradeRequest, usize),
    /// No `Upgrade`: an HTTP request for the public ingress (still in the buffer).
    Plain,
}

/// A connection on the `--http-listen` listener: plain HTTP for the public ingress only.
pub async fn admit_http(shard: Rc<Shard>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let Ok(io) = stream.into_poll_io() else {
        return;
    };
    ingress::serve(
        shard,
        Transport::Plain(io),
        peer.ip(),
        BytesMut::new(),
        true,
    )
    .await;
}

async fn read_handshake(
    io: &mut Transport,
    buf: &mut BytesMut,
    max: usize,
) -> Result<Head, Refusal> {
    // Each byte is looked at once however the head is split (a slow client must not make
    // us re-parse it on every read); the parser runs once, on the complete head.
    let mut scanner = HeadScanner::new(max, handshake::MAX_HANDSHAKE_HEADERS);
    loop {
        match scanner.scan(buf) {
            Ok(Some(end)) => {
                if !handshake::is_upgrade(&buf[..end]) {
                    return Ok(Head::Plain);
                }
                return match handshake::parse_upgrade(&buf[..end], max) {
                    Ok(Some((request, head_len))) => Ok(Head::Upgrade(request, head_len)),
                    Ok(None) => Err(Refusal::Handshake(HandshakeError::Malformed(
                        "incomplete request head".into(),
                    ))),
                    Err(e) => Err(Refusal::Handshake(e)),
                };
            }
            Ok(None) => {}
            Err(ScanError::TooLarge) => {
                return Err(Refusal::Handshake(HandshakeError::HeadTooLarge));
            }
            Err(e @ ScanError::BareLf) => {
                return Err(Refusal::Handshake(HandshakeError::Malformed(e.to_string())));
            }
        }
        // Never read past the limit: the scanner refuses a head that reaches it unfinished.
        let room = max.saturating_sub(buf.len()).min(HANDSHAKE_READ_BYTES);
        buf.reserve(room.max(1));
        let n = std::future::poll_fn(|cx| connection::poll_read_buf(io, cx, buf))
            .await
            .map_err(|_| Refusal::Silent)?;
        if n == 0 {
            return Err(Refusal::Silent);
        }
    }
}

/// A connection handed over by the shard that accepted it.
pub fn adopt(shard: &Rc<Shard>, handoff: Handoff) {
    let Handoff {
        transport,
        request,
        address,
        leftover,
    } = handoff;
    let io = match Transport::attach(transport) {
        Ok(io) => io,
        Err(e) => {
            tracing::warn!(error = %e, "could not adopt a connection");
            return;
        }
    };
    register(shard, io, request, address, BytesMut::from(&leftover[..]));
}

/// Register on the owner shard: claim the address, answer 101 and `:host`, start the driver.
/// Synchronous up to the spawn, so two registrations for one name cannot interleave.
fn register(
    shard: &Rc<Shard>,
    io: Transport,
    request: UpgradeRequest,
    address: VirtualAddress,
    leftover: BytesMut,
) {
    if shard.draining.get() {
        monoio::spawn(refuse(
            io,
            handshake::refusal(503, "the proxy is shutting down"),
            shard.config.handshake_timeout,
        ));
        return;
    }
    let credential: Option<CredentialHash> = request
        .token
        .as_ref()
        .map(|t| Sha256::digest(t.as_str().as_bytes()).into());
    // The tokens file is checked here, on the owner shard, with the one hash of the token
    // that the takeover check below uses too.
    let assigned = request.address.is_none();
    if let Err(denied) =
        shard
            .policy()
            .authorize(credential.as_ref(), &address, assigned, request.public)
    {
        tracing::debug!(%address, status = denied.status(), "registration refused by the tokens file");
        monoio::spawn(refuse(
            io,
            handshake::refusal(denied.status(), &denied.to_string()),
            shard.config.handshake_timeout,
        ));
        return;
    }
    let claim = shard.table.borrow().claim(&address, credential.as_ref());
    match claim {
        Claim::Free => {}
        Claim::Conflict { credential } => {
            tracing::debug!(%address, "registration refused: address held");
            // Agents read "another credential" as "retrying cannot help" (docs/protocol.md §1).
            let reason = if credential {
                format!("address {address} is held by another credential")
            } else {
                format!(
                    "address {address} is held by another connection (registered without a \
                     token: it is free once that connection ends)"
                )
            };
            monoio::spawn(refuse(
                io,
                handshake::refusal(409, &reason),
                shard.config.handshake_timeout,
            ));
            return;
        }
        Claim::Takeover(old_key) => {
            if let Some(old) = shard.conn(old_key) {
                tracing::info!(%address, "address taken over by a new connection with the same token");
                let reason = "another connection with the same credential took over this address";
                shard.send_indication(&old, IndicationError::Replaced, reason);
                let close = shard.close_frame(1000, "replaced");
                shard.close_connection(&old, close);
            }
        }
    }
    let key = shard
        .conns
        .borrow_mut()
        .insert_with(|key| Rc::new(Conn::new(key, address.clone(), request.public, leftover)));
    let Some(conn) = shard.conn(key) else { return };
    shard.table.borrow_mut().insert(
        address.clone(),
        Registration {
            key,
            credential: credential.map(Box::new),
        },
    );
    // The 101 and the `:host` indication go out first, ahead of anything relayed to it.
    let mut hello = BytesMut::from(&handshake::response_101(&request.accept_key)[..]);
    frame::encode_frame(
        &mut hello,
        OpCode::Text,
        None,
        indication::encode_host(address.as_str()).as_bytes(),
    );
    shard.queue(
        &conn,
        OutFrame {
            head: hello.freeze(),
            body: Bytes::new(),
        },
    );
    tracing::debug!(%address, shard = shard.id, "registered");
    monoio::spawn(connection::drive(shard.clone(), conn, io));
}

/// Answer a refused handshake (bounded in time: the peer may not read) and close.
/// Begin TLS on a connection to a TLS listener, from its first bytes. A client that speaks
/// plain HTTP there (a `ws://` or `http://` URL pointed at a `wss://` port) is told so in
/// plain HTTP, as nginx does, instead of getting a TLS alert it cannot read; anything else
/// that is not a TLS handshake record is dropped without an answer.
async fn start_tls(
    io: monoio::net::tcp::stream_poll::TcpStreamPoll,
    config: Arc<rustls::ServerConfig>,
    timeout: Duration,
) -> Option<TlsStream> {
    let mut io = Transport::Plain(io);
    let mut first = BytesMut::with_capacity(FIRST_TLS_READ_BYTES);
    let read = std::future::poll_fn(|cx| connection::poll_read_buf(&mut io, cx, &mut first));
    match monoio::time::timeout(timeout, read).await {
        Ok(Ok(n)) if n > 0 => {}
        _ => return None,
    }
    if first[0] != TLS_HANDSHAKE_RECORD {
        if first[0].is_ascii_uppercase() {
            tracing::debug!("plain HTTP on the TLS port");
            let reason = "this port speaks TLS: use wss:// (or https://)";
            refuse(io, handshake::refusal(400, reason), timeout).await;
        }
        return None;
    }
    let Transport::Plain(io) = io else {
        return None;
    };
    match TlsStream::accept(io, config, &first) {
        Ok(tls) => Some(tls),
        Err(e) => {
            tracing::debug!(error = %e, "TLS session refused its first bytes");
            None
        }
    }
}

async fn refuse(mut io: Transport, response: Vec<u8>, timeout: Duration) {
    let _ = monoio::time::timeout(timeout, connection::write_all(&mut io, &[&response])).await;
}

/// A fresh random address for a client that registered with path `/`.
fn assign_address() -> Option<VirtualAddress> {
    let mut bits = [0u8; 8];
    getrandom::fill(&mut bits).ok()?;
    let name = format!("{ASSIGNED_ADDRESS_PREFIX}{:016x}", u64::from_le_bytes(bits));
    VirtualAddress::parse(name.as_bytes()).ok()
}
