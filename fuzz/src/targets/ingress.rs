//! Public ingress target: an internet caller's bytes as the proxy's ingress reads them. The
//! head is found with the head scanner, checked and rewritten by `public_request::parse_request`, and
//! a chunked body is delimited by `ChunkedScanner`. Properties: a relayed head is a valid
//! httpws request that `head::inspect` reads back to the same Host, framing, stream flag and
//! rewrite as the description `parse_request` built without parsing it again; the chunked
//! scanner gives the same end whole and read by read, and the same data split off piece by
//! piece (`take_data`, as a streamed upload sends it) as a whole decode; what it accepts the
//! relay's whole-message check (`head::inspect` on the relayed message) accepts too.

use std::net::{IpAddr, Ipv4Addr};

use bytes::BytesMut;
use httpws::proto::head::{self, HeadLimits};
use httpws::proto::http1::chunked::{ChunkedDecoder, ChunkedPiece, ChunkedScanner};
use httpws::proto::http1::framing::Framing;
use httpws::proto::http1::head_scanner::HeadScanner;
use httpws::proto::http1::header_name;
use httpws::proto::public_request::{
    self, Forwarded, HostRoute, INTERNET_CALLER, IngressHead, MAX_INGRESS_HEADERS, ProxyNames,
};

use super::input::{Params, Splitter};

const DOMAINS: [&str; 2] = ["tunnel.example.com", "example.test"];
const PUBLIC_NAMES: [&str; 1] = ["relay.example.net"];

pub fn ingress(data: &[u8]) {
    let mut params = Params::new(data);
    let split = params.byte();
    let tls = params.byte() & 1 == 1;
    let input = params.rest();
    let domains: Vec<String> = DOMAINS.iter().map(|d| (*d).to_owned()).collect();
    let public_names: Vec<String> = PUBLIC_NAMES.iter().map(|d| (*d).to_owned()).collect();
    let names = ProxyNames {
        domains: &domains,
        public_names: &public_names,
    };
    let Ok(Some(head_end)) =
        HeadScanner::new(head::DEFAULT_MAX_HEAD_BYTES, MAX_INGRESS_HEADERS).scan(input)
    else {
        return;
    };
    let forwarded = Forwarded {
        peer: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)),
        tls,
    };
    let mut dst = BytesMut::from(&b"arena"[..]);
    let parsed = public_request::parse_request(&input[..head_end], names, forwarded, &mut dst);
    let relay = match parsed {
        Ok(IngressHead::Relay(relay)) => relay,
        Ok(_) | Err(_) => {
            assert_eq!(
                &dst[..],
                b"arena",
                "nothing written for a request that is not relayed"
            );
            return;
        }
    };
    let built = &dst[5..];
    assert_eq!(relay.info.head_len, built.len());
    assert!(built.ends_with(b"CSeq: 0\r\n\r\n"));
    headers_stamped_once(built, names);
    assert_eq!(
        relay.info.host(built),
        Some(relay.target.as_str().as_bytes()),
        "Host is the routed address"
    );
    let body = &input[head_end..];
    if relay.framing == Framing::Chunked {
        chunked_data_agrees(body, split);
    }
    if relay.streamed {
        // A stream head: no body in the message, its data follows as stream messages.
        let limits = HeadLimits {
            max_head_bytes: usize::MAX,
            max_headers: 1024,
        };
        let inspected = head::inspect(built, &limits)
            .unwrap_or_else(|e| panic!("stream head refused by the relay: {e}"));
        assert!(inspected.stream && relay.info.stream);
        assert_eq!(inspected.framing, relay.info.framing);
        assert!(relay.framing == Framing::Chunked || inspected.framing == relay.framing);
        let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
        head::write_head(&mut a, built, &relay.info, 9, Some(INTERNET_CALLER));
        head::write_head(&mut b, built, &inspected, 9, Some(INTERNET_CALLER));
        assert_eq!(a, b, "the built description rewrites like a parsed one");
        return;
    }
    assert!(!relay.info.stream);
    let body_len = match relay.framing {
        Framing::None => 0,
        Framing::Length(n) => match usize::try_from(n) {
            Ok(n) if n <= body.len() => n,
            _ => return,
        },
        Framing::Chunked => {
            let whole = ChunkedScanner::new().scan(body);
            let mut scanner = ChunkedScanner::new();
            let mut splitter = Splitter::new(split);
            let mut seen = 0;
            let piecewise = loop {
                seen += splitter.next_len(body.len() - seen);
                match scanner.scan(&body[..seen]) {
                    Ok(None) if seen < body.len() => continue,
                    other => break other,
                }
            };
            assert_eq!(whole, piecewise, "chunked end whole vs read by read");
            match whole {
                Ok(Some(n)) => n,
                _ => return,
            }
        }
    };
    // The relayed message as the target's shard sees it: a valid request, read the same way.
    let mut message = built.to_vec();
    message.extend_from_slice(&body[..body_len]);
    let limits = HeadLimits {
        max_head_bytes: usize::MAX,
        max_headers: 1024,
    };
    let inspected = head::inspect(&message, &limits)
        .unwrap_or_else(|e| panic!("relayed request refused by the relay: {e}"));
    assert_eq!(inspected.head_len, relay.info.head_len);
    assert_eq!(inspected.framing, relay.framing);
    assert_eq!(inspected.host(&message), relay.info.host(built));
    let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
    head::write_head(&mut a, built, &relay.info, 9, Some(INTERNET_CALLER));
    head::write_head(&mut b, &message, &inspected, 9, Some(INTERNET_CALLER));
    assert_eq!(a, b, "the built description rewrites like a parsed one");
}

/// The data `take_data` splits off a chunked body, read in pieces of the fuzzed sizes and
/// taken at most a few bytes at a time, is what a whole decode finds, ending at the same place.
fn chunked_data_agrees(body: &[u8], split: u8) {
    let mut whole = BytesMut::new();
    let mut src = BytesMut::from(body);
    let decoded = ChunkedDecoder::default().decode(&mut src, &mut whole, usize::MAX);
    let mut scanner = ChunkedScanner::new();
    let mut splitter = Splitter::new(split);
    let max = usize::from(split % 7) + 1;
    let (mut pending, mut fed, mut data) = (BytesMut::new(), 0, Vec::new());
    let ended = loop {
        match scanner.take_data(&mut pending, max) {
            Ok(ChunkedPiece::Data(piece)) => data.extend_from_slice(&piece),
            Ok(ChunkedPiece::More) if fed < body.len() => {
                let n = splitter.next_len(body.len() - fed);
                pending.extend_from_slice(&body[fed..fed + n]);
                fed += n;
            }
            Ok(ChunkedPiece::More) => break Ok(false),
            Ok(ChunkedPiece::End) => break Ok(true),
            Err(e) => break Err(e),
        }
    };
    match (decoded, ended) {
        (Ok(true), Ok(true)) => {
            assert_eq!(&data[..], &whole[..], "the same data piece by piece");
            assert_eq!(
                pending.len() + (body.len() - fed),
                src.len(),
                "the same end"
            );
        }
        (Ok(false), Ok(false)) => assert_eq!(&data[..], &whole[..]),
        (Err(_), Err(_)) => {}
        (d, t) => panic!("whole decode {d:?} but piece by piece {t:?}"),
    }
}

/// The relayed head carries the proxy's stamps and nothing that could pass for them: the only
/// forwarding headers are the three the proxy wrote (just before its CSeq line), no line is a
/// twin of a stamped header but that CSeq, and the `X-Forwarded-Host` it copied is a `Host`
/// that routes to the same endpoint.
fn headers_stamped_once(built: &[u8], names: ProxyNames<'_>) {
    let lines: Vec<&[u8]> = built
        .split(|&b| b == b'\n')
        .skip(1)
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .take_while(|l| !l.is_empty())
        .collect();
    let n = lines.len();
    assert!(n >= 5, "Host, the three X-Forwarded lines and CSeq");
    // A stream head has the proxy's `Httpws-Stream` line just before its CSeq.
    let stream = usize::from(lines[n - 2] == b"Httpws-Stream: body");
    for (i, line) in lines.iter().enumerate() {
        let colon = line.iter().position(|&b| b == b':').expect("a header line");
        let name = &line[..colon];
        if header_name::is_forwarding(name) {
            assert!(
                (n - 4 - stream..n - 1 - stream).contains(&i),
                "caller forwarding header relayed: {line:?}"
            );
        }
        if header_name::is_stamped(name) {
            assert!(
                i == n - 1 || (stream == 1 && i == n - 2),
                "caller twin of a stamped header relayed: {line:?}"
            );
        }
    }
    let forwarded_host = lines[n - 3 - stream]
        .strip_prefix(b"X-Forwarded-Host: ")
        .expect("X-Forwarded-Host written third from the end");
    let routed = lines[0]
        .strip_prefix(b"Host: ")
        .expect("Host written first");
    match public_request::route_host(forwarded_host, names) {
        Ok(HostRoute::Endpoint(address)) => assert_eq!(address.as_str().as_bytes(), routed),
        other => panic!("X-Forwarded-Host {forwarded_host:?} does not route back: {other:?}"),
    }
}
