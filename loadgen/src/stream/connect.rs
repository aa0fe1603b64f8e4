//! Opening one stream-mode connection: TCP (bound to its `--source` address), the opening
//! handshake offering `Sec-WebSocket-Protocol: httpws.2`, and (relay) the proxy's
//! `:host <name>`. A relay run needs the proxy to choose protocol 2; the echo server of a
//! direct run may choose it or not (it echoes stream messages either way).

use std::net::SocketAddr;

use bytes::{Buf, BytesMut};
use httpws::proto::frame::{DecoderConfig, Event, FrameError, MessageDecoder, Role};
use httpws::proto::handshake::{self, ClientHandshakeError, PROTOCOL_2};
use httpws::proto::indication::{self, Indication};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::args::Config;

/// Largest handshake response head.
const MAX_HANDSHAKE_BYTES: usize = 16 * 1024;
/// Largest message before registration (the `:host` indication is short).
const MAX_SETUP_MESSAGE_BYTES: usize = 64 * 1024;
/// The header that offers the subprotocol, and in the `101` names the one chosen.
const PROTOCOL_HEADER: &str = "Sec-WebSocket-Protocol";
/// Room made before each read of the handshake and registration.
const SETUP_READ_BYTES: usize = 4096;

/// Why a connection attempt failed; the text is what the run reports.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("handshake: {0}")]
    Handshake(#[from] ClientHandshakeError),
    #[error("the proxy did not choose {PROTOCOL_2} (it speaks protocol 1 only)")]
    NoProtocol2,
    #[error("closed during the handshake")]
    ClosedInHandshake,
    #[error("registered as {got}, expected {expected}")]
    WrongName { got: String, expected: String },
    #[error("expected :host, got another message")]
    NotHost,
    #[error("closed before registering (code {0:?})")]
    CloseBeforeRegistering(Option<u16>),
    #[error("protocol error: {0}")]
    Protocol(#[from] FrameError),
    #[error("timed out connecting and registering")]
    TimedOut,
}

/// Connect connection `index`, offer protocol 2, and (relay) wait for `:host <name>`.
/// Returns the stream and whatever was read past the handshake (or the registration).
pub async fn open(
    config: &Config,
    index: usize,
    nonce: [u8; 16],
) -> Result<(TcpStream, BytesMut), OpenError> {
    let socket = match config.target {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }?;
    if !config.sources.is_empty() {
        socket.bind(SocketAddr::new(
            config.sources[index % config.sources.len()],
            0,
        ))?;
    }
    socket.set_nodelay(true)?;
    let mut stream = socket.connect(config.target).await?;
    let name = config.name(index);
    let key = handshake::client_key(&nonce);
    let mut request = handshake::client_request(&config.authority, &name, &key, None);
    // Before the blank line that ends the request.
    request.insert_str(
        request.len().saturating_sub(2),
        &format!("{PROTOCOL_HEADER}: {PROTOCOL_2}\r\n"),
    );
    stream.write_all(request.as_bytes()).await?;
    let mut buf = BytesMut::with_capacity(SETUP_READ_BYTES);
    let head_len = loop {
        if let Some(end) = find_head_end(&buf) {
            let (v2, checked) = strip_protocol(&buf[..end]);
            match handshake::parse_response(&checked, &key, MAX_HANDSHAKE_BYTES)? {
                Some(_) if v2 || config.direct => break end,
                Some(_) => return Err(OpenError::NoProtocol2),
                None => return Err(OpenError::ClosedInHandshake),
            }
        }
        if buf.len() > MAX_HANDSHAKE_BYTES {
            return Err(ClientHandshakeError::HeadTooLarge.into());
        }
        buf.reserve(SETUP_READ_BYTES);
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(OpenError::ClosedInHandshake);
        }
    };
    buf.advance(head_len);
    if config.direct {
        return Ok((stream, buf));
    }
    let decoder_config = DecoderConfig {
        role: Role::Client,
        max_message_bytes: MAX_SETUP_MESSAGE_BYTES,
    };
    let mut decoder = MessageDecoder::new();
    loop {
        match decoder.decode(&mut buf, &decoder_config)? {
            Some(Event::Message { payload, .. }) => {
                return match indication::parse(&payload) {
                    Ok(Indication::Host(host)) if host == name => Ok((stream, buf)),
                    Ok(Indication::Host(got)) => Err(OpenError::WrongName {
                        got,
                        expected: name,
                    }),
                    _ => Err(OpenError::NotHost),
                };
            }
            Some(Event::Close { code, .. }) => return Err(OpenError::CloseBeforeRegistering(code)),
            Some(_) => {}
            None => {
                buf.reserve(SETUP_READ_BYTES);
                if stream.read_buf(&mut buf).await? == 0 {
                    return Err(OpenError::CloseBeforeRegistering(None));
                }
            }
        }
    }
}

/// Where the response head ends (just past its blank line), once it has.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Whether the `101` chose `httpws.2`, and the head without that line: the handshake parser
/// knows of no offer and refuses a head that names a subprotocol.
fn strip_protocol(head: &[u8]) -> (bool, Vec<u8>) {
    let mut v2 = false;
    let mut rest = Vec::with_capacity(head.len());
    for line in head.split_inclusive(|&b| b == b'\n') {
        let value = line
            .iter()
            .position(|&b| b == b':')
            .filter(|&colon| line[..colon].eq_ignore_ascii_case(PROTOCOL_HEADER.as_bytes()))
            .map(|colon| line[colon + 1..].trim_ascii());
        match value {
            Some(v) if v.eq_ignore_ascii_case(PROTOCOL_2.as_bytes()) => v2 = true,
            // Anything else stays, for the parser to refuse.
            _ => rest.extend_from_slice(line),
        }
    }
    (v2, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chosen_protocol_is_found_and_removed() {
        let head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                     sec-websocket-protocol: httpws.2\r\n\r\n";
        let (v2, rest) = strip_protocol(head);
        assert!(v2);
        assert_eq!(
            rest,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
        );
        let other = b"HTTP/1.1 101 x\r\nSec-WebSocket-Protocol: chat\r\n\r\n";
        let (v2, rest) = strip_protocol(other);
        assert!(!v2);
        assert_eq!(rest, other);
        assert_eq!(find_head_end(b"a\r\n\r\nrest"), Some(5));
        assert_eq!(find_head_end(b"a\r\n"), None);
    }
}
