//! Which httpws protocol a tunnel speaks: the endpoint offers protocol 2 in its opening
//! handshake (`Sec-WebSocket-Protocol: httpws.2`, docs/protocol.md §12) and speaks it only
//! when the proxy's `101` names it. A proxy that names no subprotocol predates streams: the
//! tunnel then speaks protocol 1, whole messages only, as before.

use std::borrow::Cow;

use crate::proto::handshake::{ClientHandshakeError, PROTOCOL_2, Protocol};

/// The header that offers, and in the `101` names, the subprotocol (RFC 6455 §4.1).
const PROTOCOL_HEADER: &str = "Sec-WebSocket-Protocol";

/// Add the offer of protocol 2 to an opening request written by
/// [`client_request`](crate::proto::handshake::client_request) (which ends in a blank line).
pub(super) fn offer(request: &mut String) {
    let at = request.len().saturating_sub(2);
    request.insert_str(at, &format!("{PROTOCOL_HEADER}: {PROTOCOL_2}\r\n"));
}

/// The protocol the answer `head` chose, and the head as
/// [`parse_response`](crate::proto::handshake::parse_response) should check it: without the
/// `Sec-WebSocket-Protocol` line naming `httpws.2`, since that parser knows of no offer and
/// refuses any subprotocol. A `101` naming anything else (or naming it twice) chose what we
/// did not offer, which RFC 6455 §4.1 says fails the connection.
pub(super) fn chosen(head: &[u8]) -> Result<(Protocol, Cow<'_, [u8]>), ClientHandshakeError> {
    let mut found: Option<(usize, usize)> = None;
    let mut start = 0;
    while let Some(lf) = head[start..].iter().position(|&b| b == b'\n') {
        let end = start + lf + 1;
        let line = &head[start..end];
        if let Some(value) = header_value(line) {
            if found.is_some() || !value.eq_ignore_ascii_case(PROTOCOL_2.as_bytes()) {
                return Err(ClientHandshakeError::Malformed(format!(
                    "the proxy chose a subprotocol other than the {PROTOCOL_2} offered"
                )));
            }
            found = Some((start, end));
        }
        start = end;
    }
    Ok(match found {
        None => (Protocol::V1, Cow::Borrowed(head)),
        Some((start, end)) => {
            let mut rest = Vec::with_capacity(head.len() - (end - start));
            rest.extend_from_slice(&head[..start]);
            rest.extend_from_slice(&head[end..]);
            (Protocol::V2, Cow::Owned(rest))
        }
    })
}

/// The trimmed value of `line` if it is a `Sec-WebSocket-Protocol` header line.
fn header_value(line: &[u8]) -> Option<&[u8]> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = &line[..colon];
    name.eq_ignore_ascii_case(PROTOCOL_HEADER.as_bytes())
        .then(|| line[colon + 1..].trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n";

    #[test]
    fn the_offer_goes_before_the_blank_line() {
        let mut request = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n".to_owned();
        offer(&mut request);
        assert_eq!(
            request,
            "GET /a HTTP/1.1\r\nHost: h\r\nSec-WebSocket-Protocol: httpws.2\r\n\r\n"
        );
    }

    #[test]
    fn the_answer_decides_the_protocol() {
        let v2 = format!("{HEAD}sec-websocket-protocol:  httpws.2 \r\nX: 1\r\n\r\n");
        let (protocol, checked) = chosen(v2.as_bytes()).unwrap();
        assert_eq!(protocol, Protocol::V2);
        assert_eq!(&checked[..], format!("{HEAD}X: 1\r\n\r\n").as_bytes());
        let v1 = format!("{HEAD}\r\n");
        let (protocol, checked) = chosen(v1.as_bytes()).unwrap();
        assert_eq!(protocol, Protocol::V1);
        assert_eq!(&checked[..], v1.as_bytes());
        for other in ["chat", "httpws.2, chat", ""] {
            let head = format!("{HEAD}Sec-WebSocket-Protocol: {other}\r\n\r\n");
            assert!(chosen(head.as_bytes()).is_err(), "{other:?}");
        }
        let twice = format!(
            "{HEAD}Sec-WebSocket-Protocol: httpws.2\r\nSec-WebSocket-Protocol: httpws.2\r\n\r\n"
        );
        assert!(chosen(twice.as_bytes()).is_err());
    }
}
