//! The proxy's refusal of a registration: the reason it gives (the `text/plain` body of its
//! answer, shown to the user instead of a bare status), and whether retrying can heal it.
//!
//! The proxy cannot tell us "this will never work", so the agent works it out from what it
//! knows: the status, whether it presented a token, and whether the name it asked for was
//! the proxy's own choice (an assigned `ep-…` name) or the user's.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::timeout;

use crate::proto::http1::decimal;

/// Longest reason shown; the proxy's are one short line, and a stranger's page is cut off.
pub const MAX_REASON_BYTES: usize = 512;
/// How long the body of a refusal may take after its head (the proxy sends both at once).
pub const REASON_WAIT: Duration = Duration::from_secs(1);
/// Most header lines looked at in a refusal's head.
const MAX_REFUSAL_HEADERS: usize = 64;
/// The words by which a proxy's 409 says the holder registered with a credential other
/// than ours. Without a token we could otherwise not tell that holder from our own previous
/// connection, which the proxy has simply not timed out yet.
pub const OTHER_CREDENTIAL: &str = "another credential";

/// What to do after a refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Retry with backoff: it may heal (our old connection times out, the proxy restarts).
    Retry,
    /// Stop: the same request will be refused the same way.
    GiveUp,
    /// The remembered proxy-assigned name is refused for good: ask for a new one with `/`.
    NewName,
}

/// Decide from the status and reason, whether we presented a token, and whether the name
/// we asked for is one the proxy assigned earlier (rather than the user's `--name`).
///
/// - 400 (a request the proxy cannot accept), 401 (no or unknown token), 404: give up.
/// - 403 (the token may not have this name): give up on a chosen name; an assigned one is
///   not ours to insist on (a restarted proxy may only allow `/` for this token), so ask
///   for a new one.
/// - 409: with a token, the holder has another credential (the same one would have taken
///   the name over); without one, only a reason naming [`OTHER_CREDENTIAL`] says so. Then
///   give up on a chosen name and ask anew for an assigned one; otherwise the holder may be
///   our own previous connection, so retry.
/// - Anything else (503 shutdown, 426, 431, a stranger's 5xx): retry.
pub fn judge(status: u16, reason: &str, presented_token: bool, assigned_name: bool) -> Verdict {
    let for_good = match status {
        400 | 401 | 404 => return Verdict::GiveUp,
        403 => true,
        409 => presented_token || reason.contains(OTHER_CREDENTIAL),
        _ => false,
    };
    match (for_good, status, assigned_name) {
        (false, _, _) => Verdict::Retry,
        (true, 403 | 409, true) => Verdict::NewName,
        (true, _, _) => Verdict::GiveUp,
    }
}

/// Read the rest of a refusal whose head is `buf[..head_len]` (more of the body may follow
/// in the stream) and return the reason to show: its `text/plain` body, else `phrase` (the
/// status line's reason phrase). Bounded by [`MAX_REASON_BYTES`] and [`REASON_WAIT`].
pub async fn read_reason<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    head_len: usize,
    phrase: &str,
) -> String {
    let Some(want) = body_wanted(&buf[..head_len]) else {
        return fallback(phrase);
    };
    let want = want.min(MAX_REASON_BYTES);
    let _ = timeout(REASON_WAIT, async {
        while buf.len() - head_len < want {
            match stream.read_buf(buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    let end = buf.len().min(head_len + want);
    match sanitize(&buf[head_len..end]) {
        Some(reason) => reason,
        None => fallback(phrase),
    }
}

/// How many body bytes to wait for: `Content-Length`, or up to the limit when there is
/// none (the proxy closes after a refusal); `None` when the body is not `text/plain`.
fn body_wanted(head: &[u8]) -> Option<usize> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_REFUSAL_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    response.parse(head).ok()?;
    let mut plain = false;
    let mut length = None;
    for h in response.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-type") {
            plain = h
                .value
                .get(..10)
                .is_some_and(|v| v.eq_ignore_ascii_case(b"text/plain"));
        } else if h.name.eq_ignore_ascii_case("content-length") {
            length = decimal::parse_u64(h.value);
        }
    }
    plain.then(|| {
        length.map_or(MAX_REASON_BYTES, |n| {
            n.min(MAX_REASON_BYTES as u64) as usize
        })
    })
}

/// The body as one line of text: control characters (line ends included) become spaces, so
/// a reason cannot forge log lines; `None` if nothing printable is left.
fn sanitize(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let line = line.trim();
    (!line.is_empty()).then(|| line.to_owned())
}

fn fallback(phrase: &str) -> String {
    sanitize(phrase.as_bytes()).unwrap_or_else(|| "no reason given".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        use Verdict::*;
        let held = "address bob is held by another connection";
        for status in [400, 401, 404] {
            assert_eq!(judge(status, "x", false, false), GiveUp, "{status}");
            assert_eq!(judge(status, "x", true, true), GiveUp, "{status}");
        }
        assert_eq!(judge(403, "may not", true, false), GiveUp);
        assert_eq!(judge(403, "may not", true, true), NewName);
        // Without a token the holder may be our own previous connection.
        assert_eq!(judge(409, held, false, false), Retry);
        assert_eq!(judge(409, held, false, true), Retry);
        // With one, a same-token holder would have been taken over.
        assert_eq!(judge(409, held, true, false), GiveUp);
        assert_eq!(judge(409, held, true, true), NewName);
        // The proxy may say so itself.
        let other = "address bob is held by another credential";
        assert_eq!(judge(409, other, false, false), GiveUp);
        assert_eq!(judge(409, other, false, true), NewName);
        for status in [503, 426, 431, 500, 200] {
            assert_eq!(judge(status, "x", true, true), Retry, "{status}");
        }
    }

    async fn reason_of(bytes: &[u8]) -> String {
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        // Half the response already read, the rest still in the stream.
        let split = (end + 3).min(bytes.len());
        let mut buf = BytesMut::from(&bytes[..split]);
        let mut rest = &bytes[split..];
        read_reason(&mut rest, &mut buf, end, "Forbidden").await
    }

    #[tokio::test]
    async fn reasons() {
        let proxy = crate::proto::handshake::refusal(403, "this token may not register bob");
        assert_eq!(reason_of(&proxy).await, "this token may not register bob");
        // Not text/plain: the phrase.
        let html = b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/html\r\nContent-Length: 9\r\n\r\n<b>no</b>";
        assert_eq!(reason_of(html).await, "Forbidden");
        // No length: up to the limit or the end of the stream.
        let long = format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: TEXT/PLAIN\r\n\r\n{}",
            "x".repeat(2 * MAX_REASON_BYTES)
        );
        assert_eq!(reason_of(long.as_bytes()).await.len(), MAX_REASON_BYTES);
        // Lines cannot be forged in our log.
        let forged =
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n\r\nbad\r\nINFO ok\x1b[0m\n";
        assert_eq!(reason_of(forged).await, "bad  INFO ok [0m");
        // A declared length longer than what comes: what came.
        let short =
            b"HTTP/1.1 409 Conflict\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nheld";
        assert_eq!(reason_of(short).await, "held");
        let empty =
            b"HTTP/1.1 409 Conflict\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(reason_of(empty).await, "Forbidden");
    }
}
