//! An HTTP message carried in one WebSocket message, parsed: start line, headers (names
//! lowercased) and body.

/// A parsed HTTP message (start line, headers, body) from a WebSocket message.
#[derive(Debug, Clone)]
pub struct Http {
    pub start: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Http {
    pub fn parse(text: &str) -> Http {
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no head: {text:?}"));
        let mut lines = head.split("\r\n");
        let start = lines.next().unwrap_or_default().to_string();
        let headers = lines
            .map(|l| {
                let (n, v) = l
                    .split_once(':')
                    .unwrap_or_else(|| panic!("bad header line {l:?}"));
                (n.trim().to_ascii_lowercase(), v.trim().to_string())
            })
            .collect();
        Http {
            start,
            headers,
            body: body.to_string(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn status(&self) -> u16 {
        self.start
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status line")
    }

    pub fn cseq(&self) -> u64 {
        self.header("cseq")
            .and_then(|v| v.parse().ok())
            .expect("a numeric CSeq")
    }
}
