//! Opening one connection: the TCP socket (bound to its `--source` address), the WebSocket
//! opening handshake, and (relay) the proxy's `:host <name>` that confirms the registration,
//! or, with `--registered-on-101`, the `101` alone (proxies of the original protocol send no
//! `:host`: the endpoint is known by the address it asked for).

use std::net::{IpAddr, SocketAddr};

use bytes::{Buf, BytesMut};
use httpws::proto::frame::{Event, FrameError, MessageDecoder};
use httpws::proto::handshake::{self, ClientHandshakeError};
use httpws::proto::indication::{self, Indication};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

use super::Worker;
use super::socket::{read_some, set_bind_address_no_port};

/// Largest handshake response head.
const MAX_HANDSHAKE_BYTES: usize = 16 * 1024;
/// Bytes of an unexpected first message quoted in the failure reason.
const QUOTED_BYTES: usize = 80;

/// Why a connection attempt failed. The text is the reason the ramp counts and prints.
#[derive(Debug, thiserror::Error)]
pub(super) enum OpenError {
    /// A socket call failed: possibly a resource limit (see `Limit::of`).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Binding the source address failed: about the address (not local, say), never a limit.
    #[error("binding source {address}: {error}")]
    Bind {
        address: IpAddr,
        #[source]
        error: std::io::Error,
    },
    #[error("handshake: {0}")]
    Handshake(#[source] ClientHandshakeError),
    #[error("closed during the handshake")]
    ClosedInHandshake,
    #[error("registered as {got}, expected {expected}")]
    WrongName { got: String, expected: String },
    /// The first message was not `:host`; `first` is its beginning.
    #[error("expected :host, got {first:?}")]
    NotHost { first: String },
    #[error("closed before registering (code {code:?})")]
    CloseBeforeRegistering { code: Option<u16> },
    #[error("closed before registering")]
    EofBeforeRegistering,
    #[error("protocol error: {0}")]
    Protocol(#[source] FrameError),
    /// Connecting and the opening handshake took longer than --connect-timeout.
    #[error("timed out connecting (no 101 within --connect-timeout)")]
    TimedOut,
    /// The `101` came but no `:host` within --connect-timeout of the start: a proxy that
    /// registers on the `101` alone, most likely. Said apart from [`OpenError::TimedOut`] so
    /// that the run names the flag that fixes it instead of looking like a slow proxy.
    #[error(
        "no :host registration message within --connect-timeout after the 101 (a proxy that \
         registers on the 101 alone needs --registered-on-101)"
    )]
    NoRegistration,
}

impl Worker {
    /// Connect, complete the opening handshake, and (relay) wait for `:host <name>` unless
    /// `--registered-on-101`; all of it within --connect-timeout. Returns the stream and
    /// whatever was read past the handshake (or the registration).
    pub(super) async fn open(&self, index: usize) -> Result<(TcpStream, BytesMut), OpenError> {
        let deadline = tokio::time::Instant::now() + self.config.connect_timeout;
        let name = self.config.name(index);
        let (mut stream, mut buf) = tokio::time::timeout_at(deadline, self.handshake(index, &name))
            .await
            .unwrap_or(Err(OpenError::TimedOut))?;
        if self.config.direct || self.config.registered_on_101 {
            // The address is the one the upgrade request asked for.
            return Ok((stream, buf));
        }
        tokio::time::timeout_at(deadline, self.await_host(&mut stream, &mut buf, name))
            .await
            .unwrap_or(Err(OpenError::NoRegistration))?;
        // A copy of just what is left, so the handshake's buffer does not stay with the
        // connection.
        Ok((stream, BytesMut::from(&buf[..])))
    }

    /// TCP connect and the opening handshake for the path `/<name>`. Returns the stream and
    /// whatever was read past the `101`.
    async fn handshake(
        &self,
        index: usize,
        name: &str,
    ) -> Result<(TcpStream, BytesMut), OpenError> {
        let config = &self.config;
        let socket = match config.target {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }?;
        if !config.sources.is_empty() {
            let address = config.sources[index % config.sources.len()];
            // The port is picked at connect time, per destination, so one source address
            // serves a full port range towards each proxy address.
            set_bind_address_no_port(&socket)?;
            socket
                .bind(SocketAddr::new(address, 0))
                .map_err(|error| OpenError::Bind { address, error })?;
        }
        socket.set_nodelay(true)?;
        let mut stream = socket.connect(config.target).await?;
        let mut nonce = [0u8; 16];
        self.rng.borrow_mut().fill(&mut nonce);
        let key = handshake::client_key(&nonce);
        let request = handshake::client_request(&config.authority, name, &key, None);
        stream.write_all(request.as_bytes()).await?;
        let mut buf = BytesMut::with_capacity(1024);
        let head_len = loop {
            match handshake::parse_response(&buf, &key, MAX_HANDSHAKE_BYTES) {
                Ok(Some(n)) => break n,
                Ok(None) => {}
                Err(e) => return Err(OpenError::Handshake(e)),
            }
            if read_some(&mut stream, &mut buf).await? == 0 {
                return Err(OpenError::ClosedInHandshake);
            }
        };
        buf.advance(head_len);
        Ok((stream, buf))
    }

    /// Read the proxy's first message, which must be `:host <name>`; leaves in `buf` whatever
    /// came after it.
    async fn await_host(
        &self,
        stream: &mut TcpStream,
        buf: &mut BytesMut,
        name: String,
    ) -> Result<(), OpenError> {
        let mut decoder = MessageDecoder::new();
        loop {
            match decoder.decode(buf, &self.decoder_config) {
                Ok(Some(Event::Message { payload, .. })) => {
                    return match indication::parse(&payload) {
                        Ok(Indication::Host(host)) if host == name => Ok(()),
                        Ok(Indication::Host(got)) => Err(OpenError::WrongName {
                            got,
                            expected: name,
                        }),
                        _ => Err(OpenError::NotHost {
                            first: String::from_utf8_lossy(
                                &payload[..payload.len().min(QUOTED_BYTES)],
                            )
                            .into_owned(),
                        }),
                    };
                }
                Ok(Some(Event::Close { code, .. })) => {
                    return Err(OpenError::CloseBeforeRegistering { code });
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    if read_some(stream, buf).await? == 0 {
                        return Err(OpenError::EofBeforeRegistering);
                    }
                }
                Err(e) => return Err(OpenError::Protocol(e)),
            }
        }
    }
}
