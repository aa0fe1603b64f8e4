//! Two well-behaved endpoints, `by-a` and `by-b`, beside an attack: each
//! [`check`](Bystanders::check) proves that the proxy still relays between them.

use super::proxy::Proxy;
use super::ws::{Endpoint, connect_with};

/// Two well-behaved endpoints, `by-a` and `by-b`; [`check`](Self::check) proves the proxy
/// still relays between them.
pub struct Bystanders {
    pub a: Endpoint,
    pub b: Endpoint,
    next_cseq: u64,
}

impl Bystanders {
    pub fn register(proxy: &Proxy) -> Bystanders {
        Self::register_with(proxy, &[])
    }

    pub fn register_with(proxy: &Proxy, headers: &[(&str, &str)]) -> Bystanders {
        let a = connect_with(proxy, "/by-a", headers).expect("register by-a");
        let b = connect_with(proxy, "/by-b", headers).expect("register by-b");
        let mut by = Bystanders { a, b, next_cseq: 1 };
        by.check();
        by
    }

    /// One request by-a → by-b, answered by by-b: by-b's next message must be exactly that
    /// request and by-a's next message exactly its answer, with by-a's CSeq.
    #[track_caller]
    pub fn check(&mut self) {
        let cseq = self.next_cseq;
        self.next_cseq += 1;
        let path = format!("/bystander/{cseq}");
        self.a.request("by-b", cseq, &path);
        let seen = self.b.recv_http();
        assert_eq!(
            seen.start,
            format!("GET {path} HTTP/1.1"),
            "by-b expected the bystander request next, got {seen:?}"
        );
        assert_eq!(seen.all("httpws-from"), vec!["by-a"]);
        let body = format!("bystander answer {cseq}");
        self.b.send(&format!(
            "HTTP/1.1 200 OK\r\nCSeq: {}\r\nContent-Length: {}\r\n\r\n{body}",
            seen.cseq(),
            body.len()
        ));
        let response = self.a.recv_http();
        assert_eq!(response.status(), 200, "bystander answer: {response:?}");
        assert_eq!(response.cseq(), cseq, "bystander CSeq: {response:?}");
        assert_eq!(response.body, body);
    }
}
