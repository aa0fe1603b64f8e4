//! One connected tunnel, from its handshake's leftover bytes to its end: the writer in its
//! own task, and here the reader, which drains every frame, registers the link when `:host`
//! arrives, answers pings, and pings a proxy that has gone silent (no pong in time: dead).

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until, timeout};

use super::dispatch::on_message;
use super::failure::Fatal;
use super::shared::{Link, Shared};
use super::writer::{MAX_CONTROL_BACKLOG, Outgoing, Queues, write_loop};
use crate::endpoint::config::OUTGOING_QUEUE_FRAMES;
use crate::endpoint::stream::StreamTable;
use crate::endpoint::tls::ProxyStream;
use crate::proto::address::VirtualAddress;
use crate::proto::frame::{DecoderConfig, Event, MessageDecoder, Role};
use crate::proto::handshake::Protocol;
use crate::proto::head::HeadLimits;
use crate::proto::indication::{self, Indication, IndicationError};

/// Largest head inspected in a message from the proxy (the proxy enforces its own limit).
const MAX_MESSAGE_HEAD_BYTES: usize = 64 * 1024;
/// Most header lines inspected in a message from the proxy.
const MAX_MESSAGE_HEADERS: usize = 256;
/// Room made before each read from the proxy.
const READ_RESERVE_BYTES: usize = 64 * 1024;
/// A read block holding less than a quarter of this much is left for a fresh one once a
/// message has been taken out of it (see [`leave_large_block`]).
const KEEP_READ_BLOCK_BYTES: usize = 1024 * 1024;
/// How long a closing tunnel waits for its writer to flush the close frame.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(1);
/// The close code of a tunnel closed on purpose (RFC 6455 §7.4.1).
const NORMAL_CLOSURE: u16 = 1000;

/// How a link ended, which decides what the supervisor does next.
pub(super) enum LinkEnd {
    /// Closed on request.
    Stopped,
    /// Lost after registering; reconnect.
    Lost(String),
    /// Closed before the `:host` indication; reconnect with backoff.
    NeverRegistered,
    /// Ended in a way no reconnect can fix.
    Fatal(Fatal),
}

/// Run one connected tunnel until it ends: the writer in its own task, the reader (and the
/// liveness timer) here.
/// What one link runs on: its stream, the bytes read past the handshake, which
/// registration it is and the protocol the proxy chose.
pub(super) struct LinkStart {
    pub(super) stream: ProxyStream,
    pub(super) buf: BytesMut,
    pub(super) generation: u64,
    pub(super) protocol: Protocol,
}

pub(super) async fn run_link(
    shared: &Arc<Shared>,
    start: LinkStart,
    stop: &mut watch::Receiver<bool>,
) -> LinkEnd {
    let LinkStart {
        stream,
        buf,
        generation,
        protocol,
    } = start;
    match stream {
        // A TCP socket splits into halves without a lock; TLS state is shared by both.
        ProxyStream::Plain(tcp) => {
            let (rd, wr) = tcp.into_split();
            run_halves(shared, rd, wr, buf, (generation, protocol), stop).await
        }
        ProxyStream::Tls(tls) => {
            let (rd, wr) = tokio::io::split(*tls);
            run_halves(shared, rd, wr, buf, (generation, protocol), stop).await
        }
    }
}

async fn run_halves<R, W>(
    shared: &Arc<Shared>,
    mut rd: R,
    wr: W,
    mut buf: BytesMut,
    (generation, protocol): (u64, Protocol),
    stop: &mut watch::Receiver<bool>,
) -> LinkEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let config = &shared.config;
    let (queues, ends) = Queues::new(OUTGOING_QUEUE_FRAMES);
    let writer = tokio::spawn(write_loop(wr, ends));
    let link = Link {
        generation,
        queues,
        protocol,
        streams: Arc::new(StreamTable::default()),
    };
    let out = &link.queues.out;
    let decoder_config = DecoderConfig {
        role: Role::Client,
        max_message_bytes: config.max_message_bytes,
    };
    let limits = HeadLimits {
        max_head_bytes: MAX_MESSAGE_HEAD_BYTES,
        max_headers: MAX_MESSAGE_HEADERS,
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
            leave_large_block(&mut buf);
            match event {
                Event::Message { payload, .. } if indication::is_indication(&payload) => {
                    match on_indication(&payload) {
                        Ok(Some(address)) => {
                            registered = true;
                            shared.register(address, link.clone());
                        }
                        Ok(None) => {}
                        Err(end) => break 'link end,
                    }
                }
                Event::Message { payload, .. } => on_message(shared, &link, payload, &limits),
                Event::Ping(data) => {
                    link.queues.control(Outgoing::Pong(data));
                }
                Event::Pong(_) => {}
                Event::Close { code, .. } => {
                    let _ = out.try_send(Outgoing::Close(NORMAL_CLOSURE));
                    break 'link LinkEnd::Lost(format!("proxy closed the tunnel ({code:?})"));
                }
            }
            // What we owe it (pongs, answers, grants) no longer leaves: it is not reading.
            let backlog = link.queues.control_backlog();
            if backlog > MAX_CONTROL_BACKLOG {
                break 'link LinkEnd::Lost(format!(
                    "the proxy takes nothing from the tunnel ({backlog} control frames wait)"
                ));
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
                link.queues.control(Outgoing::Ping);
                ping_sent = Some(Instant::now());
            }
            _ = stop.wait_for(|s| *s) => {
                let _ = out.try_send(Outgoing::Close(NORMAL_CLOSURE));
                break LinkEnd::Stopped;
            }
        }
    };
    // Unpublish the link first so no new request queues behind a dead writer; then every
    // stream on it fails (its consumers see the tunnel drop, never a clean end).
    shared.unpublish(generation);
    for exchange in link.streams.close() {
        exchange.lost();
    }
    drop(link);
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

/// Every message handed on is a view of the block `buf` reads into, and keeps that whole
/// block alive for as long as it is held (a request waiting to be served, a piece of a body).
/// A block grown for one large message would be read into afterwards, and each small message
/// read after it would then hold it all: once a message has been taken out and the block is
/// much larger than what is left in it, what is left moves to a block of its own.
fn leave_large_block(buf: &mut BytesMut) {
    if buf.capacity() > KEEP_READ_BLOCK_BYTES.max(buf.len().saturating_mul(4)) {
        let mut fresh = BytesMut::with_capacity(buf.len() + READ_RESERVE_BYTES);
        fresh.extend_from_slice(buf);
        *buf = fresh;
    }
}

/// An indication from the proxy: `Ok(Some(address))` when `:host` registers the tunnel,
/// `Err` when it ends the link (an invalid `:host`, `:error replaced`); anything else is
/// logged and changes nothing.
fn on_indication(payload: &[u8]) -> Result<Option<VirtualAddress>, LinkEnd> {
    match indication::parse(payload) {
        Ok(Indication::Host(name)) => match VirtualAddress::parse(name.as_bytes()) {
            Ok(address) => Ok(Some(address)),
            Err(e) => Err(LinkEnd::Lost(format!("proxy sent an invalid :host: {e}"))),
        },
        Ok(Indication::Error { token, reason })
            if IndicationError::parse(&token) == Some(IndicationError::Replaced) =>
        {
            Err(LinkEnd::Fatal(Fatal::Replaced(reason)))
        }
        Ok(Indication::Error { token, reason })
            if IndicationError::parse(&token) == Some(IndicationError::Shutdown) =>
        {
            tracing::info!(%reason, "tunnel: the proxy is shutting down");
            Ok(None)
        }
        Ok(Indication::Error { token, reason }) => {
            tracing::warn!(%token, %reason, "tunnel: proxy reported an error");
            Ok(None)
        }
        Ok(Indication::Other(text)) => {
            tracing::debug!(%text, "tunnel: unknown indication ignored");
            Ok(None)
        }
        Err(e) => {
            tracing::warn!(error = %e, "tunnel: malformed indication");
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_after_a_large_one_do_not_share_its_block() {
        // A block grown for a 4 MiB message, followed in it by the start of a small one.
        let mut buf = BytesMut::with_capacity(8 << 20);
        buf.extend_from_slice(&vec![1u8; 4 << 20]);
        buf.extend_from_slice(b"next");
        let large = buf.split_to(4 << 20).freeze();
        leave_large_block(&mut buf);
        assert_eq!(&buf[..], b"next");
        buf.extend_from_slice(b" message");
        let small = buf.split().freeze();
        let block = large.as_ptr() as usize..large.as_ptr() as usize + (8 << 20);
        assert!(
            !block.contains(&(small.as_ptr() as usize)),
            "the small message is a view of the large message's block"
        );
        // A block of ordinary size is kept.
        let mut buf = BytesMut::with_capacity(64 * 1024);
        buf.extend_from_slice(b"abc");
        let at = buf.as_ptr();
        leave_large_block(&mut buf);
        assert_eq!(buf.as_ptr(), at);
    }
}
