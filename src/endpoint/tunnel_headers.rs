//! The httpws header family (`CSeq`, `Httpws-*`) as the endpoint's local sides apply it:
//! which lines never cross from a local client, service or handler into the tunnel, which
//! come back out of it, and which one is the proxy's stamp. Every spelling counts (ASCII
//! case, `_` for `-`, [`header_name::same_name`]), since a CGI-style service reads
//! `Httpws_From` as `Httpws-From`; the listener, the service side and the client library all
//! use these, so that none of them lets a twin through that another stops.

use crate::proto::http1::header_name;

/// Whether `name` is a line a hop of ours writes, in any spelling (ASCII case, `_` for `-`):
/// `CSeq`, `Httpws-From`, `Httpws-Error`, `Httpws-Target-Error`, and `Content-Length`'s `_`
/// twin. A message a local side hands to the tunnel never carries its own copy of one: the
/// hop that sets it would drop it, and where one does not, it must not reach the far side.
pub fn is_hop_written(name: &[u8]) -> bool {
    header_name::is_stamped(name) || header_name::is_underscore_twin(name, b"content-length")
}

/// `Httpws-Error` or `Httpws-Target-Error` (ASCII case ignored, `-` only): the markers of an
/// answer httpws made, which a response from the tunnel keeps for the local caller whatever
/// its `Connection` lists, so that the caller can tell whose answer it is.
pub fn is_error_marker(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(header_name::HTTPWS_ERROR)
        || name.eq_ignore_ascii_case(header_name::HTTPWS_TARGET_ERROR)
}

/// Whether a response from the tunnel loses `name` before a local caller gets it: every
/// `Httpws-*` line but the [error markers](is_error_marker) and `CSeq`, in any spelling, and
/// `Content-Length`'s `_` twin.
pub fn is_tunnel_line(name: &[u8]) -> bool {
    !is_error_marker(name)
        && (header_name::has_prefix(name, b"httpws-")
            || header_name::same_name(name, header_name::CSEQ)
            || header_name::is_underscore_twin(name, b"content-length"))
}

/// The proxy's `Httpws-From` stamp on a relayed request: the last line spelled so (ASCII case
/// ignored), where the proxy writes its own after dropping the caller's copies. Every other
/// line of the family is the caller's, and is dropped ([`is_hop_written`]).
pub fn proxy_stamp<'h>(headers: &'h [httparse::Header<'_>]) -> Option<&'h [u8]> {
    headers
        .iter()
        .rev()
        .find(|h| {
            h.name
                .as_bytes()
                .eq_ignore_ascii_case(header_name::HTTPWS_FROM)
        })
        .map(|h| h.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_family_in_every_spelling() {
        for name in [
            "CSeq",
            "CSEQ",
            "Httpws_From",
            "HTTPWS-FROM",
            "Httpws_Error",
            "httpws-target_error",
            "Content_Length",
        ] {
            assert!(is_hop_written(name.as_bytes()), "{name}");
        }
        for name in ["C_Seq", "Content-Length", "Host", "Httpws-Other"] {
            assert!(!is_hop_written(name.as_bytes()), "{name}");
        }
        assert!(is_error_marker(b"HTTPWS-ERROR") && is_error_marker(b"Httpws-Target-Error"));
        assert!(!is_error_marker(b"Httpws_Error") && !is_error_marker(b"Httpws-From"));
        for name in [
            "Httpws_Error",
            "httpws-target_error",
            "Httpws-Other",
            "cseq",
        ] {
            assert!(is_tunnel_line(name.as_bytes()), "{name}");
        }
        for name in [
            "Httpws-Error",
            "httpws-target-error",
            "X-Keep",
            "Content-Length",
        ] {
            assert!(!is_tunnel_line(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn the_stamp_is_the_last_line_spelled_so() {
        let line = |name, value| httparse::Header { name, value };
        let headers = [
            line("Httpws_From", &b"a"[..]),
            line("httpws-from", b"b"),
            line("HTTPWS-FROM", b"c"),
            line("Httpws_From", b"d"),
        ];
        assert_eq!(proxy_stamp(&headers), Some(&b"c"[..]));
        assert_eq!(proxy_stamp(&headers[..1]), None);
    }
}
