//! Registration handshakes written by hand over raw TCP, and their responses read as text:
//! for requests a WebSocket library would not send and refusals it would not show.

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};

use super::IO_TIMEOUT;

/// The upgrade headers of a valid handshake (RFC 6455's sample key), before its version.
pub const UPGRADE_HEADERS: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\n\
                                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

/// A TCP connection with the harness's timeouts, for writing a handshake by hand.
pub fn raw_stream(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("tcp connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

/// Read a response head (up to the blank line), or what came before the connection ended.
pub fn read_response_head(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while !out.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => out.push(byte[0]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => panic!(
                "reading the handshake response failed after {:?}: {e}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Read until the peer ends the connection (EOF or reset); panics if it stays open.
#[track_caller]
pub fn assert_ends(stream: &mut TcpStream) -> Vec<u8> {
    let mut rest = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return rest,
            Ok(n) => rest.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the proxy left the connection open (read {rest:?})")
            }
            Err(_) => return rest, // reset: ended
        }
    }
}

/// The status of a response head; panics if it is no HTTP/1.1 status line.
pub fn status_of(head: &str) -> u16 {
    let line = head.lines().next().unwrap_or_default();
    assert!(line.starts_with("HTTP/1.1 "), "not a status line: {head:?}");
    line.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"))
}

/// The values of every `name` field of a response head (name compared case-insensitively).
pub fn header_values<'h>(head: &'h str, name: &str) -> Vec<&'h str> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}
