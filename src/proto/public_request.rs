//! Requests from internet callers (the proxy's public HTTP ingress): which virtual address a
//! `Host` names, the strict checks on a plain HTTP/1.1 head, and the head relayed to the
//! target, written in one pass over the caller's head.
//!
//! The relayed head is a normal httpws request (docs/protocol.md §2 and §11):
//! `Host: <address>`, a `CSeq` line the target's shard renumbers, and none of the caller's
//! connection headers, CSeq or `Httpws-From` (which the proxy stamps with
//! [`INTERNET_CALLER`]).

use std::mem::MaybeUninit;
use std::net::IpAddr;

use bytes::BytesMut;
use httparse::Header;

use crate::proto::address::{self, AddressError, HostAddress};
use crate::proto::answer_error::AnswerError;
use crate::proto::head::{self, HeadInfo};
use crate::proto::http1::framing::{self, Framing, FramingError};
use crate::proto::http1::{header_name, hop};
use crate::proto::stream::STREAM_WINDOW;

/// The `Httpws-From` of a request that came from the internet. It starts with `-`, which no
/// virtual address may, so no endpoint can register it or pass for it.
pub const INTERNET_CALLER: &str = "-internet-";
/// Most header lines accepted in an internet caller's head.
pub const MAX_INGRESS_HEADERS: usize = head::DEFAULT_MAX_HEADERS;
/// The largest request body, in bytes, that goes to its target whole: one stream window's
/// worth. A longer one (by its `Content-Length`), or a chunked one, streams.
pub const MAX_WHOLE_BODY_BYTES: u64 = STREAM_WINDOW;
/// The line that makes a relayed head a stream head.
const STREAM_LINE: &[u8] = b"Httpws-Stream: body\r\n";

/// Why an internet caller's request cannot be relayed: the HTTP status and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngressError {
    /// A head the strict rules refuse (syntax, framing, Host, target form); carries why (400).
    #[error("{0}")]
    BadRequest(&'static str),
    /// A `Host` that is neither one of the proxy's names nor a valid address; carries why (400).
    #[error("Host is not a virtual address: {0}")]
    BadHost(String),
    /// More than [`MAX_INGRESS_HEADERS`] header lines (431).
    #[error("too many header lines")]
    TooManyHeaders,
    /// `CONNECT`, which asks for a tunnel rather than an answer; carries the method (405).
    #[error("the {0} method is not supported here")]
    MethodNotAllowed(String),
    /// A `Transfer-Encoding` other than `chunked` alone (501).
    #[error("Transfer-Encoding other than chunked")]
    UnsupportedEncoding,
}

impl IngressError {
    /// The answer the caller gets (its status is the token's).
    pub fn answer(&self) -> AnswerError {
        match self {
            IngressError::BadRequest(_) | IngressError::BadHost(_) => AnswerError::BadRequest,
            IngressError::TooManyHeaders => AnswerError::HeadTooLarge,
            IngressError::MethodNotAllowed(_) => AnswerError::MethodNotAllowed,
            IngressError::UnsupportedEncoding => AnswerError::UnsupportedCoding,
        }
    }

    /// The status of [`answer`](Self::answer).
    pub fn status(&self) -> u16 {
        self.answer().status()
    }
}

impl From<FramingError> for IngressError {
    fn from(e: FramingError) -> Self {
        match e {
            FramingError::UnsupportedCoding => IngressError::UnsupportedEncoding,
            other => IngressError::BadRequest(other.reason()),
        }
    }
}

/// What a `Host` names. (Lives on the stack for one request; boxing the address would cost
/// an allocation per request.)
#[derive(Debug, Clone, Copy)]
#[allow(clippy::large_enum_variant)]
pub enum HostRoute {
    /// An endpoint: `<address>` or `<address>.<domain>`.
    Endpoint(HostAddress),
    /// The proxy itself: an IP literal, `localhost`, or one of the `--domain`s exactly.
    Proxy,
}

/// The names by which callers reach the proxy itself: `--domain`s (whose subdomains name
/// endpoints) and `--public-name`s (names of the proxy only). IP literals and `localhost`
/// are the proxy too. Borrowed from the configuration for one request.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProxyNames<'a> {
    /// The `--domain`s: each names the proxy, and `<address>.<domain>` names an endpoint.
    pub domains: &'a [String],
    /// The `--public-name`s: names of the proxy only.
    pub public_names: &'a [String],
}

impl ProxyNames<'_> {
    /// Whether `name` (a `Host` without its port) is the proxy's own: an IP literal,
    /// `localhost`, a `--domain` or a `--public-name`, compared case-insensitively. A name
    /// someone else's DNS points at the proxy (DNS rebinding) is not.
    pub fn is_proxy(&self, name: &[u8]) -> bool {
        name.eq_ignore_ascii_case(b"localhost")
            || is_ipv4_literal(name)
            || (name.first() == Some(&b'[') && ipv6_literal(name).is_some())
            || self
                .domains
                .iter()
                .chain(self.public_names)
                .any(|d| name.eq_ignore_ascii_case(d.as_bytes()))
    }
}

/// Route a `Host` value (port ignored, but it must be a port: 1-5 digits, at most 65535). A
/// name under one of the `--domain`s loses that suffix (`bob.tunnel.example.com` → `bob`);
/// the proxy's own names are the proxy; any other name is the address itself. Anything
/// malformed is `BadHost`, whichever way it would route, so nothing malformed is ever relayed
/// or copied into `X-Forwarded-Host`.
pub fn route_host(host: &[u8], names: ProxyNames<'_>) -> Result<HostRoute, IngressError> {
    let bad = |e: AddressError| IngressError::BadHost(e.to_string());
    let host = host.trim_ascii();
    if host.first() == Some(&b'[') {
        return host_name(host)
            .map(|_| HostRoute::Proxy)
            .ok_or_else(|| IngressError::BadHost("malformed IPv6 literal".into()));
    }
    let name = address::host_part(host).map_err(bad)?;
    if names.is_proxy(name) {
        return Ok(HostRoute::Proxy);
    }
    for domain in names.domains {
        let d = domain.as_bytes();
        if name.len() > d.len() + 1
            && name[name.len() - d.len()..].eq_ignore_ascii_case(d)
            && name[name.len() - d.len() - 1] == b'.'
        {
            let label = &name[..name.len() - d.len() - 1];
            return HostAddress::from_host_header(label)
                .map(HostRoute::Endpoint)
                .map_err(bad);
        }
    }
    HostAddress::from_host_header(name)
        .map(HostRoute::Endpoint)
        .map_err(bad)
}

/// The name part of a well-formed `Host` value (`[v6]` keeps its brackets), or None.
pub fn host_name(host: &[u8]) -> Option<&[u8]> {
    let host = host.trim_ascii();
    if host.first() == Some(&b'[') {
        ipv6_literal(host)?;
        let end = host.iter().position(|&b| b == b']')?;
        return Some(&host[..=end]);
    }
    address::host_part(host).ok()
}

/// `[v6-address]` or `[v6-address]:port`, both checked.
fn ipv6_literal(host: &[u8]) -> Option<()> {
    let end = host.iter().position(|&b| b == b']')?;
    let inside = std::str::from_utf8(&host[1..end]).ok()?;
    inside.parse::<std::net::Ipv6Addr>().ok()?;
    match &host[end + 1..] {
        [] => Some(()),
        [b':', port @ ..] => address::validate_port(port).ok(),
        _ => None,
    }
}

fn is_ipv4_literal(name: &[u8]) -> bool {
    std::str::from_utf8(name).is_ok_and(|s| s.parse::<std::net::Ipv4Addr>().is_ok())
}

/// Where the caller is, for the `X-Forwarded-*` headers the target gets.
#[derive(Debug, Clone, Copy)]
pub struct Forwarded {
    /// The caller's IP address, for `X-Forwarded-For`.
    pub peer: IpAddr,
    /// Whether the caller came over TLS, for `X-Forwarded-Proto` (`https` rather than `http`).
    pub tls: bool,
}

/// A checked internet caller's head. (On the stack, once per request: not boxed.)
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum IngressHead {
    /// An upgrade (WebSocket or other) addressed to the proxy itself: on the proxy's own
    /// listener that is a registration, and it is handled there.
    Upgrade,
    /// A request for the proxy itself (its own pages).
    Proxy(ProxyRequest),
    /// A request to relay; the relayed head was written to `dst`.
    Relay(RelayHead),
}

/// A request whose `Host` is the proxy.
#[derive(Debug, Clone)]
pub struct ProxyRequest {
    /// The request method as sent.
    pub method: String,
    /// The target in origin form (an absolute-form target loses scheme and authority), or `*`.
    pub path: String,
    /// Whether the connection stays open after the answer (HTTP/1.1 without `Connection: close`,
    /// or HTTP/1.0 with `Connection: keep-alive`).
    pub keep_alive: bool,
    /// How the request's body is delimited.
    pub framing: Framing,
}

/// What the ingress needs to relay one request and answer its caller.
#[derive(Debug, Clone)]
pub struct RelayHead {
    /// The endpoint the `Host` names.
    pub target: HostAddress,
    /// Describes the relayed head written to `dst` (offsets from where it starts).
    pub info: HeadInfo,
    /// How the caller's body is delimited (the relayed message keeps it as it is).
    pub framing: Framing,
    /// Whether the caller's connection stays open after the answer (as for [`ProxyRequest`]).
    pub keep_alive: bool,
    /// `Expect: 100-continue`: the caller waits for a 100 before sending its body.
    pub expect_continue: bool,
    /// The method is `HEAD`: the answer goes back without a body, whatever its head declares.
    pub head_request: bool,
    /// The caller spoke HTTP/1.1 (it can take a chunked response).
    pub http11: bool,
    /// The body streams (protocol 2, docs/protocol.md §12): the relayed head is a stream head
    /// (`Httpws-Stream: body`, no `Transfer-Encoding`) and the body follows as data messages,
    /// decoded from the caller's chunks. Chunked bodies and those over
    /// [`MAX_WHOLE_BODY_BYTES`] stream; the others go whole.
    pub streamed: bool,
    /// The caller asks to switch protocols (`Upgrade`, HTTP/1.1, no body): the relayed head
    /// keeps `Connection: Upgrade` and the `Upgrade`, and streams; a `101` from the target
    /// turns the connection into two byte streams.
    pub upgrade: bool,
}

/// Whether an upgrade request that opens a connection to the proxy's own listener is a call
/// to an endpoint rather than a registration: its `Host` is `<address>.<domain>` for one of
/// the `--domain`s. A bare name is not enough, however it would route a plain request: an
/// agent may reach the proxy by a host name that is also a valid address (`proxy`, `relay`),
/// and its registration — token included — must never be handed to whoever holds that name.
/// (`--http-listen` has no registrations: there every upgrade to an endpoint passes.)
pub fn upgrade_names_endpoint(head: &[u8], names: ProxyNames<'_>) -> bool {
    let mut buf = [const { MaybeUninit::<Header<'_>>::uninit() }; MAX_INGRESS_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    if !matches!(
        req.parse_with_uninit_headers(head, &mut buf),
        Ok(httparse::Status::Complete(_))
    ) {
        return false;
    }
    let mut hosts = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"));
    let (Some(host), None) = (hosts.next(), hosts.next()) else {
        return false;
    };
    let Ok(name) = address::host_part(host.value.trim_ascii()) else {
        return false;
    };
    !names.is_proxy(name)
        && names.domains.iter().any(|d| {
            let d = d.as_bytes();
            name.len() > d.len() + 1
                && name[name.len() - d.len()..].eq_ignore_ascii_case(d)
                && name[name.len() - d.len() - 1] == b'.'
                && HostAddress::from_host_header(&name[..name.len() - d.len() - 1]).is_ok()
        })
}

/// Check the caller's head (`head` ends with its blank line) and, for a request to relay,
/// append the relayed head to `dst`.
///
/// The same strict framing as relayed messages (docs/protocol.md §9): one decimal
/// Content-Length or `Transfer-Encoding: chunked`, never both; exactly one Host; an
/// absolute-form target must name the Host. CONNECT is refused (405).
pub fn parse_request(
    head: &[u8],
    names: ProxyNames<'_>,
    forwarded: Forwarded,
    dst: &mut BytesMut,
) -> Result<IngressHead, IngressError> {
    let mut buf = [const { MaybeUninit::<Header<'_>>::uninit() }; MAX_INGRESS_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(head, &mut buf) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        Ok(_) => return Err(IngressError::BadRequest("incomplete request head")),
        Err(httparse::Error::TooManyHeaders) => return Err(IngressError::TooManyHeaders),
        Err(httparse::Error::Version) => return Err(IngressError::BadRequest("not HTTP/1.x")),
        Err(_) => return Err(IngressError::BadRequest("malformed request head")),
    }
    let method = req.method.unwrap_or_default();
    let target = req.path.unwrap_or_default();
    let http11 = req.version == Some(1);
    let headers: &[Header<'_>] = req.headers;

    let mut host: Option<&[u8]> = None;
    let mut close = false;
    let mut keep_alive_token = false;
    // A `Connection` token that names another header (RFC 9110 §7.6.1: not forwarded).
    let mut lists_headers = false;
    let mut upgrade: Option<&[u8]> = None;
    let mut expect_continue = false;
    for h in headers {
        let name = h.name.as_bytes();
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") && host.replace(h.value).is_some() => {
                return Err(IngressError::BadRequest("duplicate Host"));
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for token in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                    close |= token.eq_ignore_ascii_case(b"close");
                    keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
                    lists_headers |= !token.is_empty()
                        && !token.eq_ignore_ascii_case(b"close")
                        && !token.eq_ignore_ascii_case(b"keep-alive");
                }
            }
            7 if name.eq_ignore_ascii_case(b"upgrade") => {
                upgrade.get_or_insert(h.value.trim_ascii());
            }
            6 if name.eq_ignore_ascii_case(b"expect") => {
                expect_continue = h.value.eq_ignore_ascii_case(b"100-continue");
            }
            _ => {}
        }
    }
    let framing = framing::declared(headers)?;
    let keep_alive = if http11 {
        !close
    } else {
        keep_alive_token && !close
    };
    if method.eq_ignore_ascii_case("CONNECT") {
        return Err(IngressError::MethodNotAllowed(method.to_owned()));
    }
    let host = host.ok_or(IngressError::BadRequest("missing Host"))?;
    let host = host.trim_ascii();
    if host.is_empty() {
        return Err(IngressError::BadRequest("empty Host"));
    }
    // Absolute form (`GET http://bob/x`): relayed in origin form, and it must agree with Host
    // so that two readers cannot route it differently.
    let path = match absolute_form(target) {
        Some((authority, path)) => {
            if !authority.as_bytes().eq_ignore_ascii_case(host) {
                return Err(IngressError::BadRequest(
                    "absolute-form target names another host than Host",
                ));
            }
            path
        }
        None if target.starts_with('/') || target == "*" => target,
        None => return Err(IngressError::BadRequest("request target must be a path")),
    };
    let route = match route_host(host, names) {
        // An upgrade the proxy cannot route goes the registration's way, which names the error.
        Err(_) if upgrade.is_some() => return Ok(IngressHead::Upgrade),
        route => route?,
    };
    let address = match route {
        HostRoute::Proxy if upgrade.is_some() => return Ok(IngressHead::Upgrade),
        HostRoute::Proxy => {
            return Ok(IngressHead::Proxy(ProxyRequest {
                method: method.to_owned(),
                path: path.to_owned(),
                keep_alive,
                framing,
            }));
        }
        HostRoute::Endpoint(address) => address,
    };

    // An upgrade to an endpoint passes through (HTTP/1.1 only: HTTP/1.0 has no upgrades,
    // and its `Upgrade` is dropped as a hop-by-hop header). It must not carry a body: after
    // the switch the connection's bytes are the new protocol's.
    let upgrade = upgrade.filter(|_| http11);
    if upgrade.is_some() && framing != Framing::None {
        return Err(IngressError::BadRequest("an upgrade request with a body"));
    }
    if upgrade.is_some_and(|u| u.is_empty() || u.contains(&b',')) {
        return Err(IngressError::BadRequest(
            "an Upgrade must name exactly one protocol",
        ));
    }
    // Small bodies go whole; a chunked one (of unknown length) or a large one streams, and so
    // does an upgrade (the two byte streams it turns into, if the target switches).
    let streamed = upgrade.is_some()
        || match framing {
            Framing::None => false,
            Framing::Length(n) => n > MAX_WHOLE_BODY_BYTES,
            Framing::Chunked => true,
        };
    let start = dst.len();
    dst.reserve(head.len() + 128);
    dst.extend_from_slice(method.as_bytes());
    dst.extend_from_slice(b" ");
    dst.extend_from_slice(path.as_bytes());
    dst.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    let host_start = dst.len() - start;
    dst.extend_from_slice(address.as_str().as_bytes());
    let host_end = dst.len() - start;
    dst.extend_from_slice(b"\r\n");
    for h in headers {
        if dropped_on_ingress(h.name.as_bytes())
            || (lists_headers && listed_in_connection(headers, h.name.as_bytes()))
            // A stream's data messages carry the body decoded.
            || (streamed && h.name.eq_ignore_ascii_case("transfer-encoding"))
        {
            continue;
        }
        dst.extend_from_slice(h.name.as_bytes());
        dst.extend_from_slice(b": ");
        dst.extend_from_slice(h.value);
        dst.extend_from_slice(b"\r\n");
    }
    if let Some(protocol) = upgrade {
        dst.extend_from_slice(b"Connection: Upgrade\r\nUpgrade: ");
        dst.extend_from_slice(protocol);
        dst.extend_from_slice(b"\r\n");
    }
    dst.extend_from_slice(b"X-Forwarded-For: ");
    let mut ip = [0u8; 64];
    let ip = format_ip(forwarded.peer, &mut ip);
    dst.extend_from_slice(ip);
    dst.extend_from_slice(b"\r\nX-Forwarded-Host: ");
    dst.extend_from_slice(host);
    dst.extend_from_slice(if forwarded.tls {
        b"\r\nX-Forwarded-Proto: https\r\n"
    } else {
        b"\r\nX-Forwarded-Proto: http\r\n"
    });
    let stream_line = streamed.then(|| {
        let line_start = dst.len() - start;
        dst.extend_from_slice(STREAM_LINE);
        line_start as u32..(dst.len() - start) as u32
    });
    let cseq_start = dst.len() - start;
    dst.extend_from_slice(b"CSeq: 0\r\n");
    let cseq_end = dst.len() - start;
    dst.extend_from_slice(b"\r\n");
    let head_len = dst.len() - start;
    let relayed_framing = match framing {
        Framing::Chunked if streamed => Framing::None,
        other => other,
    };
    let info = HeadInfo::for_built_request(
        head_len,
        host_start as u32..host_end as u32,
        cseq_start as u32..cseq_end as u32,
        relayed_framing,
        stream_line,
    );
    Ok(IngressHead::Relay(RelayHead {
        target: address,
        info,
        framing,
        keep_alive,
        expect_continue,
        head_request: method == "HEAD",
        http11,
        streamed,
        upgrade: upgrade.is_some(),
    }))
}

/// `http://authority/path?q` → (`authority`, `/path?q`); `None` for any other form.
fn absolute_form(target: &str) -> Option<(&str, &str)> {
    let rest = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let path = &rest[end..];
    Some((&rest[..end], if path.is_empty() { "/" } else { path }))
}

/// Caller headers the target does not get: the ones the proxy sets itself (Host, CSeq,
/// Httpws-From, X-Forwarded-For/-Host/-Proto) in any spelling, with every other
/// `X-Forwarded-*` and `Forwarded` (a service behind the proxy must be able to trust all of
/// them), and those about the caller's connection to the proxy.
fn dropped_on_ingress(name: &[u8]) -> bool {
    hop::is_hop_by_hop(name)
        || header_name::is_stamped(name)
        || header_name::is_forwarding(name)
        || match name.len() {
            4 => name.eq_ignore_ascii_case(b"host"),
            6 => name.eq_ignore_ascii_case(b"expect"),
            19 => name.eq_ignore_ascii_case(b"proxy-authorization"),
            _ => false,
        }
}

/// Whether a `Connection` header lists `name`: the caller's options for its connection to the
/// proxy, not for the target. The framing headers stay whatever it lists: the body is relayed
/// as it came, so its length must go with it.
fn listed_in_connection(headers: &[Header<'_>], name: &[u8]) -> bool {
    !(name.eq_ignore_ascii_case(b"content-length")
        || name.eq_ignore_ascii_case(b"transfer-encoding"))
        && hop::connection_lists(headers, name)
}

/// Format an IP address into `buf` without allocating. IPv4, what nearly every caller has,
/// is written digit by digit: through `Display` it cost about 1,000 instructions, 7% of the
/// proxy's work per ingress request (bench/RESULTS.md).
fn format_ip(ip: IpAddr, buf: &mut [u8; 64]) -> &[u8] {
    match ip {
        IpAddr::V4(v4) => {
            let mut n = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[n] = b'.';
                    n += 1;
                }
                let mut digits = itoa::Buffer::new();
                let text = digits.format(octet).as_bytes();
                buf[n..n + text.len()].copy_from_slice(text);
                n += text.len();
            }
            &buf[..n]
        }
        IpAddr::V6(_) => {
            use std::io::Write;
            let mut cursor = std::io::Cursor::new(&mut buf[..]);
            // 64 bytes hold any IPv6 text form (at most 45 bytes).
            let _ = write!(cursor, "{ip}");
            let n = cursor.position() as usize;
            &buf[..n]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_ip_writes_what_display_writes() {
        let mut buf = [0u8; 64];
        let mut rng = fastrand::Rng::with_seed(7);
        let fixed = [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.100.9",
            "1.20.100.200",
            "::1",
            "2001:db8::8a2e:370:7334",
        ];
        let random = (0..1000).map(|_| std::net::Ipv4Addr::from(rng.u32(..)).to_string());
        for text in fixed.iter().map(|t| t.to_string()).chain(random) {
            let ip: IpAddr = text.parse().expect("ip");
            assert_eq!(format_ip(ip, &mut buf), ip.to_string().as_bytes(), "{text}");
        }
    }

    fn fwd() -> Forwarded {
        Forwarded {
            peer: "203.0.113.7".parse().expect("ip"),
            tls: false,
        }
    }

    const DOMAINS: &[String] = &[];

    fn domains() -> Vec<String> {
        vec!["tunnel.example.com".into()]
    }

    fn names(domains: &[String]) -> ProxyNames<'_> {
        ProxyNames {
            domains,
            public_names: DOMAINS,
        }
    }

    fn relay(head: &[u8]) -> (RelayHead, Vec<u8>) {
        let mut dst = BytesMut::from(&b"arena-prefix"[..]);
        match parse_request(head, names(&domains()), fwd(), &mut dst) {
            Ok(IngressHead::Relay(r)) => (r, dst[12..].to_vec()),
            other => panic!("not relayed: {other:?}"),
        }
    }

    #[test]
    fn routes_hosts() {
        let d = domains();
        let ep = |s: &str| match route_host(s.as_bytes(), names(&d)) {
            Ok(HostRoute::Endpoint(a)) => a.as_str().to_owned(),
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(ep("bob"), "bob");
        assert_eq!(ep("Bob:8080"), "bob");
        assert_eq!(ep("bob.Tunnel.Example.com"), "bob");
        assert_eq!(ep("a.b.tunnel.example.com:80"), "a.b");
        assert_eq!(ep("bob.other.example"), "bob.other.example");
        for proxy in [
            "127.0.0.1:8080",
            "localhost",
            "[::1]:80",
            "tunnel.example.com",
        ] {
            assert!(
                matches!(
                    route_host(proxy.as_bytes(), names(&d)),
                    Ok(HostRoute::Proxy)
                ),
                "{proxy}"
            );
        }
        assert!(matches!(
            route_host(b"-x-.tunnel.example.com", names(&d)),
            Err(IngressError::BadHost(_))
        ));
        assert!(matches!(
            route_host(b"bad_name", names(&d)),
            Err(IngressError::BadHost(_))
        ));
    }

    #[test]
    fn a_host_port_must_be_a_port_whichever_way_it_routes() {
        let d = domains();
        for bad in [
            "wiki.tunnel.example.com:@evil.example",
            "wiki.tunnel.example.com:80x",
            "wiki.tunnel.example.com:65536",
            "wiki.tunnel.example.com:",
            "wiki:8080:80",
            "tunnel.example.com:abc",
            "localhost:@evil",
            "127.0.0.1:99999",
            "[::1]x",
            "[::1]:x",
            "[zz]:80",
            "[::1",
        ] {
            assert!(
                matches!(
                    route_host(bad.as_bytes(), names(&d)),
                    Err(IngressError::BadHost(_))
                ),
                "{bad}: {:?}",
                route_host(bad.as_bytes(), names(&d))
            );
        }
        assert!(matches!(
            route_host(b"wiki.tunnel.example.com:65535", names(&d)),
            Ok(HostRoute::Endpoint(_))
        ));
        // Refused before anything is written: nothing malformed reaches X-Forwarded-Host.
        let mut dst = BytesMut::new();
        let head = b"GET / HTTP/1.1\r\nHost: wiki.tunnel.example.com:@evil.example\r\n\r\n";
        assert!(matches!(
            parse_request(head, names(&d), fwd(), &mut dst),
            Err(IngressError::BadHost(_))
        ));
        assert!(dst.is_empty());
    }

    #[test]
    fn every_forwarding_header_and_every_twin_of_a_stamped_one_is_dropped() {
        let head = b"GET / HTTP/1.1\r\nHost: bob\r\nX-Forwarded-Port: 1\r\n\
            X-Forwarded-Prefix: /admin\r\nX-Forwarded-Ssl: on\r\nX-Forwarded-Server: x\r\n\
            X_Forwarded_For: 10.0.0.1\r\nx-forwarded-host: evil\r\nForwarded: for=1.2.3.4\r\n\
            Httpws_From: admin\r\nHTTPWS-FROM: admin\r\nhttpws_error: forged\r\n\
            Httpws-Target-Error: x\r\nC-Seq: 5\r\nCSEQ: 5\r\nX-Kept: yes\r\n\r\n";
        let (_, out) = relay(head);
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(
            text,
            "GET / HTTP/1.1\r\nHost: bob\r\nC-Seq: 5\r\nX-Kept: yes\r\n\
             X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Host: bob\r\n\
             X-Forwarded-Proto: http\r\nCSeq: 0\r\n\r\n"
        );
    }

    #[test]
    fn writes_the_relayed_head() {
        let head =
            b"POST /x?y=1 HTTP/1.1\r\nHost: svc.tunnel.example.com\r\nConnection: keep-alive\r\n\
            Content-Length: 5\r\nCSeq: 99\r\nHttpws-From: alice\r\nX-Forwarded-For: 1.2.3.4\r\n\
            Accept: */*\r\n\r\n";
        let (r, out) = relay(head);
        assert_eq!(r.target.as_str(), "svc");
        assert!(r.keep_alive);
        assert_eq!(r.framing, Framing::Length(5));
        let text = String::from_utf8(out.clone()).expect("utf-8");
        assert_eq!(
            text,
            "POST /x?y=1 HTTP/1.1\r\nHost: svc\r\nContent-Length: 5\r\nAccept: */*\r\n\
             X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Host: svc.tunnel.example.com\r\n\
             X-Forwarded-Proto: http\r\nCSeq: 0\r\n\r\n"
        );
        // The description matches what a full inspection of the same head finds.
        assert_eq!(r.info.head_len, out.len());
        assert_eq!(r.info.host(&out), Some(&b"svc"[..]));
        let mut msg = out.clone();
        msg.extend_from_slice(b"hello");
        let inspected = head::inspect(&msg, &head::HeadLimits::default()).expect("valid");
        let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
        head::write_head(&mut a, &out, &r.info, 7, Some(INTERNET_CALLER));
        head::write_head(&mut b, &msg, &inspected, 7, Some(INTERNET_CALLER));
        assert_eq!(a, b);
        assert!(String::from_utf8_lossy(&a).contains("Httpws-From: -internet-\r\n"));
    }

    #[test]
    fn chunked_and_large_bodies_make_stream_heads() {
        // Chunked: a stream head without Transfer-Encoding, described as inspection finds it.
        let (r, out) = relay(
            b"POST /up HTTP/1.1\r\nHost: bob\r\nTransfer-Encoding: chunked\r\n\
              Httpws-Stream: body\r\nX-Keep: 1\r\n\r\n",
        );
        assert!(r.streamed);
        assert_eq!(
            r.framing,
            Framing::Chunked,
            "the caller's framing, to decode"
        );
        let text = String::from_utf8(out.clone()).expect("utf-8");
        assert!(!text.contains("Transfer-Encoding"), "{text}");
        assert_eq!(text.matches("Httpws-Stream: body\r\n").count(), 1, "{text}");
        assert!(
            text.ends_with("Httpws-Stream: body\r\nCSeq: 0\r\n\r\n"),
            "{text}"
        );
        let inspected = head::inspect(&out, &head::HeadLimits::default()).expect("valid");
        assert!(inspected.stream && r.info.stream);
        assert_eq!(inspected.framing, Framing::None);
        assert_eq!(r.info.framing, Framing::None);
        let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
        head::write_head(&mut a, &out, &r.info, 7, Some(INTERNET_CALLER));
        head::write_head(&mut b, &out, &inspected, 7, Some(INTERNET_CALLER));
        assert_eq!(a, b);

        // Over a window by its length: a stream head that keeps its length.
        let over = MAX_WHOLE_BODY_BYTES + 1;
        let (r, out) = relay(
            format!("PUT /f HTTP/1.1\r\nHost: bob\r\nContent-Length: {over}\r\n\r\n").as_bytes(),
        );
        assert!(r.streamed && r.info.stream);
        assert_eq!(r.info.framing, Framing::Length(over));
        let text = String::from_utf8(out).expect("utf-8");
        assert!(
            text.contains(&format!("Content-Length: {over}\r\n")),
            "{text}"
        );
        assert!(text.contains("Httpws-Stream: body\r\n"), "{text}");

        // A window's worth or less goes whole, and a caller's own Httpws-Stream is dropped.
        let (r, out) = relay(
            format!(
                "PUT /f HTTP/1.1\r\nHost: bob\r\nContent-Length: {MAX_WHOLE_BODY_BYTES}\r\n\
                 httpws-stream: body\r\n\r\n"
            )
            .as_bytes(),
        );
        assert!(!r.streamed && !r.info.stream);
        let text = String::from_utf8(out).expect("utf-8");
        assert!(
            !text.to_ascii_lowercase().contains("httpws-stream"),
            "{text}"
        );
    }

    #[test]
    fn upgrades_to_endpoints_pass_through_and_to_the_proxy_register() {
        let d = domains();
        let head = |host: &str| {
            format!(
                "GET /chat HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n\
                 Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: k\r\n\
                 Sec-WebSocket-Version: 13\r\n\r\n"
            )
        };
        for (host, endpoint) in [
            // A bare name registers: the proxy may be reached by a name that is an address.
            ("bob", false),
            ("bob.tunnel.example.com:8080", true),
            ("BOB.Tunnel.Example.COM", true),
            ("bad_name.tunnel.example.com", false),
            ("127.0.0.1:9000", false),
            ("localhost", false),
            ("tunnel.example.com", false),
            ("not a host", false),
        ] {
            assert_eq!(
                upgrade_names_endpoint(head(host).as_bytes(), names(&d)),
                endpoint,
                "{host}"
            );
        }
        let (r, out) = relay(head("bob").as_bytes());
        assert!(r.upgrade && r.streamed && r.info.stream);
        let text = String::from_utf8(out).expect("utf-8");
        assert!(
            text.contains("\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nSec-WebSocket-Key: k\r\n"), "{text}");
        assert_eq!(text.matches("Connection:").count(), 1, "{text}");
        assert!(text.contains("Httpws-Stream: body\r\n"), "{text}");
        // To the proxy itself: the registration's.
        let mut dst = BytesMut::new();
        let parsed = parse_request(head("127.0.0.1").as_bytes(), names(&d), fwd(), &mut dst);
        assert!(matches!(parsed, Ok(IngressHead::Upgrade)), "{parsed:?}");
        // HTTP/1.0 has no upgrades: the header is dropped and the request relayed as it is.
        let (r, out) = relay(b"GET / HTTP/1.0\r\nHost: bob\r\nUpgrade: websocket\r\n\r\n");
        assert!(!r.upgrade && !r.streamed);
        assert!(!String::from_utf8_lossy(&out).contains("Upgrade"));
    }

    #[test]
    fn headers_listed_in_connection_stay_here() {
        let (r, out) = relay(
            b"POST / HTTP/1.1\r\nHost: bob\r\nConnection: keep-alive, X-Hop, Content-Length\r\n\
              X-Hop: secret\r\nX-Keep: 1\r\nContent-Length: 2\r\n\r\n",
        );
        let text = String::from_utf8(out).expect("utf-8");
        assert!(!text.contains("X-Hop"), "{text}");
        assert!(text.contains("X-Keep: 1\r\n"), "{text}");
        // Framing is never dropped: the body goes as it came.
        assert!(text.contains("Content-Length: 2\r\n"), "{text}");
        assert!(r.keep_alive);
    }

    #[test]
    fn absolute_form_and_keep_alive_rules() {
        let (_, out) = relay(b"GET http://bob/a/b HTTP/1.1\r\nHost: bob\r\n\r\n");
        assert!(out.starts_with(b"GET /a/b HTTP/1.1\r\nHost: bob\r\n"));
        let (r, _) = relay(b"GET / HTTP/1.0\r\nHost: bob\r\n\r\n");
        assert!(!r.keep_alive);
        let (r, _) = relay(b"GET / HTTP/1.0\r\nHost: bob\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(r.keep_alive);
        let (r, _) = relay(b"HEAD / HTTP/1.1\r\nHost: bob\r\nConnection: close\r\n\r\n");
        assert!(!r.keep_alive && r.head_request);
        let (r, _) = relay(
            b"PUT / HTTP/1.1\r\nHost: bob\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
        );
        assert!(r.expect_continue);
    }

    #[test]
    fn refusals() {
        let err = |head: &[u8]| {
            let mut dst = BytesMut::new();
            parse_request(head, names(&domains()), fwd(), &mut dst).expect_err("refused")
        };
        assert_eq!(err(b"GET / HTTP/1.1\r\n\r\n").status(), 400);
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").status(),
            400
        );
        assert_eq!(
            err(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")
                .status(),
            400
        );
        assert_eq!(
            err(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n")
                .status(),
            400
        );
        assert_eq!(
            err(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n").status(),
            400
        );
        assert_eq!(
            err(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n").status(),
            501
        );
        assert_eq!(
            err(b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n").status(),
            405
        );
        assert_eq!(
            err(b"GET http://b/ HTTP/1.1\r\nHost: a\r\n\r\n").status(),
            400
        );
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: bad_name\r\n\r\n").status(),
            400
        );
        let mut dst = BytesMut::new();
        // An upgrade to the proxy itself is the registration's; to an endpoint it relays.
        let upgrade = b"GET /bob HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\r\n";
        assert!(matches!(
            parse_request(upgrade, names(&domains()), fwd(), &mut dst),
            Ok(IngressHead::Upgrade)
        ));
        let upgrade = b"GET /bob HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n";
        assert!(matches!(
            parse_request(upgrade, names(&domains()), fwd(), &mut BytesMut::new()),
            Ok(IngressHead::Relay(RelayHead { upgrade: true, .. }))
        ));
        let with_body =
            b"POST /bob HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nContent-Length: 1\r\n\r\n";
        assert_eq!(err(with_body).status(), 400);
        let two = b"GET /bob HTTP/1.1\r\nHost: a\r\nUpgrade: h2c, websocket\r\n\r\n";
        assert_eq!(err(two).status(), 400);
        let own = b"GET /httpws.js HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n";
        assert!(matches!(
            parse_request(own, names(&domains()), fwd(), &mut dst),
            Ok(IngressHead::Proxy(ProxyRequest { ref path, .. })) if path == "/httpws.js"
        ));
        assert!(
            dst.is_empty(),
            "nothing written for requests that are not relayed"
        );
    }
}
