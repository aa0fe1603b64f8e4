//! The proxy's own error answers, and asserts on them: `:error <token> "<reason>"`
//! indications, and responses that carry `Httpws-Error: <token>` with the caller's CSeq.

use super::message::Http;
use super::ws::Endpoint;

/// Parse an `:error <token> "<reason>"` indication into (token, unescaped reason).
#[track_caller]
pub fn parse_error_indication(text: &str) -> (String, String) {
    let rest = text
        .strip_prefix(":error ")
        .unwrap_or_else(|| panic!("expected an :error indication, got {text:?}"));
    let (token, quoted) = rest
        .split_once(' ')
        .unwrap_or_else(|| panic!("no reason in {text:?}"));
    let inner = quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or_else(|| panic!("reason not quoted in {text:?}"));
    let mut reason = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => reason.push(chars.next().expect("escape followed by a character")),
            '"' => panic!("unescaped quote inside the reason of {text:?}"),
            c => reason.push(c),
        }
    }
    (token.to_string(), reason)
}

/// Read the next message and assert it is `:error <token> "…"`.
#[track_caller]
pub fn expect_indication(ep: &mut Endpoint, token: &str) {
    let text = ep.recv();
    let (got, reason) = parse_error_indication(&text);
    assert_eq!(got, token, "{text:?}");
    assert!(!reason.is_empty(), "an indication gives a reason: {text:?}");
}

/// Assert `response` is the proxy's own answer: `status`, `Httpws-Error: token`, `cseq`.
#[track_caller]
pub fn assert_proxy_error(response: &Http, status: u16, token: &str, cseq: u64) {
    assert_eq!(response.status(), status, "{response:?}");
    assert_eq!(
        response.all("httpws-error"),
        vec![token],
        "Httpws-Error token: {response:?}"
    );
    assert_eq!(response.cseq(), cseq, "the caller's CSeq: {response:?}");
}
