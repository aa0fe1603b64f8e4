//! The RFC 6455 opening handshake, pure: the server side (§4.2) for the proxy's registration
//! `GET /<virtual-address>` (docs/protocol.md §1) and the client side (§4.1) for our
//! own endpoint agent. Bytes in, bytes out; the caller owns the socket and the timeouts.
//!
//! Every check is a single pass over the head, so a hostile client cannot make a parse cost
//! more than linear time in the bytes it sent, and `max_head_bytes` bounds those bytes.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::BytesMut;
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use crate::proto::address::{AddressError, VirtualAddress};
use crate::proto::http1::hop::has_token;
use crate::proto::http1::write;

/// The GUID RFC 6455 §1.3 appends to the client's key before hashing.
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Most header lines an opening handshake may carry; more is refused as too large (431).
pub const MAX_HANDSHAKE_HEADERS: usize = 64;

/// Decoded length of a `Sec-WebSocket-Key` nonce, in bytes (RFC 6455 §4.1).
const KEY_NONCE_LEN: usize = 16;
/// Encoded length of that nonce, in base64 characters (16 bytes → 24 chars with `==`).
const KEY_BASE64_LEN: usize = 24;
/// The only WebSocket version there is (RFC 6455 §4.1).
const WEBSOCKET_VERSION: &str = "13";
/// The query parameter browsers use for the credential, since they cannot set headers on a
/// WebSocket.
const ACCESS_TOKEN_PARAM: &str = "access_token";
/// The query parameter with which an endpoint asks to take calls from the internet.
const PUBLIC_PARAM: &str = "public";

/// A bearer token. `Debug` prints `Token(***)`: tokens are never logged. No `Display`, so one
/// cannot end up in a format string by accident.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// Wraps `s` as it is, without [`checked`](Self::checked)'s rule: for tokens already checked.
    pub fn new(s: String) -> Self {
        Self(s)
    }

    /// A token from our own configuration, held to the rule the proxy applies to the
    /// tokens it receives (non-empty visible ASCII), so that a bad one is refused before it
    /// is sent (a line end in it would even split the request's head).
    pub fn checked(s: &str) -> Result<Self, HandshakeError> {
        checked_token(s.as_bytes(), "token")
    }

    /// The secret itself, for the one place that sends it and the one that hashes it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Constant-time in the token's content (the length may leak, the bytes do not), because
/// the proxy compares a caller's token with the one that holds an address, and an early exit
/// would let a caller guess it byte by byte from response times.
impl PartialEq for Token {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for Token {}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

/// A valid registration request, as the proxy needs it.
#[derive(Debug, Clone)]
pub struct UpgradeRequest {
    /// `None` for path `/`: the proxy assigns an address.
    pub address: Option<VirtualAddress>,
    /// From `Authorization: Bearer <t>` (scheme case-insensitive) or the `access_token` query
    /// parameter (percent-decoded). If both are present and differ:
    /// [`HandshakeError::ConflictingTokens`].
    pub token: Option<Token>,
    /// The `Sec-WebSocket-Accept` value to answer with.
    pub accept_key: String,
    /// The `Origin` header, for browser clients; the proxy decides what to do with it.
    pub origin: Option<String>,
    /// The `Host` header (for the same-origin check of pages the proxy serves itself).
    pub host: String,
    /// `?public=1`: the endpoint takes calls from the internet (public HTTP ingress).
    pub public: bool,
    /// The protocol the connection speaks: 2 when `Sec-WebSocket-Protocol` offers `httpws.2`.
    pub protocol: Protocol,
}

/// Which httpws protocol a connection speaks, negotiated at the handshake.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// Whole messages only (docs/protocol.md §2): what a client that names no subprotocol gets.
    #[default]
    V1,
    /// Whole messages and streams (§12): offered as `Sec-WebSocket-Protocol: httpws.2`.
    V2,
}

/// The subprotocol name of [`Protocol::V2`].
pub const PROTOCOL_2: &str = "httpws.2";

/// Why an opening handshake is refused. [`status`](Self::status) and
/// [`response`](Self::response) give the HTTP answer; the `Display` text is its body, so it
/// never contains a token.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// The head runs past `max_head_bytes`, or has over [`MAX_HANDSHAKE_HEADERS`] lines (431).
    #[error("request head too large")]
    HeadTooLarge,
    /// Anything else wrong with the head (its syntax, a repeated header, the token or the query);
    /// carries what, for the reason (400).
    #[error("malformed request: {0}")]
    Malformed(String),
    /// A method other than `GET` (400).
    #[error("method must be GET")]
    NotGet,
    /// A version other than HTTP/1.1 (400).
    #[error("HTTP version must be HTTP/1.1")]
    BadHttpVersion,
    /// No `Host` header (400).
    #[error("missing Host header")]
    MissingHost,
    /// A plain HTTP request: no `Upgrade: websocket` or no `Connection: upgrade` (426).
    #[error("not a WebSocket upgrade: need Upgrade: websocket and Connection: Upgrade")]
    NotUpgrade,
    /// `Sec-WebSocket-Version` missing or not 13 (426, answered with the version spoken).
    #[error("Sec-WebSocket-Version must be 13")]
    BadVersion,
    /// `Sec-WebSocket-Key` missing or not the base64 of 16 bytes (400).
    #[error("Sec-WebSocket-Key must be the base64 encoding of 16 bytes")]
    BadKey,
    /// A path other than `/` or `/<address>` with an optional query (400).
    #[error("path must be / or /<virtual-address>")]
    BadPath,
    /// The path's address breaks the grammar; carries why (400).
    #[error("bad virtual address: {0}")]
    BadAddress(#[from] AddressError),
    /// Two tokens that differ: the `Authorization` header's and the `access_token` parameter's,
    /// or two `access_token` parameters (400).
    #[error("Authorization header and access_token query parameter disagree")]
    ConflictingTokens,
}

impl HandshakeError {
    /// 431 `HeadTooLarge`; 426 `NotUpgrade` and `BadVersion`; 400 everything else.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::HeadTooLarge => 431,
            HandshakeError::NotUpgrade | HandshakeError::BadVersion => 426,
            _ => 400,
        }
    }

    /// The full HTTP refusal to write before closing: `refusal(self.status(), &self.to_string())`.
    pub fn response(&self) -> Vec<u8> {
        refusal(self.status(), &self.to_string())
    }
}

/// Why the server's answer to our opening handshake is not an accepted upgrade.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ClientHandshakeError {
    /// The answer's head runs past `max_head_bytes`, or has over [`MAX_HANDSHAKE_HEADERS`] lines.
    #[error("response head too large")]
    HeadTooLarge,
    /// Not a well-formed HTTP/1.1 101 (bad syntax, a repeated `Sec-WebSocket-Accept`, or an
    /// extension or subprotocol we never offered); carries what.
    #[error("malformed response: {0}")]
    Malformed(String),
    /// Any status but 101: the proxy refused the registration.
    #[error("upgrade refused: {status} {reason}")]
    Refused {
        /// The HTTP status the proxy answered with.
        status: u16,
        /// The status line's reason phrase (the body, which says more, is not awaited).
        reason: String,
    },
    /// A 101 whose `Sec-WebSocket-Accept` is missing or does not answer our key.
    #[error("wrong Sec-WebSocket-Accept")]
    BadAccept,
    /// A 101 without `Upgrade: websocket` and `Connection: Upgrade`.
    #[error("101 response without Upgrade: websocket and Connection: Upgrade")]
    NotUpgrade,
}

/// Parse a client's opening handshake from the bytes read so far.
///
/// - `Ok(None)`: no complete head yet and `buf.len() <= max_head_bytes`; read more.
/// - `Ok(Some((req, head_len)))`: complete and valid; `head_len` = bytes of the head (anything
///   after it is already WebSocket frames).
///
/// Rules: method `GET` (else `NotGet`), HTTP/1.1 (else `BadHttpVersion`), a `Host` header
/// (`MissingHost`), `Upgrade` containing token `websocket` and `Connection` containing token
/// `upgrade`, both case-insensitive comma lists (else `NotUpgrade` → 426),
/// `Sec-WebSocket-Version: 13` (else `BadVersion` → 426), `Sec-WebSocket-Key` base64 decoding
/// to exactly 16 bytes (else `BadKey`), path `/` or `/<address>` with an optional `?query`
/// (any other shape, e.g. `/a/b`, percent-escapes in the address, absolute-form → `BadPath`),
/// address valid (`BadAddress`). Duplicate `Sec-WebSocket-Key`/`Version`/`Host` headers →
/// `Malformed`, and so are duplicate `Authorization` and `Origin` headers, because either copy
/// could be the one a check should have looked at. More than [`MAX_HANDSHAKE_HEADERS`] headers
/// or a head over `max_head_bytes` → `HeadTooLarge`.
///
/// Tokens: `Authorization` with a scheme other than `Bearer` is ignored (it may be meant for a
/// front proxy); a bearer token must be non-empty visible ASCII (RFC 6750), else `Malformed`.
/// In the query, `+` stays `+`: only `%XX` escapes are decoded, so a base64 token pasted into a
/// URL by hand keeps its meaning.
pub fn parse_upgrade(
    buf: &[u8],
    max_head_bytes: usize,
) -> Result<Option<(UpgradeRequest, usize)>, HandshakeError> {
    // httparse never looks past the window, so a flood of bytes costs at most max_head_bytes.
    let window = &buf[..buf.len().min(max_head_bytes)];
    let mut headers = [httparse::EMPTY_HEADER; MAX_HANDSHAKE_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > max_head_bytes => {
            return Err(HandshakeError::HeadTooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::HeadTooLarge),
        Err(httparse::Error::Version) => return Err(HandshakeError::BadHttpVersion),
        Err(e) => return Err(HandshakeError::Malformed(e.to_string())),
    };

    if req.method != Some("GET") {
        return Err(HandshakeError::NotGet);
    }
    if req.version != Some(1) {
        return Err(HandshakeError::BadHttpVersion);
    }
    let fields = RequestFields::collect(req.headers)?;
    let Some(host) = fields.host else {
        return Err(HandshakeError::MissingHost);
    };
    if !(fields.upgrade_websocket && fields.connection_upgrade) {
        return Err(HandshakeError::NotUpgrade);
    }
    if fields.version != Some(WEBSOCKET_VERSION.as_bytes()) {
        return Err(HandshakeError::BadVersion);
    }
    let key = fields.key.ok_or(HandshakeError::BadKey)?;
    if !is_valid_key(key) {
        return Err(HandshakeError::BadKey);
    }

    // A complete httparse request always has a path; "" fails as BadPath all the same.
    let (address, query) = parse_target(req.path.unwrap_or(""))?;
    let header_token = match fields.authorization {
        Some(value) => bearer_token(value)?,
        None => None,
    };
    let query_token = match query {
        Some(query) => query_token(query)?,
        None => None,
    };
    let public = match query {
        Some(query) => query_public(query)?,
        None => false,
    };
    let token = match (header_token, query_token) {
        (Some(h), Some(q)) if h != q => return Err(HandshakeError::ConflictingTokens),
        (Some(h), _) => Some(h),
        (None, q) => q,
    };
    let origin = match fields.origin {
        Some(value) => Some(
            std::str::from_utf8(value)
                .map_err(|_| HandshakeError::Malformed("Origin is not UTF-8".into()))?
                .to_owned(),
        ),
        None => None,
    };

    let request = UpgradeRequest {
        address,
        token,
        accept_key: accept_key(key),
        origin,
        host: String::from_utf8_lossy(host).into_owned(),
        public,
        protocol: if fields.offers_v2 {
            Protocol::V2
        } else {
            Protocol::V1
        },
    };
    Ok(Some((request, head_len)))
}

/// The header facts the server side needs, gathered in one pass.
#[derive(Default)]
struct RequestFields<'a> {
    host: Option<&'a [u8]>,
    upgrade_websocket: bool,
    connection_upgrade: bool,
    version: Option<&'a [u8]>,
    key: Option<&'a [u8]>,
    authorization: Option<&'a [u8]>,
    origin: Option<&'a [u8]>,
    /// `Sec-WebSocket-Protocol` lists `httpws.2` (the header is a list, maybe on many lines).
    offers_v2: bool,
}

impl<'a> RequestFields<'a> {
    fn collect(headers: &[httparse::Header<'a>]) -> Result<Self, HandshakeError> {
        let mut f = RequestFields::default();
        for h in headers {
            let value = h.value.trim_ascii();
            let name = h.name;
            if name.eq_ignore_ascii_case("host") {
                set_once(&mut f.host, value, "Host")?;
            } else if name.eq_ignore_ascii_case("upgrade") {
                // Upgrade and Connection are lists and may legally be split over several lines.
                f.upgrade_websocket |= has_token(value, b"websocket");
            } else if name.eq_ignore_ascii_case("connection") {
                f.connection_upgrade |= has_token(value, b"upgrade");
            } else if name.eq_ignore_ascii_case("sec-websocket-version") {
                set_once(&mut f.version, value, "Sec-WebSocket-Version")?;
            } else if name.eq_ignore_ascii_case("sec-websocket-key") {
                set_once(&mut f.key, value, "Sec-WebSocket-Key")?;
            } else if name.eq_ignore_ascii_case("authorization") {
                set_once(&mut f.authorization, value, "Authorization")?;
            } else if name.eq_ignore_ascii_case("origin") {
                set_once(&mut f.origin, value, "Origin")?;
            } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
                f.offers_v2 |= has_token(value, PROTOCOL_2.as_bytes());
            }
        }
        Ok(f)
    }
}

fn set_once<'a>(
    slot: &mut Option<&'a [u8]>,
    value: &'a [u8],
    name: &str,
) -> Result<(), HandshakeError> {
    if slot.replace(value).is_some() {
        return Err(HandshakeError::Malformed(format!(
            "duplicate {name} header"
        )));
    }
    Ok(())
}

/// 24 base64 characters decoding to 16 bytes. The length is checked first so that decoding
/// never allocates for an oversized value.
fn is_valid_key(key: &[u8]) -> bool {
    if key.len() != KEY_BASE64_LEN {
        return false;
    }
    // 24 characters decode to at most 18 bytes; the `==` padding makes it exactly 16.
    let mut nonce = [0u8; KEY_NONCE_LEN + 2];
    matches!(BASE64.decode_slice(key, &mut nonce), Ok(KEY_NONCE_LEN))
}

/// Split the request target into the address (`None` for `/`) and the raw query.
fn parse_target(target: &str) -> Result<(Option<VirtualAddress>, Option<&str>), HandshakeError> {
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    // Origin-form only: absolute-form ("http://…") and "*" do not start with '/'.
    let name = path.strip_prefix('/').ok_or(HandshakeError::BadPath)?;
    if name.is_empty() {
        return Ok((None, query));
    }
    // An address is one path segment, and never percent-encoded: a host name needs no
    // escapes, so accepting them would only give one name two spellings.
    if name.contains(['/', '%']) {
        return Err(HandshakeError::BadPath);
    }
    let address = VirtualAddress::parse(name.as_bytes())?;
    Ok((Some(address), query))
}

/// Whether a complete request head asks for a protocol upgrade (has an `Upgrade` header):
/// such a request is a registration and goes to [`parse_upgrade`]; any other is plain HTTP
/// for the public ingress. A head httparse refuses counts as an upgrade, so that the
/// handshake's own error names what is wrong with it.
pub fn is_upgrade(head: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HANDSHAKE_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => req
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("upgrade")),
        Ok(httparse::Status::Partial) | Err(_) => true,
    }
}

/// The token of `Authorization: Bearer <t>`; `None` for any other scheme.
fn bearer_token(value: &[u8]) -> Result<Option<Token>, HandshakeError> {
    let (scheme, rest) = match value.iter().position(|&b| b == b' ' || b == b'\t') {
        Some(i) => value.split_at(i),
        None => (value, &b""[..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Ok(None);
    }
    checked_token(rest.trim_ascii(), "bearer token").map(Some)
}

/// The `public` query parameter: `1`/`true` or `0`/`false`; repeats must agree.
fn query_public(query: &str) -> Result<bool, HandshakeError> {
    let mut found: Option<bool> = None;
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name != PUBLIC_PARAM {
            continue;
        }
        let public = match value {
            "1" | "true" => true,
            "0" | "false" => false,
            _ => {
                return Err(HandshakeError::Malformed(
                    "public must be 1, true, 0 or false".into(),
                ));
            }
        };
        if found.replace(public).is_some_and(|p| p != public) {
            return Err(HandshakeError::Malformed(
                "conflicting public parameters".into(),
            ));
        }
    }
    Ok(found.unwrap_or(false))
}

/// The `access_token` query parameter, percent-decoded. Repeats must agree.
fn query_token(query: &str) -> Result<Option<Token>, HandshakeError> {
    let mut found: Option<Token> = None;
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name != ACCESS_TOKEN_PARAM {
            continue;
        }
        let token = checked_token(&percent_decode(value)?, "access_token")?;
        match &found {
            Some(previous) if *previous != token => return Err(HandshakeError::ConflictingTokens),
            Some(_) => {}
            None => found = Some(token),
        }
    }
    Ok(found)
}

/// A token must be non-empty visible ASCII (RFC 6750's b64token is a subset), which also
/// keeps control characters out of anything it is later compared with or stored in.
fn checked_token(bytes: &[u8], what: &str) -> Result<Token, HandshakeError> {
    if bytes.is_empty() {
        return Err(HandshakeError::Malformed(format!("empty {what}")));
    }
    if !bytes.iter().all(u8::is_ascii_graphic) {
        return Err(HandshakeError::Malformed(format!(
            "{what} has characters outside visible ASCII"
        )));
    }
    // All bytes are ASCII, so this is lossless; no fallible conversion needed.
    Ok(Token(bytes.iter().map(|&b| char::from(b)).collect()))
}

/// RFC 3986 `%XX` decoding; a `%` not followed by two hex digits is malformed.
fn percent_decode(s: &str) -> Result<Vec<u8>, HandshakeError> {
    let bad = || HandshakeError::Malformed("bad percent-escape in query".into());
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = bytes.next().and_then(hex_value).ok_or_else(bad)?;
            let lo = bytes.next().and_then(hex_value).ok_or_else(bad)?;
            out.push(hi << 4 | lo);
        } else {
            out.push(b);
        }
    }
    Ok(out)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// base64(SHA-1(key + GUID)) (RFC 6455 §4.2.2).
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(WEBSOCKET_GUID.as_bytes());
    BASE64.encode(sha.finalize())
}

/// `HTTP/1.1 101 Switching Protocols` with `Upgrade`, `Connection` and `Sec-WebSocket-Accept`.
pub fn response_101(accept_key: &str, protocol: Protocol) -> Vec<u8> {
    let subprotocol = match protocol {
        Protocol::V1 => String::new(),
        Protocol::V2 => format!("Sec-WebSocket-Protocol: {PROTOCOL_2}\r\n"),
    };
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept_key}\r\n{subprotocol}\r\n"
    )
    .into_bytes()
}

/// An HTTP/1.1 refusal: status line with the standard reason phrase,
/// `Content-Type: text/plain; charset=utf-8`, `Content-Length`, `Connection: close`, and for
/// 426 also `Upgrade: websocket` and `Sec-WebSocket-Version: 13`. Body: `reason` + `"\n"`.
/// Statuses used: 400, 401, 403, 405, 409, 426, 431, 500, 503.
///
/// Where RFC 9110 requires a header with a status, it is added: 426 lists `Upgrade` in
/// `Connection` (`close, Upgrade`), 401 carries `WWW-Authenticate: Bearer`, 405 `Allow: GET`.
pub fn refusal(status: u16, reason: &str) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(192 + reason.len());
    write::put_plain_error_head(&mut out, status, reason.len() + 1);
    out.extend_from_slice(match status {
        426 => &b"Connection: close, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"[..],
        401 => b"Connection: close\r\nWWW-Authenticate: Bearer\r\n",
        405 => b"Connection: close\r\nAllow: GET\r\n",
        _ => b"Connection: close\r\n",
    });
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\n");
    out.to_vec()
}

/// The `Sec-WebSocket-Key` for a 16-byte random nonce the caller drew (this module has no
/// randomness of its own, to stay pure).
pub fn client_key(nonce: &[u8; KEY_NONCE_LEN]) -> String {
    BASE64.encode(nonce)
}

/// Client side (our endpoint agent): the opening request for `ws://host/path`.
///
/// An empty `path_and_query` means `/`, and a missing leading `/` is added. The arguments come
/// from our own configuration and go out verbatim, so they must not contain CR or LF.
pub fn client_request(
    host: &str,
    path_and_query: &str,
    key: &str,
    token: Option<&Token>,
) -> String {
    let slash = if path_and_query.starts_with('/') {
        ""
    } else {
        "/"
    };
    let mut req = format!(
        "GET {slash}{path_and_query} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n\
         Sec-WebSocket-Version: {WEBSOCKET_VERSION}\r\n"
    );
    if let Some(token) = token {
        req.push_str("Authorization: Bearer ");
        req.push_str(token.as_str());
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req
}

/// Client side: parse the server's answer to [`client_request`] with the same `key`.
///
/// `Ok(None)`: incomplete; `Ok(Some(head_len))`: a 101 with `Upgrade: websocket`,
/// `Connection: Upgrade` and the right `Sec-WebSocket-Accept`; anything after `head_len` is
/// already WebSocket frames. Any other status is `Refused` with its reason phrase (the body
/// is not awaited). A 101 that picks an extension or subprotocol is `Malformed`, because we
/// offer none (RFC 6455 §4.1 says to fail the connection).
pub fn parse_response(
    buf: &[u8],
    key: &str,
    max_head_bytes: usize,
) -> Result<Option<usize>, ClientHandshakeError> {
    let window = &buf[..buf.len().min(max_head_bytes)];
    let mut headers = [httparse::EMPTY_HEADER; MAX_HANDSHAKE_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > max_head_bytes => {
            return Err(ClientHandshakeError::HeadTooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ClientHandshakeError::HeadTooLarge),
        Err(e) => return Err(ClientHandshakeError::Malformed(e.to_string())),
    };

    let status = resp.code.unwrap_or(0);
    if status != 101 {
        let reason = resp.reason.unwrap_or("").to_owned();
        return Err(ClientHandshakeError::Refused { status, reason });
    }
    if resp.version != Some(1) {
        return Err(ClientHandshakeError::Malformed(
            "101 response is not HTTP/1.1".into(),
        ));
    }

    let mut upgrade_websocket = false;
    let mut connection_upgrade = false;
    let mut accept: Option<&[u8]> = None;
    for h in resp.headers.iter() {
        let value = h.value.trim_ascii();
        let name = h.name;
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade_websocket |= has_token(value, b"websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            connection_upgrade |= has_token(value, b"upgrade");
        } else if name.eq_ignore_ascii_case("sec-websocket-accept") {
            if accept.replace(value).is_some() {
                return Err(ClientHandshakeError::Malformed(
                    "duplicate Sec-WebSocket-Accept header".into(),
                ));
            }
        } else if (name.eq_ignore_ascii_case("sec-websocket-extensions")
            || name.eq_ignore_ascii_case("sec-websocket-protocol"))
            && !value.is_empty()
        {
            return Err(ClientHandshakeError::Malformed(format!(
                "server chose an unoffered {name}"
            )));
        }
    }
    if !(upgrade_websocket && connection_upgrade) {
        return Err(ClientHandshakeError::NotUpgrade);
    }
    match accept {
        Some(accept) if accept == accept_key(key.trim().as_bytes()).as_bytes() => {
            Ok(Some(head_len))
        }
        _ => Err(ClientHandshakeError::BadAccept),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    // RFC 6455 §1.3. (The brief quoted "…GJzZo2pHQ0Ho=", which is not SHA-1 of key + GUID.)
    const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
    const MAX_HEAD: usize = 8 * 1024;

    /// A valid upgrade for `target` with extra header lines appended.
    fn request(target: &str, extra: &str) -> Vec<u8> {
        format!(
            "GET {target} HTTP/1.1\r\nHost: relay.example:443\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {SAMPLE_KEY}\r\n\
             Sec-WebSocket-Version: 13\r\n{extra}\r\n"
        )
        .into_bytes()
    }

    fn ok(buf: &[u8]) -> (UpgradeRequest, usize) {
        match parse_upgrade(buf, MAX_HEAD) {
            Ok(Some(parsed)) => parsed,
            other => panic!("expected a complete upgrade, got {other:?}"),
        }
    }

    fn err(buf: &[u8]) -> HandshakeError {
        match parse_upgrade(buf, MAX_HEAD) {
            Err(e) => e,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    fn token(s: &str) -> Option<Token> {
        Some(Token::new(s.into()))
    }

    #[test]
    fn rfc6455_sample_accept_key() {
        assert_eq!(accept_key(SAMPLE_KEY.as_bytes()), SAMPLE_ACCEPT);
    }

    #[test]
    fn valid_upgrade() {
        let mut buf = request("/Bob", "Origin: https://app.example\r\n");
        let head = buf.len();
        buf.extend_from_slice(b"\x81\x85frame bytes follow");
        let (req, head_len) = ok(&buf);
        assert_eq!(head_len, head);
        assert_eq!(
            req.address.as_ref().map(|a| a.as_str()),
            Some("bob"),
            "lowered"
        );
        assert_eq!(req.token, None);
        assert_eq!(req.accept_key, SAMPLE_ACCEPT);
        assert_eq!(req.origin.as_deref(), Some("https://app.example"));
        assert_eq!(
            response_101(&req.accept_key, req.protocol),
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {SAMPLE_ACCEPT}\r\n\r\n"
            )
            .into_bytes()
        );
    }

    #[test]
    fn root_path_asks_for_an_assigned_address() {
        assert!(ok(&request("/", "")).0.address.is_none());
        let (req, _) = ok(&request("/?access_token=abc", ""));
        assert!(req.address.is_none());
        assert_eq!(req.token, token("abc"));
    }

    #[test]
    fn lenient_header_forms() {
        let buf = b"GET /a.b-c HTTP/1.1\r\nhost: x\r\nUPGRADE: WebSocket\r\n\
            connection: keep-alive, Upgrade\r\nsec-websocket-key:  dGhlIHNhbXBsZSBub25jZQ==  \r\n\
            SEC-WEBSOCKET-VERSION: 13\r\n\r\n";
        let (req, _) = ok(buf);
        assert_eq!(req.address.map(|a| a.to_string()).as_deref(), Some("a.b-c"));
        assert_eq!(req.accept_key, SAMPLE_ACCEPT);
        // Lists may be split over several lines.
        let split = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nUpgrade: websocket\r\n\
            Connection: keep-alive\r\nConnection: upgrade\r\n\
            Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        assert!(ok(split).0.address.is_none());
    }

    #[test]
    fn every_error_with_its_status() {
        let base = String::from_utf8(request("/bob", "")).expect("ascii");
        let edit = |from: &str, to: &str| base.replacen(from, to, 1).into_bytes();
        let big_head = {
            let mut b = request(
                "/bob",
                &"X-Pad: 0123456789012345678901234567890123\r\n".repeat(500),
            );
            b.truncate(20 * 1024);
            b
        };
        assert!(big_head.len() > MAX_HEAD);
        let cases: Vec<(Vec<u8>, HandshakeError, u16)> = vec![
            (big_head, HandshakeError::HeadTooLarge, 431),
            (
                b"GET /bob HTTP/1.1\r\nHost relay\r\n\r\n".to_vec(),
                HandshakeError::Malformed(String::new()),
                400,
            ),
            (
                b"GET /bob HTTP/1.1\r\nBad Header: x\r\n\r\n".to_vec(),
                HandshakeError::Malformed(String::new()),
                400,
            ),
            (edit("GET", "POST"), HandshakeError::NotGet, 400),
            (
                edit("HTTP/1.1", "HTTP/1.0"),
                HandshakeError::BadHttpVersion,
                400,
            ),
            (
                edit("HTTP/1.1", "HTTP/2.0"),
                HandshakeError::BadHttpVersion,
                400,
            ),
            (
                edit("Host: relay.example:443\r\n", ""),
                HandshakeError::MissingHost,
                400,
            ),
            (
                edit("Upgrade: websocket\r\n", ""),
                HandshakeError::NotUpgrade,
                426,
            ),
            (
                edit("Upgrade: websocket", "Upgrade: h2c"),
                HandshakeError::NotUpgrade,
                426,
            ),
            (
                edit("Connection: Upgrade", "Connection: keep-alive"),
                HandshakeError::NotUpgrade,
                426,
            ),
            (
                edit("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"),
                HandshakeError::BadVersion,
                426,
            ),
            (
                edit("Sec-WebSocket-Version: 13\r\n", ""),
                HandshakeError::BadVersion,
                426,
            ),
            (
                edit(SAMPLE_KEY, "dGhlIHNhbXBsZSBub25jZQ"),
                HandshakeError::BadKey,
                400,
            ),
            (
                edit(SAMPLE_KEY, "dGhlIHNhbXBsZSBub25jZXg="),
                HandshakeError::BadKey,
                400,
            ),
            (
                edit(SAMPLE_KEY, "!GhlIHNhbXBsZSBub25jZQ=="),
                HandshakeError::BadKey,
                400,
            ),
            (
                edit(SAMPLE_KEY, "dGhlIHNhbXBsZSBub25jZXh4eA=="),
                HandshakeError::BadKey,
                400,
            ),
            (
                edit(&format!("Sec-WebSocket-Key: {SAMPLE_KEY}\r\n"), ""),
                HandshakeError::BadKey,
                400,
            ),
            (edit("/bob", "/a/b"), HandshakeError::BadPath, 400),
            (edit("/bob", "/bob/"), HandshakeError::BadPath, 400),
            (edit("/bob", "/b%6Fb"), HandshakeError::BadPath, 400),
            (
                edit("/bob", "http://relay.example/bob"),
                HandshakeError::BadPath,
                400,
            ),
            (edit("/bob", "*"), HandshakeError::BadPath, 400),
            (
                edit("/bob", "/bo_b"),
                HandshakeError::BadAddress(AddressError::InvalidChar(b'_')),
                400,
            ),
            (
                edit("/bob", "/-bob"),
                HandshakeError::BadAddress(AddressError::HyphenAtEdge),
                400,
            ),
            (
                edit("/bob", "/a..b"),
                HandshakeError::BadAddress(AddressError::EmptyLabel),
                400,
            ),
            (
                with_header(
                    edit("/bob", "/bob?access_token=a"),
                    "Authorization: Bearer b\r\n",
                ),
                HandshakeError::ConflictingTokens,
                400,
            ),
        ];
        for (buf, expected, status) in cases {
            let got = err(&buf);
            match (&got, &expected) {
                // Malformed texts come from httparse or from us; the variant is what matters.
                (HandshakeError::Malformed(_), HandshakeError::Malformed(_)) => {}
                _ => assert_eq!(got, expected, "{}", String::from_utf8_lossy(&buf)),
            }
            assert_eq!(got.status(), status, "{got}");
            let response = got.response();
            assert_eq!(response, refusal(status, &got.to_string()));
            assert!(response.starts_with(format!("HTTP/1.1 {status} ").as_bytes()));
        }
    }

    /// Insert a header line right after the request line.
    fn with_header(buf: Vec<u8>, line: &str) -> Vec<u8> {
        let text = String::from_utf8(buf).expect("ascii");
        text.replacen("\r\n", &format!("\r\n{line}"), 1)
            .into_bytes()
    }

    #[test]
    fn path_shapes() {
        assert_eq!(err(&request("//", "")), HandshakeError::BadPath);
        assert!(ok(&request("/?", "")).0.address.is_none());
        assert_eq!(
            err(&request("?access_token=a", "")),
            HandshakeError::BadPath
        );
        assert_eq!(err(&request("/b%C3%B6b", "")), HandshakeError::BadPath);
        assert_eq!(
            err(&request("/bob.", "")),
            HandshakeError::BadAddress(AddressError::EmptyLabel)
        );
        let long = format!("/{}", "a".repeat(300));
        assert_eq!(
            err(&request(&long, "")),
            HandshakeError::BadAddress(AddressError::TooLong(300))
        );
    }

    #[test]
    fn duplicate_headers_are_malformed() {
        for line in [
            "Host: other\r\n".to_owned(),
            format!("Sec-WebSocket-Key: {SAMPLE_KEY}\r\n"),
            "Sec-WebSocket-Version: 13\r\n".to_owned(),
        ] {
            assert!(
                matches!(err(&request("/bob", &line)), HandshakeError::Malformed(_)),
                "{line}"
            );
        }
        let two_auth = "Authorization: Bearer a\r\nAuthorization: Bearer a\r\n";
        assert!(matches!(
            err(&request("/bob", two_auth)),
            HandshakeError::Malformed(_)
        ));
        let two_origins = "Origin: https://a\r\nOrigin: https://b\r\n";
        assert!(matches!(
            err(&request("/bob", two_origins)),
            HandshakeError::Malformed(_)
        ));
    }

    #[test]
    fn header_and_query_tokens() {
        let from_header = ok(&request("/bob", "Authorization: Bearer s3cr3t-T0ken\r\n"))
            .0
            .token;
        assert_eq!(from_header, token("s3cr3t-T0ken"));
        let any_case = ok(&request("/bob", "authorization: bEaReR   s3cr3t \r\n"))
            .0
            .token;
        assert_eq!(any_case, token("s3cr3t"));
        let other_scheme = ok(&request("/bob", "Authorization: Basic Ym9iOnB3\r\n"))
            .0
            .token;
        assert_eq!(other_scheme, None, "non-bearer credentials are not ours");

        let decoded = ok(&request("/bob?x=1&access_token=a%2Bb%2fc%3D%3d+d&y", ""))
            .0
            .token;
        assert_eq!(
            decoded,
            token("a+b/c==+d"),
            "only %XX is decoded; '+' stays"
        );
        let agree = ok(&request(
            "/bob?access_token=abc",
            "Authorization: Bearer abc\r\n",
        ))
        .0
        .token;
        assert_eq!(agree, token("abc"));
        let repeated = ok(&request("/bob?access_token=abc&access_token=ab%63", ""))
            .0
            .token;
        assert_eq!(repeated, token("abc"));
        assert_eq!(
            err(&request("/bob?access_token=abc&access_token=abd", "")),
            HandshakeError::ConflictingTokens
        );

        for bad in [
            request("/bob?access_token=", ""),
            request("/bob?access_token", ""),
            request("/bob?access_token=%zz", ""),
            request("/bob?access_token=abc%4", ""),
            request("/bob?access_token=a%20b", ""),
            request("/bob?access_token=%C3%A9", ""),
            request("/bob", "Authorization: Bearer\r\n"),
            request("/bob", "Authorization: Bearer a b\r\n"),
        ] {
            assert!(
                matches!(err(&bad), HandshakeError::Malformed(_)),
                "{}",
                String::from_utf8_lossy(&bad)
            );
        }
    }

    #[test]
    fn tokens_never_show_in_debug_or_errors() {
        let secret = "hunter2-very-secret";
        let t = Token::new(secret.into());
        assert_eq!(format!("{t:?}"), "Token(***)");
        assert_eq!(t.as_str(), secret);
        let (req, _) = ok(&request(
            "/bob",
            &format!("Authorization: Bearer {secret}\r\n"),
        ));
        assert!(!format!("{req:?}").contains(secret));
        let conflict = err(&request(
            &format!("/bob?access_token={secret}"),
            "Authorization: Bearer x\r\n",
        ));
        assert!(!String::from_utf8_lossy(&conflict.response()).contains(secret));
    }

    #[test]
    fn token_equality() {
        assert_eq!(Token::new("abc".into()), Token::new("abc".into()));
        assert_ne!(Token::new("abc".into()), Token::new("abd".into()));
        assert_ne!(Token::new("abc".into()), Token::new("abcd".into()));
        assert_ne!(Token::new(String::new()), Token::new("a".into()));
    }

    #[test]
    fn split_at_every_byte_is_incomplete_until_the_end() {
        let buf = request("/bob?access_token=abc", "Origin: https://x\r\n");
        for cut in 0..buf.len() {
            assert!(
                matches!(parse_upgrade(&buf[..cut], MAX_HEAD), Ok(None)),
                "cut at {cut}: {:?}",
                parse_upgrade(&buf[..cut], MAX_HEAD)
            );
        }
        let (req, head_len) = ok(&buf);
        assert_eq!(head_len, buf.len());
        assert_eq!(req.token, token("abc"));
    }

    #[test]
    fn size_limits() {
        // 20 KB of headers (20 lines of 1 KiB, so the byte limit trips, not the count).
        let pad = format!("X-Pad: {}\r\n", "p".repeat(1024 - 9));
        let big = request("/bob", &pad.repeat(20));
        assert!(big.len() > 20 * 1024);
        assert_eq!(err(&big), HandshakeError::HeadTooLarge);
        // No end in sight: wait up to the limit, refuse as soon as more has arrived.
        assert!(matches!(
            parse_upgrade(&big[..MAX_HEAD], MAX_HEAD),
            Ok(None)
        ));
        assert_eq!(
            parse_upgrade(&big[..MAX_HEAD + 1], MAX_HEAD).err(),
            Some(HandshakeError::HeadTooLarge)
        );
        assert_eq!(err(&big[..big.len() - 2]), HandshakeError::HeadTooLarge);
        // Too many headers even though the bytes would fit.
        let many = request("/bob", &"X-A: 1\r\n".repeat(MAX_HANDSHAKE_HEADERS));
        assert!(many.len() < MAX_HEAD);
        assert_eq!(err(&many), HandshakeError::HeadTooLarge);
        let fits = request("/bob", &"X-A: 1\r\n".repeat(MAX_HANDSHAKE_HEADERS - 6));
        assert!(ok(&fits).0.address.is_some());
        // A head of exactly the limit is accepted.
        let exact = request("/bob", "");
        assert!(matches!(parse_upgrade(&exact, exact.len()), Ok(Some(_))));
        assert_eq!(
            parse_upgrade(&exact, exact.len() - 1).err(),
            Some(HandshakeError::HeadTooLarge)
        );
    }

    #[test]
    fn refusal_format() {
        let r = String::from_utf8(refusal(426, "need websocket")).expect("utf8");
        assert_eq!(
            r,
            "HTTP/1.1 426 Upgrade Required\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 15\r\nConnection: close, Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\n\r\nneed websocket\n"
        );
        for (status, phrase) in [
            (400, "Bad Request"),
            (401, "Unauthorized"),
            (403, "Forbidden"),
            (405, "Method Not Allowed"),
            (409, "Conflict"),
            (431, "Request Header Fields Too Large"),
            (500, "Internal Server Error"),
            (503, "Service Unavailable"),
        ] {
            let r = String::from_utf8(refusal(status, "why ü")).expect("utf8");
            assert!(
                r.starts_with(&format!("HTTP/1.1 {status} {phrase}\r\n")),
                "{r}"
            );
            assert!(r.contains("\r\nConnection: close\r\n"));
            assert!(!r.contains("Upgrade"));
            let (head, body) = r.split_once("\r\n\r\n").expect("head end");
            assert_eq!(body, "why ü\n");
            assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())));
        }
        assert!(
            String::from_utf8_lossy(&refusal(401, "x")).contains("WWW-Authenticate: Bearer\r\n")
        );
        assert!(String::from_utf8_lossy(&refusal(405, "x")).contains("Allow: GET\r\n"));
    }

    #[test]
    fn client_server_round_trip() {
        let key = client_key(b"the sample nonce");
        assert_eq!(key, SAMPLE_KEY);
        let secret = Token::new("tok/en+1".into());
        let out = client_request("relay.example:8080", "/Alice", &key, Some(&secret));
        let (req, head_len) = ok(out.as_bytes());
        assert_eq!(head_len, out.len());
        assert_eq!(req.address.map(|a| a.to_string()).as_deref(), Some("alice"));
        assert_eq!(req.token.as_ref(), Some(&secret));

        let mut answer = response_101(&req.accept_key, req.protocol);
        let head = answer.len();
        for cut in 0..head {
            assert_eq!(
                parse_response(&answer[..cut], &key, MAX_HEAD),
                Ok(None),
                "cut {cut}"
            );
        }
        answer.extend_from_slice(b"\x81\x02hi");
        assert_eq!(parse_response(&answer, &key, MAX_HEAD), Ok(Some(head)));
        assert_eq!(
            parse_response(&answer, &client_key(&[7; 16]), MAX_HEAD),
            Err(ClientHandshakeError::BadAccept)
        );

        let root = client_request("h", "", &key, None);
        assert!(root.starts_with("GET / HTTP/1.1\r\n"));
        assert!(!root.contains("Authorization"));
        assert!(ok(root.as_bytes()).0.address.is_none());
        let query = client_request("h", "?access_token=x", &key, None);
        assert_eq!(ok(query.as_bytes()).0.token, token("x"));
    }

    #[test]
    fn client_rejections() {
        let key = SAMPLE_KEY;
        assert_eq!(
            parse_response(&refusal(409, "address taken"), key, MAX_HEAD),
            Err(ClientHandshakeError::Refused {
                status: 409,
                reason: "Conflict".into()
            })
        );
        let no_upgrade = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\
            Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert_eq!(
            parse_response(no_upgrade, key, MAX_HEAD),
            Err(ClientHandshakeError::NotUpgrade)
        );
        let no_accept = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
            Connection: Upgrade\r\n\r\n";
        assert_eq!(
            parse_response(no_accept, key, MAX_HEAD),
            Err(ClientHandshakeError::BadAccept)
        );
        let extension =
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
            Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
            Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n";
        assert!(matches!(
            parse_response(extension, key, MAX_HEAD),
            Err(ClientHandshakeError::Malformed(_))
        ));
        let twice =
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
            Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
            Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert!(matches!(
            parse_response(twice, key, MAX_HEAD),
            Err(ClientHandshakeError::Malformed(_))
        ));
        assert!(matches!(
            parse_response(b"HTTX/1.1 101\r\n\r\n", key, MAX_HEAD),
            Err(ClientHandshakeError::Malformed(_))
        ));
        let big = format!(
            "HTTP/1.1 101 OK\r\n{}",
            "X-Pad: 0123456789\r\n".repeat(1000)
        );
        assert_eq!(
            parse_response(big.as_bytes(), key, MAX_HEAD),
            Err(ClientHandshakeError::HeadTooLarge)
        );
    }
}
