//! Tests of the relay's head handling as a whole: inspection and both rewrites.

use bytes::BytesMut;
use httparse::Header;

use super::inspect::lf_minus_cr;
use super::*;
use crate::proto::answer_error::AnswerError;
use crate::proto::http1::status::reason_phrase;
use crate::proto::http1::write::put_answer;

fn lim() -> HeadLimits {
    HeadLimits::default()
}

/// Rewrites `msg` and checks the length promise and that the body was left alone.
fn rewrite(msg: &[u8], info: &HeadInfo, cseq: u64, from: Option<&str>) -> Vec<u8> {
    let mut dst = BytesMut::new();
    dst.extend_from_slice(b"prefix");
    write_head(&mut dst, msg, info, cseq, from);
    assert_eq!(dst.len() - 6, rewritten_head_len(msg, info, cseq, from));
    assert!(dst.ends_with(b"\r\n\r\n"));
    dst[6..].to_vec()
}

fn headers_of(head: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut hs = [httparse::EMPTY_HEADER; 80];
    let n;
    let headers: &[Header<'_>] = if head.starts_with(b"HTTP/") {
        let mut r = httparse::Response::new(&mut hs);
        n = r.parse(head).expect("reparse").unwrap();
        r.headers
    } else {
        let mut r = httparse::Request::new(&mut hs);
        n = r.parse(head).expect("reparse").unwrap();
        r.headers
    };
    assert_eq!(n, head.len());
    headers
        .iter()
        .map(|h| (h.name.to_string(), h.value.to_vec()))
        .collect()
}

fn http_head(msg: &[u8], head_request: bool) -> Result<String, HttpHeadError> {
    let info = inspect(msg, &lim()).expect("valid response");
    let mut dst = BytesMut::new();
    write_http_head(&mut dst, msg, &info, &msg[info.head_len..], head_request)?;
    Ok(String::from_utf8(dst.to_vec()).expect("ascii"))
}

#[test]
fn responses_for_http_clients_lose_cseq_and_hop_lines_and_gain_a_length() {
    let msg = b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nCSeq: 9\r\nX-A: 1\r\n\
        Keep-Alive: timeout=5\r\nHttpws-From: x\r\nUpgrade: h2c\r\n\r\nbody";
    assert_eq!(
        http_head(msg, false).unwrap(),
        "HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 4\r\n"
    );
    let chunked =
        b"HTTP/1.1 200 OK\r\nCSeq: 1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n";
    assert_eq!(
        http_head(chunked, false).unwrap(),
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
    );
    let no_content = b"HTTP/1.1 204 No Content\r\nCSeq: 1\r\n\r\n";
    assert_eq!(
        http_head(no_content, false).unwrap(),
        "HTTP/1.1 204 No Content\r\n"
    );
    // HEAD: a declared length without the body is its right.
    let head = b"HTTP/1.1 200 OK\r\nCSeq: 1\r\nContent-Length: 10\r\n\r\n";
    assert!(http_head(head, true).is_ok());
    assert_eq!(http_head(head, false), Err(HttpHeadError::LengthMismatch));
    let cut = b"HTTP/1.1 200 OK\r\nCSeq: 1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab";
    assert_eq!(http_head(cut, false), Err(HttpHeadError::IncompleteChunked));
    let interim = b"HTTP/1.1 100 Continue\r\nCSeq: 1\r\n\r\n";
    assert_eq!(http_head(interim, false), Err(HttpHeadError::Interim));
    let body_on_204 = b"HTTP/1.1 204 No Content\r\nCSeq: 1\r\n\r\nx";
    assert_eq!(
        http_head(body_on_204, false),
        Err(HttpHeadError::UnexpectedBody)
    );
    let hops = b"HTTP/1.1 200 OK\r\nCSeq: 1\r\nTE: a\r\nTE: b\r\nTE: c\r\nTE: d\r\nTE: e\r\n\r\n";
    assert_eq!(http_head(hops, false), Err(HttpHeadError::TooManyHopLines));
}

fn http_stream_head(msg: &[u8], head_request: bool, chunked_ok: bool) -> (String, HttpBodyFraming) {
    let info = inspect(msg, &lim()).expect("valid stream head");
    let mut dst = BytesMut::new();
    let framing = write_http_stream_head(&mut dst, msg, &info, head_request, chunked_ok)
        .expect("an HTTP head");
    (String::from_utf8(dst.to_vec()).expect("ascii"), framing)
}

#[test]
fn stream_heads_for_http_clients_lose_the_stream_line_and_say_how_the_body_goes() {
    let msg = b"HTTP/1.1 200 OK\r\nCSeq: 4\r\nContent-Type: text/event-stream\r\n\
        Httpws-Stream: body\r\nConnection: keep-alive\r\nX-B: 2\r\n\r\n";
    assert_eq!(
        http_stream_head(msg, false, true),
        (
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nX-B: 2\r\n\
             Transfer-Encoding: chunked\r\n"
                .to_owned(),
            HttpBodyFraming::Chunked
        )
    );
    // HTTP/1.0 callers: no chunks, the body runs until close.
    let (head, framing) = http_stream_head(msg, false, false);
    assert!(!head.contains("Transfer-Encoding"), "{head}");
    assert_eq!(framing, HttpBodyFraming::UntilClose);
    let sized = b"HTTP/1.1 200 OK\r\nHttpws-Stream: body\r\nCSeq: 4\r\nContent-Length: 9\r\n\r\n";
    assert_eq!(
        http_stream_head(sized, false, true),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n".to_owned(),
            HttpBodyFraming::Length
        )
    );
    assert_eq!(
        http_stream_head(msg, true, true).1,
        HttpBodyFraming::Bodiless
    );
    let interim = b"HTTP/1.1 103 Early Hints\r\nCSeq: 4\r\nHttpws-Stream: body\r\n\r\n";
    let info = inspect(interim, &lim()).expect("valid");
    let refused = write_http_stream_head(&mut BytesMut::new(), interim, &info, false, true);
    assert_eq!(refused, Err(HttpHeadError::Interim));
}

#[test]
fn request_with_host_and_cseq() {
    let msg = b"POST /offer HTTP/1.1\r\nHost: bob\r\nCSeq: 42\r\nContent-Length: 5\r\n\r\nhello";
    let info = inspect(msg, &lim()).unwrap();
    assert_eq!(info.kind, HeadKind::Request);
    assert_eq!(info.cseq, 42);
    assert_eq!(info.host(msg), Some(&b"bob"[..]));
    assert_eq!(info.status, 0);
    assert_eq!(info.head_len, msg.len() - 5);
    assert_eq!(&msg[info.head_len..], b"hello");
    let out = rewrite(msg, &info, 7, Some("alice"));
    assert_eq!(
        out,
        b"POST /offer HTTP/1.1\r\nHost: bob\r\nCSeq: 7\r\nContent-Length: 5\r\n\
          Httpws-From: alice\r\n\r\n"
    );
}

#[test]
fn host_with_port_and_ows() {
    let msg = b"GET / HTTP/1.1\r\nHost: \t bob.example:8080 \t\r\nCSeq: 1\r\n\r\n";
    let info = inspect(msg, &lim()).unwrap();
    assert_eq!(info.host(msg), Some(&b"bob.example:8080"[..]));
    assert_eq!(info.host_name(msg), Some(&b"bob.example"[..]));
    let msg = b"GET / HTTP/1.1\r\nHost: bob\r\nCSeq: 1\r\n\r\n";
    assert_eq!(
        inspect(msg, &lim()).unwrap().host_name(msg),
        Some(&b"bob"[..])
    );
}

#[test]
fn cseq_name_is_case_insensitive() {
    for name in ["cseq", "CSEQ", "CSeq", "cSeQ"] {
        let msg = format!("GET / HTTP/1.1\r\nHost: bob\r\n{name}:9\r\n\r\n");
        let info = inspect(msg.as_bytes(), &lim()).unwrap();
        assert_eq!(info.cseq, 9);
        let out = rewrite(msg.as_bytes(), &info, 10, None);
        assert_eq!(out, b"GET / HTTP/1.1\r\nHost: bob\r\nCSeq: 10\r\n\r\n");
    }
}

#[test]
fn from_twins_in_any_spelling_are_dropped_from_requests_and_responses() {
    let req = b"GET / HTTP/1.1\r\nHttpws_From: admin\r\nHost: bob\r\nhttpws_FROM: x\r\n\
        CSeq: 3\r\nX-Httpws-From: kept\r\n\r\n";
    let info = inspect(req, &lim()).unwrap();
    assert_eq!(
        rewrite(req, &info, 7, Some("alice")),
        b"GET / HTTP/1.1\r\nHost: bob\r\nCSeq: 7\r\nX-Httpws-From: kept\r\nHttpws-From: alice\r\n\r\n"
    );
    let resp = b"HTTP/1.1 200 OK\r\nCSeq: 1\r\nHttpws_From: admin\r\n\r\n";
    let info = inspect(resp, &lim()).unwrap();
    assert_eq!(
        rewrite(resp, &info, 9, None),
        b"HTTP/1.1 200 OK\r\nCSeq: 9\r\n\r\n"
    );
}

#[test]
fn a_targets_own_httpws_error_is_renamed_in_every_spelling() {
    let resp = b"HTTP/1.1 404 Not Found\r\nHttpws-Error: unknown-address\r\nCSeq: 1\r\n\
        httpws_error:forged\r\nContent-Length: 2\r\n\r\nno";
    let info = inspect(resp, &lim()).unwrap();
    assert_eq!(&resp[info.head_len..], b"no");
    assert_eq!(
        rewrite(resp, &info, 42, None),
        b"HTTP/1.1 404 Not Found\r\nHttpws-Target-Error: unknown-address\r\nCSeq: 42\r\n\
        Httpws-Target-Error:forged\r\nContent-Length: 2\r\n\r\n"
    );
    assert_eq!(
        http_head(resp, false).unwrap(),
        "HTTP/1.1 404 Not Found\r\nHttpws-Target-Error: unknown-address\r\n\
        Httpws-Target-Error:forged\r\nContent-Length: 2\r\n"
    );
    // A request's Httpws-Error is the caller's business (the target's agent drops it).
    let req = b"GET / HTTP/1.1\r\nHost: bob\r\nCSeq: 1\r\nHttpws-Error: x\r\n\r\n";
    let info = inspect(req, &lim()).unwrap();
    assert_eq!(
        rewrite(req, &info, 1, Some("a")),
        b"GET / HTTP/1.1\r\nHost: bob\r\nCSeq: 1\r\nHttpws-Error: x\r\nHttpws-From: a\r\n\r\n"
    );
    // More lines to rewrite than the proxy keeps track of: refused, never half-done.
    let many = format!(
        "HTTP/1.1 200 OK\r\nCSeq: 1\r\n{}\r\n",
        "Httpws-Error: x\r\n".repeat(MAX_REMOVED_LINES)
    );
    assert!(matches!(
        inspect(many.as_bytes(), &lim()),
        Err(HeadError::Malformed { cseq: Some(1), .. })
    ));
}

#[test]
fn forged_from_lines_are_replaced() {
    let one = b"GET / HTTP/1.1\r\nHttpws-From: mallory\r\nHost: bob\r\nCSeq: 3\r\nContent-Length: 4\r\n\r\nbody";
    let two = b"GET / HTTP/1.1\r\nhttpws-from: x\r\nHost: bob\r\nHTTPWS-FROM:y\r\nCSeq: 3\r\nContent-Length: 4\r\n\r\nbody";
    for msg in [&one[..], &two[..]] {
        let info = inspect(msg, &lim()).unwrap();
        assert_eq!(&msg[info.head_len..], b"body");
        let out = rewrite(msg, &info, 1_000_000, Some("alice"));
        assert_eq!(
            out,
            b"GET / HTTP/1.1\r\nHost: bob\r\nCSeq: 1000000\r\nContent-Length: 4\r\nHttpws-From: alice\r\n\r\n"
        );
        // Without `from` the forged lines still go.
        let out = rewrite(msg, &info, 3, None);
        assert_eq!(
            out,
            b"GET / HTTP/1.1\r\nHost: bob\r\nCSeq: 3\r\nContent-Length: 4\r\n\r\n"
        );
    }
}

#[test]
fn too_many_lines_to_drop() {
    let froms = "Httpws-From: a\r\n".repeat(MAX_REMOVED_LINES - 1);
    let ok = format!("GET / HTTP/1.1\r\nHost: b\r\n{froms}CSeq: 8\r\n\r\n");
    let info = inspect(ok.as_bytes(), &lim()).unwrap();
    assert_eq!(
        rewrite(ok.as_bytes(), &info, 8, None),
        b"GET / HTTP/1.1\r\nHost: b\r\nCSeq: 8\r\n\r\n"
    );
    let bad = format!("GET / HTTP/1.1\r\nHost: b\r\n{froms}Httpws-From: a\r\nCSeq: 8\r\n\r\n");
    let err = inspect(bad.as_bytes(), &lim()).unwrap_err();
    assert!(matches!(err, HeadError::Malformed { .. }), "{err:?}");
    assert_eq!(err.cseq(), Some(8));
}

#[test]
fn response_rewrite() {
    let msg = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nCSeq: 77\r\nX: y\r\n\r\nhi";
    let info = inspect(msg, &lim()).unwrap();
    assert_eq!(info.kind, HeadKind::Response);
    assert_eq!(info.status, 200);
    assert_eq!(info.cseq, 77);
    assert_eq!(info.host, None);
    assert_eq!(&msg[info.head_len..], b"hi");
    let out = rewrite(msg, &info, 5, None);
    assert_eq!(
        out,
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nCSeq: 5\r\nX: y\r\n\r\n"
    );
    // Responses need no Host; a Host there is ignored.
    let msg = b"HTTP/1.0 404\r\nHost: a\r\nHost: b\r\ncseq: 1\r\n\r\n";
    let info = inspect(msg, &lim()).unwrap();
    assert_eq!((info.status, info.host.clone()), (404, None));
    assert_eq!(
        rewrite(msg, &info, 2, None),
        b"HTTP/1.0 404\r\nHost: a\r\nHost: b\r\nCSeq: 2\r\n\r\n"
    );
}

#[test]
fn body_untouched_even_if_it_looks_like_a_head() {
    let body: &[u8] = b"\r\n\r\nCSeq: 9\r\nHttpws-From: z\r\n\r\n\n\n\xff\x00";
    let mut msg = format!(
        "PUT /x HTTP/1.1\r\nCSeq: 1\r\nHost: bob\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    let head_len = msg.len();
    msg.extend_from_slice(body);
    let info = inspect(&msg, &lim()).unwrap();
    assert_eq!(info.head_len, head_len);
    assert_eq!(&msg[info.head_len..], body);
    let out = rewrite(&msg, &info, 2, Some("a"));
    let want = format!(
        "PUT /x HTTP/1.1\r\nCSeq: 2\r\nHost: bob\r\nContent-Length: {}\r\nHttpws-From: a\r\n\r\n",
        body.len()
    );
    assert_eq!(out, want.as_bytes());
}

#[test]
fn cseq_errors() {
    let req = |cseq: &str| format!("GET / HTTP/1.1\r\nHost: bob\r\n{cseq}\r\n\r\n");
    let cases = [
        ("X-Other: 1", HeadError::MissingCseq),
        ("CSeq: +5", HeadError::BadCseq),
        ("CSeq: -5", HeadError::BadCseq),
        ("CSeq: 5 5", HeadError::BadCseq),
        ("CSeq: 0x5", HeadError::BadCseq),
        ("CSeq:", HeadError::BadCseq),
        ("CSeq: 18446744073709551616", HeadError::BadCseq),
        ("CSeq: 1\r\nCSeq: 1", HeadError::BadCseq),
        ("CSeq: 1\r\ncseq: 2", HeadError::BadCseq),
    ];
    for (line, want) in cases {
        let msg = req(line);
        let err = inspect(msg.as_bytes(), &lim()).unwrap_err();
        assert_eq!(err, want, "{line}");
        assert_eq!(err.cseq(), None);
    }
    let max = req("CSeq: 18446744073709551615");
    assert_eq!(inspect(max.as_bytes(), &lim()).unwrap().cseq, u64::MAX);
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(inspect(resp, &lim()).unwrap_err(), HeadError::MissingCseq);
}

#[test]
fn host_errors_carry_cseq() {
    let missing = b"GET / HTTP/1.1\r\nCSeq: 12\r\n\r\n";
    let dup = b"GET / HTTP/1.1\r\nHost: a\r\nCSeq: 12\r\nhost: b\r\n\r\n";
    let empty = b"GET / HTTP/1.1\r\nHost:  \r\nCSeq: 12\r\n\r\n";
    for msg in [&missing[..], &dup[..], &empty[..]] {
        let err = inspect(msg, &lim()).unwrap_err();
        assert!(
            matches!(err, HeadError::Malformed { cseq: Some(12), .. }),
            "{err:?}"
        );
        assert_eq!(err.cseq(), Some(12));
    }
    // A CSeq problem wins: without a usable CSeq there is nobody to answer.
    let both = b"GET / HTTP/1.1\r\n\r\n";
    assert_eq!(inspect(both, &lim()).unwrap_err(), HeadError::MissingCseq);
}

#[test]
fn no_blank_line_is_no_head() {
    for msg in [
        &b"GET / HTTP/1.1\r\nHost: bob\r\nCSeq: 1\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: bob\r\nCSeq: 1",
        b"GET / HTTP/1.1",
        b"HTTP/1.1 200 OK\r\nCSeq: 1\r\n",
        b"",
    ] {
        assert_eq!(inspect(msg, &lim()).unwrap_err(), HeadError::NoHead);
    }
}

#[test]
fn too_many_headers_is_too_large_with_cseq() {
    let limits = HeadLimits {
        max_head_bytes: 1 << 20,
        max_headers: 10,
    };
    let mut msg = String::from("GET / HTTP/1.1\r\nHost: bob\r\nCSeq: 31\r\n");
    for i in 0..9 {
        msg.push_str(&format!("X-{i}: v\r\n"));
    }
    msg.push_str("\r\n");
    let err = inspect(msg.as_bytes(), &limits).unwrap_err();
    assert_eq!(err, HeadError::TooLarge { cseq: Some(31) });
    // With the default limit it is fine; with a limit above the stack buffer too.
    assert_eq!(inspect(msg.as_bytes(), &lim()).unwrap().cseq, 31);
    let big = HeadLimits {
        max_head_bytes: 1 << 20,
        max_headers: 500,
    };
    assert_eq!(inspect(msg.as_bytes(), &big).unwrap().cseq, 31);
    let mut many = String::from("HTTP/1.1 200 OK\r\nCSeq: 4\r\n");
    for i in 0..100 {
        many.push_str(&format!("X-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let err = inspect(many.as_bytes(), &lim()).unwrap_err();
    assert_eq!(err, HeadError::TooLarge { cseq: Some(4) });
    assert_eq!(inspect(many.as_bytes(), &big).unwrap().cseq, 4);
}

#[test]
fn too_long_is_too_large_with_cseq() {
    let long = "a".repeat(DEFAULT_MAX_HEAD_BYTES);
    let msg = format!("GET / HTTP/1.1\r\nCSeq: 55\r\nHost: bob\r\nX-Long: {long}\r\n\r\n");
    let err = inspect(msg.as_bytes(), &lim()).unwrap_err();
    assert_eq!(err, HeadError::TooLarge { cseq: Some(55) });
    // The limit counts the whole head including its "\r\n\r\n": exactly at it is fine.
    let msg = b"GET / HTTP/1.1\r\nHost: b\r\nCSeq: 1\r\nContent-Length: 4\r\n\r\nbody";
    let exact = HeadLimits {
        max_head_bytes: msg.len() - 4,
        ..lim()
    };
    assert_eq!(inspect(msg, &exact).unwrap().head_len, msg.len() - 4);
    let short = HeadLimits {
        max_head_bytes: msg.len() - 5,
        ..lim()
    };
    assert_eq!(
        inspect(msg, &short).unwrap_err(),
        HeadError::TooLarge { cseq: Some(1) }
    );
    // A CSeq line cut off by the cap is not trusted ("CSeq: 12" of "CSeq: 123").
    let msg = b"GET / HTTP/1.1\r\nHost: b\r\nCSeq: 123\r\n\r\n";
    let cut = HeadLimits {
        max_head_bytes: msg.len() - 5,
        ..lim()
    };
    assert_eq!(
        inspect(msg, &cut).unwrap_err(),
        HeadError::TooLarge { cseq: None }
    );
}

#[test]
fn garbage_has_no_cseq() {
    let cases: [&[u8]; 6] = [
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"\x00\x01\x02\xff\r\n\r\n",
        b"hello world\r\n\r\n",
        b"CSeq: 5\r\n\r\n",
        b"GET / HTTP/1.1\r\nCSeq: 1\r\nCSeq: 2\r\nBad Header: x\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
    ];
    for msg in cases {
        let err = inspect(msg, &lim()).unwrap_err();
        assert!(matches!(err, HeadError::Malformed { .. }), "{err:?}");
        assert_eq!(err.cseq(), None, "{msg:?}");
    }
    let long_garbage = vec![0xffu8; DEFAULT_MAX_HEAD_BYTES + 10];
    let err = inspect(&long_garbage, &lim()).unwrap_err();
    assert_eq!(err.cseq(), None);
}

#[test]
fn malformed_recovers_cseq() {
    let msg = b"GET / HTTP/1.1\r\nHost: bob\r\ncseq:\t 17 \r\nBad Header: x\r\n\r\n";
    let err = inspect(msg, &lim()).unwrap_err();
    assert_eq!(
        err,
        HeadError::Malformed {
            cseq: Some(17),
            reason: "invalid header name"
        }
    );
    let msg = b"GET / HTTP/3\r\nHost: bob\r\nCSeq: 17\r\n\r\n";
    assert_eq!(inspect(msg, &lim()).unwrap_err().cseq(), Some(17));
}

#[test]
fn bare_line_endings_are_refused() {
    let msg = b"GET / HTTP/1.1\nHost: bob\r\nCSeq: 2\r\n\r\n";
    let err = inspect(msg, &lim()).unwrap_err();
    assert_eq!(
        err,
        HeadError::Malformed {
            cseq: Some(2),
            reason: "bare LF line ending"
        }
    );
    let msg = b"GET / HTTP/1.1\r\nHost: bob\r\nCSeq: 2\n\n";
    assert_eq!(inspect(msg, &lim()).unwrap_err().cseq(), Some(2));
    // The bare-LF check relies on httparse refusing a CR without LF anywhere in the head.
    for msg in [
        &b"GET / HTTP/1.1\r\nHost: b\rc\r\nCSeq: 2\r\n\r\n"[..],
        b"GET /\r HTTP/1.1\r\nHost: b\r\nCSeq: 2\r\n\r\n",
        b"HTTP/1.1 200 O\rK\r\nCSeq: 2\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: b\r\nCSeq: 2\r\r\n\r\n",
    ] {
        assert!(matches!(
            inspect(msg, &lim()),
            Err(HeadError::Malformed { .. })
        ));
    }
}

#[test]
fn leading_empty_lines_are_kept_in_place() {
    let msg = b"\r\nHTTP/1.1 204 No Content\r\nCSeq: 1\r\n\r\n";
    let info = inspect(msg, &lim()).unwrap();
    assert_eq!(
        (info.kind, info.status, info.head_len),
        (HeadKind::Response, 204, msg.len())
    );
    assert_eq!(
        rewrite(msg, &info, 2, None),
        b"\r\nHTTP/1.1 204 No Content\r\nCSeq: 2\r\n\r\n"
    );
}

#[test]
fn error_response_parses_back() {
    for (status, token) in [
        (404, "unknown-address"),
        (504, "timeout"),
        (431, "head-too-large"),
    ] {
        let mut dst = BytesMut::new();
        let reason = "no endpoint holds \"bob\"";
        put_answer(
            &mut dst,
            AnswerError::from_token(token).expect("a token"),
            Some(u64::MAX),
            reason,
        );
        let info = inspect(&dst, &lim()).unwrap();
        assert_eq!((info.status, info.cseq), (status, u64::MAX));
        let mut hs = [httparse::EMPTY_HEADER; 8];
        let mut r = httparse::Response::new(&mut hs);
        let n = r.parse(&dst).unwrap().unwrap();
        assert_eq!(r.version, Some(1));
        assert_eq!(r.reason, Some(reason_phrase(status)));
        let get = |name: &str| {
            r.headers
                .iter()
                .find(|h| h.name == name)
                .map(|h| h.value.to_vec())
                .unwrap()
        };
        assert_eq!(get("Httpws-Error"), token.as_bytes());
        assert_eq!(get("Content-Type"), b"text/plain; charset=utf-8");
        let body = &dst[n..];
        assert_eq!(body, format!("{reason}\n").as_bytes());
        assert_eq!(get("Content-Length"), body.len().to_string().as_bytes());
    }
}

/// xorshift64*: a deterministic generator so the property test needs no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn case(&mut self, s: &str) -> String {
        s.chars()
            .map(|c| {
                if self.next() & 1 == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect()
    }
}

#[test]
fn property_random_header_orders() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..3000 {
        let response = rng.below(2) == 0;
        let cseq = match rng.below(3) {
            0 => rng.next(),
            1 => rng.below(1000) as u64,
            _ => u64::MAX - rng.below(3) as u64,
        };
        let host = format!(
            "peer-{}.example{}",
            rng.below(100),
            [":", ":8080"][rng.below(2)]
        );
        let host = host.trim_end_matches(':').to_string();
        // (line, kept?) in random order.
        let mut lines: Vec<(String, bool)> = Vec::new();
        let ows = |r: &mut Rng| ["", " ", "  ", "\t"][r.below(4)];
        lines.push((
            format!(
                "{}:{}{cseq}{}",
                rng.case("cseq"),
                ows(&mut rng),
                ows(&mut rng)
            ),
            false,
        ));
        if !response {
            lines.push((format!("{}: {host}", rng.case("host")), true));
        }
        for _ in 0..rng.below(MAX_REMOVED_LINES) {
            lines.push((
                format!("{}: forged{}", rng.case("httpws-from"), rng.below(9)),
                false,
            ));
        }
        for i in 0..rng.below(20) {
            let v = ["v", "", "a b", "CSeq: 1", "Httpws-From: x"][rng.below(5)];
            let name = ["X-", "Cseqx-", "Hostx-", "Httpws-Fromx-"][rng.below(4)];
            lines.push((format!("{name}{i}: {v}"), true));
        }
        for i in (1..lines.len()).rev() {
            lines.swap(i, rng.below(i + 1));
        }
        let start = if response {
            "HTTP/1.1 200 OK"
        } else {
            "POST /p?q=1 HTTP/1.1"
        };
        let body: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
        let mut msg = format!("{start}\r\n");
        for (l, _) in &lines {
            msg.push_str(l);
            msg.push_str("\r\n");
        }
        msg.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let head_len = msg.len();
        let mut msg = msg.into_bytes();
        msg.extend_from_slice(&body);

        let info = inspect(&msg, &lim()).unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        assert_eq!(info.head_len, head_len);
        assert_eq!(info.cseq, cseq);
        assert_eq!(&msg[info.head_len..], &body[..]);
        if response {
            assert_eq!(
                (info.kind, info.status, info.host.clone()),
                (HeadKind::Response, 200, None)
            );
        } else {
            assert_eq!(info.host(&msg), Some(host.as_bytes()));
        }

        let new_cseq = rng.next() >> rng.below(64);
        let from = (!response).then_some("alice.example");
        let out = rewrite(&msg, &info, new_cseq, from);
        let got = headers_of(&out);
        // Kept lines in their order, the CSeq line in its place, From last.
        let mut want: Vec<(String, Vec<u8>)> = Vec::new();
        for (l, kept) in &lines {
            let (name, value) = l.split_once(':').unwrap();
            if *kept {
                want.push((name.to_string(), value.trim().as_bytes().to_vec()));
            } else if name.eq_ignore_ascii_case("cseq") {
                want.push(("CSeq".into(), new_cseq.to_string().into_bytes()));
            }
        }
        want.push(("Content-Length".into(), body.len().to_string().into_bytes()));
        if let Some(f) = from {
            want.push(("Httpws-From".into(), f.as_bytes().to_vec()));
        }
        assert_eq!(got, want, "round {round}");
        // The rewritten head inspects to the new CSeq (what the target will see).
        let mut again = out.clone();
        again.extend_from_slice(&body);
        let info2 = inspect(&again, &lim()).unwrap();
        assert_eq!((info2.cseq, info2.head_len), (new_cseq, out.len()));
    }
}

#[test]
fn strict_framing_refuses_every_ambiguous_shape() {
    let req = |extra: &str, body: &str| {
        format!("POST http://bob/x HTTP/1.1\r\nHost: bob\r\nCSeq: 8\r\n{extra}\r\n{body}")
    };
    let refused = [
        req("Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", "abc"),
        req("Content-Length: 3\r\nContent-Length: 3\r\n", "abc"),
        req("Content-Length: +3\r\n", "abc"),
        req("Content-Length: 0x3\r\n", "abc"),
        req("Content-Length: \r\n", ""),
        req("Content-Length: 3, 4\r\n", "abc"),
        req("Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n"),
        req("Transfer-Encoding: chunked, identity\r\n", "0\r\n\r\n"),
        req(
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            "0\r\n\r\n",
        ),
        req("Content-Length: 3\r\n", "abcdef"),
        req("Content-Length: 3\r\n", "ab"),
        req("", "smuggled"),
        req(
            "Transfer-Encoding: chunked\r\n",
            "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1",
        ),
        req("Transfer-Encoding: chunked\r\n", "3\r\nabc\r\n"),
        req("X-A: a\0b\r\n", ""),
        "GET http://mallory/x HTTP/1.1\r\nHost: bob\r\nCSeq: 8\r\n\r\n".to_string(),
        "GET / HTTP/1.1\r\nHost: bob\rCSeq: 8\r\n\r\n".to_string(),
    ];
    for msg in &refused {
        let err = inspect(msg.as_bytes(), &lim()).expect_err(msg);
        assert!(
            matches!(
                err,
                HeadError::Malformed { .. } | HeadError::MissingCseq | HeadError::BadCseq
            ),
            "{msg:?}: {err:?}"
        );
    }
    let accepted = [
        req("Content-Length: 3\r\n", "abc"),
        req(
            "Transfer-Encoding: Chunked\r\n",
            "3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n",
        ),
        req("", ""),
        "GET http://BOB:80/x HTTP/1.1\r\nHost: bob:80\r\nCSeq: 8\r\n\r\n".to_string(),
    ];
    for msg in &accepted {
        assert!(inspect(msg.as_bytes(), &lim()).is_ok(), "{msg:?}");
    }
    // Responses: a HEAD answer declares a length it does not carry; more is refused.
    let head = "HTTP/1.1 200 OK\r\nCSeq: 1\r\nContent-Length: 99\r\n\r\n";
    assert!(inspect(head.as_bytes(), &lim()).is_ok());
    let long = "HTTP/1.1 200 OK\r\nCSeq: 1\r\nContent-Length: 1\r\n\r\nab";
    assert!(inspect(long.as_bytes(), &lim()).is_err());
    let close_delimited = "HTTP/1.1 200 OK\r\nCSeq: 1\r\n\r\nanything";
    assert!(inspect(close_delimited.as_bytes(), &lim()).is_ok());
}

#[test]
fn lf_minus_cr_matches_naive_count() {
    let mut rng = Rng(7);
    for len in [0, 1, 63, 64, 65, 128, 200, 1000] {
        for _ in 0..20 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| [b'\r', b'\n', b'a'][rng.below(3)])
                .collect();
            let lf = bytes.iter().filter(|&&b| b == b'\n').count() as isize;
            let cr = bytes.iter().filter(|&&b| b == b'\r').count() as isize;
            assert_eq!(lf_minus_cr(&bytes), lf - cr);
        }
    }
    assert_eq!(lf_minus_cr(&[b'\n'; 300]), 300);
    assert_eq!(lf_minus_cr(&[b'\r'; 300]), -300);
}
