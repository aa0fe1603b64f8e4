//! Header names httpws sets itself, matched in every spelling a service could take for them.
//!
//! CGI, WSGI, PHP and Rack turn a header name into a variable by upper-casing it and replacing
//! `-` with `_`, so `Httpws_From: admin` and `Httpws-From: admin` both become
//! `HTTP_HTTPWS_FROM` there. A header the proxy or the agent stamps is only trustworthy if no
//! caller can send a *twin* of it: every hop that stamps a header drops each line whose name
//! is the same under ASCII case folding with `_` taken for `-` ([`same_name`]). The relay, the
//! public ingress and the agent all use these functions, so the rule is written once.

/// `Httpws-From`: the caller's address, stamped by the proxy on every relayed request.
pub const HTTPWS_FROM: &[u8] = b"httpws-from";
/// `Httpws-Error`: marks an answer the proxy (or the caller's own agent) made.
pub const HTTPWS_ERROR: &[u8] = b"httpws-error";
/// What a target's own `Httpws-Error` line is renamed to on its way to the caller, so that
/// a target cannot pass its answers off as the proxy's.
pub const HTTPWS_TARGET_ERROR: &[u8] = b"Httpws-Target-Error";
/// `CSeq`: the message's sequence number, rewritten by the proxy.
pub const CSEQ: &[u8] = b"cseq";

/// Whether `name` is `canonical` (lowercase, `-` separated) in any spelling: ASCII case is
/// ignored and `_` stands for `-`.
pub fn same_name(name: &[u8], canonical: &[u8]) -> bool {
    name.len() == canonical.len() && name.iter().zip(canonical).all(|(&n, &c)| fold(n) == c)
}

/// Whether `name` starts with `canonical_prefix` (lowercase, `-` separated) in any spelling.
pub fn has_prefix(name: &[u8], canonical_prefix: &[u8]) -> bool {
    name.len() >= canonical_prefix.len()
        && same_name(&name[..canonical_prefix.len()], canonical_prefix)
}

/// `Forwarded` and every `X-Forwarded-*` header, in any spelling: what the public ingress
/// drops from a caller's request before stamping its own `X-Forwarded-For/-Host/-Proto`.
pub fn is_forwarding(name: &[u8]) -> bool {
    same_name(name, b"forwarded") || has_prefix(name, b"x-forwarded-")
}

/// Whether `name` is `canonical` spelled with `_` for some `-` (`X_Forwarded_For`,
/// `Content_length`): the header itself to a CGI-style service, but never the line a hop of
/// ours wrote, since we write only the `-` spelling.
pub fn is_underscore_twin(name: &[u8], canonical: &[u8]) -> bool {
    name.contains(&b'_') && same_name(name, canonical)
}

/// A `Forwarded`/`X-Forwarded-*` header spelled with `_` (`X_Forwarded_For`): a twin of what
/// the public ingress stamps (it writes the `-` spellings), so a service must never see it.
pub fn is_forwarding_twin(name: &[u8]) -> bool {
    name.contains(&b'_') && is_forwarding(name)
}

/// Whether `name` is one of the headers a caller may never send to a service in any
/// spelling, because a hop of ours sets it: `Httpws-From`, `Httpws-Error`,
/// `Httpws-Target-Error`, `Httpws-Stream` and `CSeq`.
pub fn is_stamped(name: &[u8]) -> bool {
    match name.len() {
        4 => same_name(name, CSEQ),
        11 => same_name(name, HTTPWS_FROM),
        12 => same_name(name, HTTPWS_ERROR),
        13 => same_name(name, b"httpws-stream"),
        19 => same_name(name, b"httpws-target-error"),
        _ => false,
    }
}

#[inline]
fn fold(b: u8) -> u8 {
    if b == b'_' {
        b'-'
    } else {
        b.to_ascii_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twins_in_every_spelling() {
        for n in [
            "Httpws-From",
            "httpws_from",
            "HTTPWS_FROM",
            "Httpws_from",
            "hTTPWS-fROM",
        ] {
            assert!(same_name(n.as_bytes(), HTTPWS_FROM), "{n}");
            assert!(is_stamped(n.as_bytes()), "{n}");
        }
        for n in [
            "Httpws-Fro",
            "Httpws-Fromm",
            "Httpws From",
            "Httpws.From",
            "X-Httpws-From",
        ] {
            assert!(!same_name(n.as_bytes(), HTTPWS_FROM), "{n}");
        }
        assert!(is_stamped(b"CSEQ") && is_stamped(b"Httpws_Error"));
        assert!(is_stamped(b"httpws_target_error"));
        assert!(!is_stamped(b"Host") && !is_stamped(b"Content-Length"));
    }

    #[test]
    fn forwarding_family() {
        for n in [
            "Forwarded",
            "forwarded",
            "X-Forwarded-For",
            "x_forwarded_for",
            "X-Forwarded-Port",
            "X-Forwarded-Prefix",
            "X-Forwarded-Ssl",
            "X-Forwarded-Server",
            "X_FORWARDED_HOST",
            "X-Forwarded-",
        ] {
            assert!(is_forwarding(n.as_bytes()), "{n}");
        }
        for n in ["X-Forwarded", "Forwarded-For", "X-Forwardedfor", "Forward"] {
            assert!(!is_forwarding(n.as_bytes()), "{n}");
        }
        for n in ["X_Forwarded_For", "x-forwarded_host", "X_FORWARDED-PROTO"] {
            assert!(is_forwarding_twin(n.as_bytes()), "{n}");
        }
        for n in ["X-Forwarded-For", "Forwarded", "X_Forwardedfor", "X_Other"] {
            assert!(!is_forwarding_twin(n.as_bytes()), "{n}");
        }
    }

    #[test]
    fn underscore_twins() {
        assert!(is_underscore_twin(b"Content_Length", b"content-length"));
        assert!(is_underscore_twin(b"HTTPWS_FROM", HTTPWS_FROM));
        assert!(!is_underscore_twin(b"Content-Length", b"content-length"));
        assert!(!is_underscore_twin(b"Content_Type", b"content-length"));
    }
}
