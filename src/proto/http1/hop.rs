//! Headers that belong to one connection rather than to the message (RFC 9110 §7.6.1): what
//! every hop of httpws (relay, public ingress, agent) keeps to itself, and what the
//! `Connection` header says about the connection it came on.

use httparse::Header;

/// The hop-by-hop headers of RFC 9110 §7.6.1 (and the old `Proxy-Connection`), which a
/// relay must not pass on to the next connection. Each hop adds its own (proxy credentials,
/// the framing headers it rewrites) on top of these.
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    match name.len() {
        2 => name.eq_ignore_ascii_case(b"te"),
        7 => name.eq_ignore_ascii_case(b"upgrade") || name.eq_ignore_ascii_case(b"trailer"),
        10 => name.eq_ignore_ascii_case(b"connection") || name.eq_ignore_ascii_case(b"keep-alive"),
        16 => name.eq_ignore_ascii_case(b"proxy-connection"),
        _ => false,
    }
}

/// Whether the comma-separated list `value` holds `token` (ASCII case-insensitive, spaces
/// around items ignored).
pub fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|item| item.trim_ascii().eq_ignore_ascii_case(token))
}

/// Whether a `Connection` header among `headers` lists `name` (its options for this
/// connection, not for the next hop).
pub fn connection_lists(headers: &[Header<'_>], name: &[u8]) -> bool {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .any(|h| has_token(h.value, name))
}

/// The header names `Connection` headers list, at most `max` of them (a hostile head cannot
/// make this grow without bound).
pub fn connection_listed<'h>(headers: &'h [Header<'_>], max: usize) -> Vec<&'h [u8]> {
    let mut names = Vec::new();
    for h in headers {
        if h.name.eq_ignore_ascii_case("connection") {
            for t in h.value.split(|&b| b == b',') {
                let t = t.trim_ascii();
                if !t.is_empty() && names.len() < max {
                    names.push(t);
                }
            }
        }
    }
    names
}

/// Whether the connection closes after this message: HTTP/1.0 (`minor` 0) unless it says
/// `keep-alive`, HTTP/1.1 if it says `close`.
pub fn wants_close(minor: u8, headers: &[Header<'_>]) -> bool {
    let mut close = false;
    let mut keep_alive = false;
    for h in headers {
        if h.name.eq_ignore_ascii_case("connection") {
            close |= has_token(h.value, b"close");
            keep_alive |= has_token(h.value, b"keep-alive");
        }
    }
    if minor == 0 { !keep_alive } else { close }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &'static str, value: &'static [u8]) -> Header<'static> {
        Header { name, value }
    }

    #[test]
    fn connection_options() {
        let headers = [
            h("Connection", b"keep-alive, X-Opt"),
            h("connection", b"close"),
        ];
        assert!(connection_lists(&headers, b"x-opt"));
        assert!(!connection_lists(&headers, b"x-other"));
        assert_eq!(
            connection_listed(&headers, 2),
            vec![&b"keep-alive"[..], b"X-Opt"]
        );
        assert!(wants_close(1, &headers));
        assert!(!wants_close(0, &[h("Connection", b"Keep-Alive")]));
        assert!(wants_close(0, &[]));
        assert!(!wants_close(1, &[]));
        for name in [
            "TE",
            "Upgrade",
            "Trailer",
            "Connection",
            "Keep-Alive",
            "Proxy-Connection",
        ] {
            assert!(is_hop_by_hop(name.as_bytes()), "{name}");
        }
        assert!(!is_hop_by_hop(b"Content-Length"));
    }
}
