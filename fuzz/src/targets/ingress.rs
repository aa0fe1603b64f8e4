//! Public ingress target: an internet caller's bytes as the proxy's ingress reads them. The
//! head is found with the head scanner, checked and rewritten by `ingress::parse_request`, and
//! a chunked body is delimited by `ChunkedScanner`. Properties: a relayed head is a valid
//! httpws request that `head::inspect` reads back to the same Host, framing and rewrite as the
//! description `parse_request` built without parsing it again; the chunked scanner gives the
//! same end whole and read by read, and what it accepts the relay's whole-message check
//! (`head::inspect` on the relayed message) accepts too.

use std::net::{IpAddr, Ipv4Addr};

use bytes::BytesMut;
use httpws::proto::chunked::ChunkedScanner;
use httpws::proto::head::{self, BodyFraming, HeadLimits};
use httpws::proto::head_scanner::HeadScanner;
use httpws::proto::ingress::{self, Forwarded, INTERNET_CALLER, IngressHead, MAX_INGRESS_HEADERS};

use super::input::{Params, Splitter};

const DOMAINS: [&str; 2] = ["tunnel.example.com", "example.test"];

pub fn ingress(data: &[u8]) {
    let mut params = Params::new(data);
    let split = params.byte();
    let tls = params.byte() & 1 == 1;
    let input = params.rest();
    let domains: Vec<String> = DOMAINS.iter().map(|d| (*d).to_owned()).collect();
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
    let parsed = ingress::parse_request(&input[..head_end], &domains, forwarded, &mut dst);
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
    assert_eq!(
        relay.info.host(built),
        Some(relay.target.as_str().as_bytes()),
        "Host is the routed address"
    );
    let body = &input[head_end..];
    let body_len = match relay.framing {
        BodyFraming::None => 0,
        BodyFraming::Length(n) => match usize::try_from(n) {
            Ok(n) if n <= body.len() => n,
            _ => return,
        },
        BodyFraming::Chunked => {
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
