//! Reading one value from the host's `/proc` and `/sys` files: text, a number, or one of the
//! kernel's lists of ranges. A file that is missing or unreadable gives "unknown (path: why)",
//! never an error, so that doctor runs anywhere (containers, other kernels).

/// A value read from the host, or why it is unknown.
pub type Read<T> = Result<T, String>;

pub(super) fn read_text(path: &str) -> Read<String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "not present".to_owned(),
                std::io::ErrorKind::PermissionDenied => "not readable".to_owned(),
                _ => e.to_string(),
            };
            format!("unknown ({path}: {why})")
        })
}

pub(super) fn read_u64(path: &str) -> Read<u64> {
    let text = read_text(path)?;
    text.parse()
        .map_err(|_| format!("unknown ({path}: unexpected {text:?})"))
}

/// Parse a kernel list of numbers and ranges ("8080,9000-9100", "0-3,6"); empty is empty.
pub fn parse_ranges(text: &str) -> Option<Vec<(u64, u64)>> {
    text.trim()
        .split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| {
            let part = part.trim();
            match part.split_once('-') {
                Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
                None => part.parse().ok().map(|n| (n, n)),
            }
        })
        .collect()
}
