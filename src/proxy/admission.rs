//! Admission: a connection the shard's listener accepted, up to the moment it is known what
//! it is. TLS is started (or plain HTTP on a TLS port told to use TLS), the first head is read
//! and checked, bounded in size and time; an `Upgrade` goes on to [`registration`] on the
//! shard that owns its address, anything else to the [`public_ingress`].
//!
//! [`registration`]: crate::proxy::registration
//! [`public_ingress`]: crate::proxy::public_ingress

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use monoio::io::IntoPollIo;
use monoio::net::TcpStream;

use crate::proto::handshake::{self, HandshakeError, UpgradeRequest};
use crate::proto::http1::head_scanner::{HeadScanner, ScanError};
use crate::proto::origin;
use crate::proto::public_request::{self, ProxyNames};
use crate::proxy::messages::{Handoff, ShardMessage};
use crate::proxy::public_ingress;
use crate::proxy::registration::{assign_address, refuse, register};
use crate::proxy::shard::Shard;
use crate::proxy::tls::TlsStream;
use crate::proxy::transport::Transport;
use crate::proxy::transport::poll_read_buf;

/// First read size for a handshake; grown up to the handshake limit only if needed.
const HANDSHAKE_READ_BYTES: usize = 1024;

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
    let parsed = match monoio::time::timeout(
        timeout,
        read_handshake(&mut io, &mut buf, max, shard.config.names()),
    )
    .await
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
            public_ingress::serve(shard, io, peer.ip(), buf, true).await;
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
    public_ingress::serve(
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
    names: ProxyNames<'_>,
) -> Result<Head, Refusal> {
    // Each byte is looked at once however the head is split (a slow client must not make
    // us re-parse it on every read); the parser runs once, on the complete head.
    let mut scanner = HeadScanner::new(max, handshake::MAX_HANDSHAKE_HEADERS);
    loop {
        match scanner.scan(buf) {
            Ok(Some(end)) => {
                // An upgrade whose Host names an endpoint is the public ingress's, passed
                // through to that endpoint (docs/protocol.md §11); any other is a registration.
                if !handshake::is_upgrade(&buf[..end])
                    || public_request::upgrade_names_endpoint(&buf[..end], names)
                {
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
        let n = std::future::poll_fn(|cx| poll_read_buf(io, cx, buf))
            .await
            .map_err(|_| Refusal::Silent)?;
        if n == 0 {
            return Err(Refusal::Silent);
        }
    }
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
    let read = std::future::poll_fn(|cx| poll_read_buf(&mut io, cx, &mut first));
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
