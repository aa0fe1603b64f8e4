//! URL schemes, which RFC 3986 §3.1 makes case-insensitive (`HTTP://bob` is `http://bob`):
//! one rule for `--proxy`, `--serve` and the absolute-form targets of requests.

/// What follows `prefix` (a lowercase scheme and its `://`) in `url`, if `url` starts with it
/// in any ASCII case.
pub fn strip<'a>(url: &'a str, prefix: &str) -> Option<&'a str> {
    let head = url.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &url[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_in_any_case() {
        assert_eq!(strip("HTTP://bob/x", "http://"), Some("bob/x"));
        assert_eq!(strip("wss://relay", "wss://"), Some("relay"));
        assert_eq!(strip("http:/x", "http://"), None);
        assert_eq!(strip("https://bob", "http://"), None);
        assert_eq!(strip("é", "http://"), None);
    }
}
