//! Handshake target: the proxy's `parse_upgrade` and the agent's `parse_response` over
//! arbitrary bytes, once whole and once re-called as the bytes accumulate read by read (as the
//! proxy's `read_handshake` does); both ways must give the same answer. Accepted upgrades are
//! checked against the limits and round-trip through `client_request`; refusals must be
//! well-formed HTTP answers that the client side reads back as refusals.

use bytes::BytesMut;
use httpws::proto::address::VirtualAddress;
use httpws::proto::handshake::{
    self, ClientHandshakeError, HandshakeError, UpgradeRequest, parse_response, parse_upgrade,
};

use super::input::{Params, Splitter};

/// `max_head_bytes` values: tiny ones put the limit inside the request line.
const MAX_HEAD: [usize; 8] = [0, 1, 16, 128, 512, 1024, 4096, 16 * 1024];
/// The RFC 6455 sample key; its accept value is `s3pPLMBiTxaQ9kYGzzhZRbK+xOo=`.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Input: a byte picking `max_head_bytes`, a read-size seed, then the bytes the peer sent.
pub fn handshake(data: &[u8]) {
    let mut params = Params::new(data);
    let max = params.pick(&MAX_HEAD);
    let seed = params.byte();
    let input = params.rest();
    server_side(input, max, seed);
    client_side(input, max, seed);
}

/// What a `parse_upgrade` answer says, comparable (`UpgradeRequest` is not `PartialEq`).
type UpgradeSummary = Result<
    Option<(
        usize,
        Option<String>,
        Option<String>,
        String,
        Option<String>,
    )>,
    HandshakeError,
>;

fn summary(r: &Result<Option<(UpgradeRequest, usize)>, HandshakeError>) -> UpgradeSummary {
    match r {
        Ok(Some((req, n))) => Ok(Some((
            *n,
            req.address.as_ref().map(|a| a.as_str().to_owned()),
            req.token.as_ref().map(|t| t.as_str().to_owned()),
            req.accept_key.clone(),
            req.origin.clone(),
        ))),
        Ok(None) => Ok(None),
        Err(e) => Err(e.clone()),
    }
}

/// Re-parse as the bytes arrive until the answer is not "read more", or the input ends.
fn accumulate<T>(input: &[u8], seed: u8, mut parse: impl FnMut(&[u8]) -> Option<T>) -> T {
    let mut split = Splitter::new(seed);
    let mut buf = BytesMut::new();
    let mut rest = input;
    loop {
        let answer = parse(&buf);
        match answer {
            Some(done) => return done,
            None => {
                let n = split.next_len(rest.len());
                buf.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
            }
        }
    }
}

fn server_side(input: &[u8], max: usize, seed: u8) {
    let whole = parse_upgrade(input, max);
    let incremental = accumulate(input, seed, |buf| {
        let r = parse_upgrade(buf, max);
        // Stop at an answer, or at "read more" once everything has been read.
        (!matches!(r, Ok(None)) || buf.len() >= input.len()).then_some(r)
    });
    assert_eq!(
        summary(&whole),
        summary(&incremental),
        "parse_upgrade depends on how the head was split"
    );

    match whole {
        Ok(None) => assert!(input.len() <= max, "waits for more past the limit"),
        Ok(Some((req, head_len))) => accepted(input, max, &req, head_len),
        Err(e) => refused(&e),
    }
}

fn accepted(input: &[u8], max: usize, req: &UpgradeRequest, head_len: usize) {
    assert!(head_len <= input.len() && head_len <= max);
    assert!(input[..head_len].ends_with(b"\n"));
    assert_eq!(req.accept_key.len(), 28, "base64 of a SHA-1");
    if let Some(token) = &req.token {
        let t = token.as_str();
        assert!(!t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()));
    }
    if let Some(address) = &req.address {
        let again = VirtualAddress::parse(address.as_str().as_bytes());
        assert_eq!(again.as_ref().ok(), Some(address), "address is canonical");
    }
    // The agent's own request for the same address and token is accepted the same way.
    let path = req
        .address
        .as_ref()
        .map_or_else(String::new, |a| format!("/{}", a.as_str()));
    let ours = handshake::client_request("relay.example", &path, KEY, req.token.as_ref());
    match parse_upgrade(ours.as_bytes(), usize::MAX) {
        Ok(Some((back, n))) => {
            assert_eq!(n, ours.len());
            assert_eq!(back.address, req.address);
            assert_eq!(back.token, req.token);
            assert_eq!(back.accept_key, handshake::accept_key(KEY.as_bytes()));
        }
        other => panic!("our own request refused: {other:?}"),
    }
}

fn refused(e: &HandshakeError) {
    let status = e.status();
    assert!(matches!(status, 400 | 426 | 431), "{e:?}");
    // The refusal is an HTTP answer the client side reads as exactly that refusal.
    let response = e.response();
    match parse_response(&response, KEY, usize::MAX) {
        Err(ClientHandshakeError::Refused { status: s, .. }) => assert_eq!(s, status),
        other => panic!("refusal {e:?} reads back as {other:?}"),
    }
}

fn client_side(input: &[u8], max: usize, seed: u8) {
    let whole = parse_response(input, KEY, max);
    let incremental = accumulate(input, seed, |buf| {
        let r = parse_response(buf, KEY, max);
        (!matches!(r, Ok(None)) || buf.len() >= input.len()).then_some(r)
    });
    assert_eq!(
        whole, incremental,
        "parse_response depends on how the head was split"
    );
    match whole {
        Ok(None) => assert!(input.len() <= max, "waits for more past the limit"),
        Ok(Some(head_len)) => {
            assert!(head_len <= input.len() && head_len <= max);
            assert!(input[..head_len].ends_with(b"\n"));
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}
