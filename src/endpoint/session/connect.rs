//! One connection attempt: TCP, TLS for `wss://`, and the opening handshake that asks the
//! proxy for our name, within the connect timeout. What comes back is the stream and any
//! bytes read past the handshake's answer, or why not, in words a user can act on.

use std::sync::Arc;

use bytes::BytesMut;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::failure::Fatal;
use super::shared::{Shared, lock};
use super::subprotocol;
use crate::endpoint::refusal;
use crate::endpoint::tls::ProxyStream;
use crate::endpoint::tls_diagnosis::{self, SchemeMismatch};
use crate::proto::handshake::{self, ClientHandshakeError, Protocol};
use crate::proto::http1::head_scanner::{HeadScanner, ScanError};
use crate::proto::http1::status;

/// Largest handshake response head accepted from the proxy.
const MAX_HANDSHAKE_RESPONSE_BYTES: usize = 16 * 1024;
/// Room for the handshake's answer to begin with (it grows if need be).
const HANDSHAKE_READ_BYTES: usize = 1024;

/// Why one connection attempt failed (the supervisor retries all but [`AttemptError::Fatal`]
/// and the refusals [`refusal::judge`] gives up on).
#[derive(Debug, thiserror::Error)]
pub(super) enum AttemptError {
    /// The TCP connection failed, or the stream did during the handshake.
    #[error("connecting to the proxy: {0}")]
    Io(#[from] std::io::Error),
    /// No registration answer within the connect timeout.
    #[error("timed out connecting to the proxy")]
    Timeout,
    /// The proxy's handshake answer is not one we accept.
    #[error("opening handshake: {0}")]
    Handshake(#[from] ClientHandshakeError),
    /// The connection closed before any answer.
    #[error("the proxy closed the tunnel before registering it")]
    NotRegistered,
    /// The proxy refused the registration; [`refusal::judge`] decides what happens next.
    #[error("the proxy refused the registration: {status} {}: {reason}", status::reason_phrase(*status))]
    Refused {
        /// The status of the proxy's refusal.
        status: u16,
        /// Why, in the proxy's words.
        reason: String,
    },
    /// The TLS handshake failed (an untrusted or mismatched certificate, say), with what to
    /// do about it where we know. Retried: the proxy's certificate may be fixed or renewed
    /// while we wait.
    #[error("TLS to the proxy: {source}{}", advice.as_ref().map(|a| format!(": {a}")).unwrap_or_default())]
    Tls {
        /// The handshake's error.
        source: std::io::Error,
        /// What to do about it, where we know.
        advice: Option<String>,
    },
    /// The proxy's host cannot be a certificate's name.
    #[error("the proxy host {0:?} is not a valid TLS server name")]
    ServerName(String),
    /// A problem no retry can fix.
    #[error(transparent)]
    Fatal(#[from] Fatal),
}

/// A registered connection: the stream, the bytes read past the handshake's answer, and the
/// protocol the proxy chose.
pub(super) struct Connected {
    /// The connection to the proxy.
    pub(super) stream: ProxyStream,
    /// Frames that arrived with the handshake's answer.
    pub(super) leftover: BytesMut,
    /// Protocol 2 when the `101` named `httpws.2`, else protocol 1.
    pub(super) protocol: Protocol,
}

/// TCP connect and the opening handshake (offering protocol 2), within the connect timeout.
pub(super) async fn connect(
    shared: &Shared,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<Connected, AttemptError> {
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
                    .map_err(|_| AttemptError::ServerName(config.proxy.host.clone()))?;
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
        let mut request =
            handshake::client_request(&config.proxy.authority, &path, &key, config.token.as_ref());
        subprotocol::offer(&mut request);
        stream.write_all(request.as_bytes()).await?;
        stream.flush().await?;
        let mut buf = BytesMut::with_capacity(HANDSHAKE_READ_BYTES);
        // Each byte is scanned once; the response is parsed once, when its head is complete.
        let mut scanner = HeadScanner::new(
            MAX_HANDSHAKE_RESPONSE_BYTES,
            handshake::MAX_HANDSHAKE_HEADERS,
        );
        loop {
            let before = buf.len();
            if stream.read_buf(&mut buf).await? == 0 {
                return Err(AttemptError::NotRegistered);
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
            // A subprotocol other than ours is left for `parse_response` to refuse.
            let (protocol, checked) = subprotocol::chosen(&buf[..end])
                .unwrap_or((Protocol::V1, std::borrow::Cow::Borrowed(&buf[..end])));
            let parsed = handshake::parse_response(&checked, &key, MAX_HANDSHAKE_RESPONSE_BYTES);
            drop(checked);
            match parsed {
                Ok(Some(_)) => {
                    let leftover = buf.split_off(end);
                    return Ok(Connected {
                        stream,
                        leftover,
                        protocol,
                    });
                }
                Ok(None) => {
                    let why = "incomplete response head".to_owned();
                    return Err(ClientHandshakeError::Malformed(why).into());
                }
                Err(ClientHandshakeError::Refused { status, reason }) => {
                    let reason = refusal::read_reason(&mut stream, &mut buf, end, &reason).await;
                    return Err(AttemptError::Refused { status, reason });
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    match timeout(config.connect_timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(AttemptError::Timeout),
    }
}

/// A failed TLS handshake as the user should see it: a server that does not speak TLS is a
/// wrong URL (fatal); a certificate problem comes with what to do about it.
fn tls_failure(e: std::io::Error, host: &str) -> AttemptError {
    let Some(tls) = tls_diagnosis::rustls_error(&e) else {
        return AttemptError::Tls {
            source: e,
            advice: None,
        };
    };
    if let Some(mismatch) = tls_diagnosis::plain_server(tls) {
        return Fatal::WrongScheme(mismatch).into();
    }
    let advice = tls_diagnosis::certificate_advice(tls, host);
    AttemptError::Tls { source: e, advice }
}
