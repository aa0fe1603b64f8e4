//! Protocol 2 by hand (docs/protocol.md §12): tungstenite endpoints that negotiate
//! `httpws.2`, and the stream messages written and read as bytes, independently of the
//! project's own codec.

use super::proxy::{Proxy, name_on_shard};
use super::ws::{Endpoint, connect_with};
use tungstenite::Message;

/// Register `name` speaking protocol 2; the 101 must say so.
pub fn connect_v2(proxy: &Proxy, name: &str) -> Endpoint {
    connect_with(
        proxy,
        &format!("/{name}"),
        &[("Sec-WebSocket-Protocol", "httpws.2")],
    )
    .unwrap_or_else(|s| panic!("registration of {name} refused: {s}"))
}

/// Two protocol-2 endpoints on different shards (so every stream crosses shards).
pub fn pair(proxy: &Proxy, caller: &str, target: &str) -> (Endpoint, Endpoint, String) {
    let caller = connect_v2(proxy, &name_on_shard(caller, 0, 2));
    let target_name = name_on_shard(target, 1, 2);
    let target = connect_v2(proxy, &target_name);
    (caller, target, target_name)
}

pub fn send(ep: &mut Endpoint, bytes: impl Into<Vec<u8>>) {
    ep.ws
        .send(Message::binary(bytes.into()))
        .expect("send a message");
}

/// The next data message (text or binary), as bytes.
pub fn recv(ep: &mut Endpoint) -> Vec<u8> {
    loop {
        match ep.ws.read().expect("read a message") {
            Message::Binary(b) => return b.to_vec(),
            Message::Text(t) => return t.as_bytes().to_vec(),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            other => panic!("{}: expected a data message, got {other:?}", ep.address),
        }
    }
}

/// A stream message: its tag line's verb, direction mark, CSeq and argument; its payload.
#[derive(Debug, PartialEq, Eq)]
pub struct Tagged {
    pub verb: String,
    pub dir: char,
    pub cseq: u64,
    pub arg: Option<String>,
    pub payload: Vec<u8>,
}

pub fn tagged(message: &[u8]) -> Tagged {
    assert_eq!(
        message.first(),
        Some(&b'~'),
        "not a stream message: {message:?}"
    );
    let lf = message
        .iter()
        .position(|&b| b == b'\n')
        .expect("a tag line");
    let line = std::str::from_utf8(&message[1..lf]).expect("ASCII tag line");
    let mut fields = line.split(' ');
    let verb = fields.next().expect("verb").to_owned();
    let tag = fields.next().expect("cseq");
    let arg = fields.next().map(str::to_owned);
    let dir = tag.chars().next().expect("direction");
    Tagged {
        verb,
        dir,
        cseq: tag[1..].parse().expect("decimal CSeq"),
        arg,
        payload: message[lf + 1..].to_vec(),
    }
}

pub fn recv_tagged(ep: &mut Endpoint) -> Tagged {
    tagged(&recv(ep))
}

pub fn tag(verb: &str, dir: char, cseq: u64, arg: Option<&str>) -> Vec<u8> {
    match arg {
        Some(arg) => format!("~{verb} {dir}{cseq} {arg}\n"),
        None => format!("~{verb} {dir}{cseq}\n"),
    }
    .into_bytes()
}

pub fn data(dir: char, cseq: u64, payload: &[u8]) -> Vec<u8> {
    let mut message = tag("data", dir, cseq, None);
    message.extend_from_slice(payload);
    message
}

/// The head of a message (as text) and the value of its CSeq.
pub fn head_of(message: &[u8]) -> (String, u64) {
    let text = String::from_utf8_lossy(message).into_owned();
    let head = text.split("\r\n\r\n").next().unwrap_or_default().to_owned();
    let cseq = head
        .lines()
        .find_map(|l| l.strip_prefix("CSeq: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no CSeq in {head:?}"));
    (head, cseq)
}
