//! Heads parsed with `httparse` into header slots that start uninitialized. httparse writes
//! every slot it hands back; clearing the whole array first (32 bytes a slot, 64 to 100
//! slots) cost several hundred instructions per head, on every response the proxy relays and
//! on every head the agents read (bench/RESULTS.md).

use std::mem::MaybeUninit;

use httparse::{Header, ParserConfig, Request, Response};

/// Room for `N` headers, left uninitialized.
pub fn header_slots<'b, const N: usize>() -> [MaybeUninit<Header<'b>>; N] {
    [const { MaybeUninit::uninit() }; N]
}

/// Parse a request head from `buf` into `slots` (`req` starts as `Request::new(&mut [])`);
/// `req.headers` is then the slots used.
pub fn request<'h, 'b>(
    req: &mut Request<'h, 'b>,
    buf: &'b [u8],
    slots: &'h mut [MaybeUninit<Header<'b>>],
) -> httparse::Result<usize> {
    req.parse_with_uninit_headers(buf, slots)
}

/// Parse a response head from `buf` into `slots` (`resp` starts as `Response::new(&mut [])`),
/// with httparse's default settings, as `Response::parse` uses.
pub fn response<'h, 'b>(
    resp: &mut Response<'h, 'b>,
    buf: &'b [u8],
    slots: &'h mut [MaybeUninit<Header<'b>>],
) -> httparse::Result<usize> {
    ParserConfig::default().parse_response_with_uninit_headers(resp, buf, slots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_as_the_initialized_entry_points_do() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\n\r\nok";
        let mut slots = header_slots::<8>();
        let mut resp = Response::new(&mut []);
        assert_eq!(
            response(&mut resp, head, &mut slots),
            Ok(httparse::Status::Complete(head.len() - 2))
        );
        let mut plain = [httparse::EMPTY_HEADER; 8];
        let mut expected = Response::new(&mut plain);
        expected.parse(head).expect("parse");
        assert_eq!(resp.code, expected.code);
        assert_eq!(resp.headers, expected.headers);

        let head = b"GET /a HTTP/1.1\r\nHost: b\r\n\r\n";
        let mut slots = header_slots::<1>();
        let mut req = Request::new(&mut []);
        assert!(matches!(
            request(&mut req, head, &mut slots),
            Ok(httparse::Status::Complete(_))
        ));
        assert_eq!(
            (req.method, req.path, req.headers.len()),
            (Some("GET"), Some("/a"), 1)
        );
        // Too many headers for the slots: the same error as with initialized slots.
        let head = b"GET / HTTP/1.1\r\nHost: b\r\nX: 1\r\n\r\n";
        let mut slots = header_slots::<1>();
        let mut req = Request::new(&mut []);
        assert_eq!(
            request(&mut req, head, &mut slots),
            Err(httparse::Error::TooManyHeaders)
        );
    }
}
