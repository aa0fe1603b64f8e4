//! The request target a local service gets from the agent, confined under the path of
//! `--serve http://host/base`.
//!
//! The agent prefixes the base to every path, so a caller's `..` must never climb out of it:
//! `/base` + `/../admin` is `/admin` to any service that normalises paths. Dot segments are
//! removed first (RFC 3986 §5.2.4 `remove_dot_segments`, with `%2e` read as the `.` it
//! stands for, RFC 3986 §6.2.2.2), so the prefixed path holds none. What a service might
//! still read as one is refused: a dot segment behind a separator that is not `/` to us but
//! may be to a service (`%2f`, `%5c`, `\`) or before a path parameter (`..;x`, which servlet
//! containers read as `..`). The relay and the public ingress both arrive here through the
//! tunnel, so this is the one place the rule is applied.

use crate::endpoint::scheme;

/// Why a request target is not sent to the service (answered `400 bad-request`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    /// Authority-form (`host:port`), a scheme other than http(s), or no target at all.
    #[error("the request target must be a /path or an http:// URL")]
    Form,
    /// `*` for anything but `OPTIONS`, or with a base path (which `*` cannot stay under).
    #[error("the request target * is only for OPTIONS, to a service served without a base path")]
    Asterisk,
    /// A dot segment that a service could see behind `%2f`, `%5c`, `\` or `;`.
    #[error("the request path hides a dot segment behind %2f, %5c, \\ or ;")]
    HiddenDotSegment,
}

/// The target to send to the service: `base` (`""` or `/…` without a trailing `/`), the
/// request's path with its dot segments removed, and its query as it came. An absolute-form
/// target loses its scheme and authority (the service is fixed; they are never followed).
pub fn service_target(method: &str, target: &str, base: &str) -> Result<String, TargetError> {
    if target == "*" {
        return if method.eq_ignore_ascii_case("OPTIONS") && base.is_empty() {
            Ok("*".to_owned())
        } else {
            Err(TargetError::Asterisk)
        };
    }
    let path_and_query = origin_form(target)?;
    let (path, query) = match path_and_query.find('?') {
        Some(i) => path_and_query.split_at(i),
        None => (path_and_query, ""),
    };
    let mut out = String::with_capacity(base.len() + path_and_query.len() + 1);
    out.push_str(base);
    out.push_str(&remove_dot_segments(path)?);
    out.push_str(query);
    Ok(out)
}

/// The path and query of an origin-form (`/p?q`) or absolute-form (`http://a/p?q`) target.
/// `http://a` has an empty path and `http://a?q` only a query: both are the root's.
fn origin_form(target: &str) -> Result<&str, TargetError> {
    if target.starts_with('/') {
        return Ok(target);
    }
    let rest = ["http://", "https://"]
        .iter()
        .find_map(|s| scheme::strip(target, s))
        .ok_or(TargetError::Form)?;
    Ok(rest.find(['/', '?']).map_or("", |i| &rest[i..]))
}

/// `path` (empty, or starting with `/`) without `.` and `..` segments, `%2e` counting as
/// `.`; other segments keep their bytes. A `..` at the root stays at the root; the result
/// starts with `/`.
fn remove_dot_segments(path: &str) -> Result<String, TargetError> {
    let mut kept: Vec<&str> = Vec::new();
    let mut segments = path.split('/').skip(1).peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match dots(segment) {
            Some(1) => {}
            Some(_) => {
                kept.pop();
            }
            None => {
                if hides_dot_segment(segment) {
                    return Err(TargetError::HiddenDotSegment);
                }
                kept.push(segment);
                continue;
            }
        }
        // `/a/..` and `/a/.` name the directory: `/` and `/a/`, as RFC 3986 writes them.
        if last {
            kept.push("");
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &kept {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// `Some(1)` for a `.` segment, `Some(2)` for `..` (either dot possibly written `%2e`).
fn dots(segment: &str) -> Option<u8> {
    let mut rest = segment.as_bytes();
    let mut n = 0u8;
    while !rest.is_empty() {
        rest = if rest[0] == b'.' {
            &rest[1..]
        } else if rest.len() >= 3 && rest[0] == b'%' && rest[1] == b'2' && rest[2] | 0x20 == b'e' {
            &rest[3..]
        } else {
            return None;
        };
        n += 1;
        if n > 2 {
            return None;
        }
    }
    (n > 0).then_some(n)
}

/// Whether a segment that is not a dot segment to us holds one for a service that splits at
/// `%2f`, `%5c` or `\`, or drops a `;` path parameter.
fn hides_dot_segment(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i <= bytes.len() {
        let separator = if i == bytes.len() || bytes[i] == b'\\' {
            Some(1)
        } else if bytes[i] == b'%'
            && bytes.len() >= i + 3
            && ((bytes[i + 1] == b'2' && bytes[i + 2] | 0x20 == b'f')
                || (bytes[i + 1] == b'5' && bytes[i + 2] | 0x20 == b'c'))
        {
            Some(3)
        } else {
            None
        };
        match separator {
            Some(len) => {
                let part = &segment[start..i];
                let before_parameter = part.split(';').next().unwrap_or(part);
                if dots(before_parameter).is_some() {
                    return true;
                }
                i += len;
                start = i;
            }
            None => i += 1,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn under(base: &str, target: &str) -> Result<String, TargetError> {
        service_target("GET", target, base)
    }

    #[test]
    fn rfc_3986_examples() {
        // RFC 3986 §5.4 normal and abnormal examples, as absolute paths.
        for (input, want) in [
            ("/a/b/c/./../../g", "/a/g"),
            ("/mid/content=5/../6", "/mid/6"),
            ("/a/b/c/../../../g", "/g"),
            ("/a/b/c/../../../../g", "/g"),
            ("/./g", "/g"),
            ("/../g", "/g"),
            ("/g.", "/g."),
            ("/.g", "/.g"),
            ("/g..", "/g.."),
            ("/..g", "/..g"),
            ("/a/b/./../g;x=1/./y", "/a/g;x=1/y"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/..", "/"),
            ("/.", "/"),
            ("/", "/"),
            ("//x/../y", "//y"),
            ("/a//../b", "/a/b"),
            ("/a/b/", "/a/b/"),
        ] {
            assert_eq!(under("", input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn never_leaves_the_base() {
        for (input, want) in [
            ("/../admin", "/api/admin"),
            ("/x/../../admin?q=/../", "/api/admin?q=/../"),
            ("/%2e%2e/admin", "/api/admin"),
            ("/%2E./admin", "/api/admin"),
            ("/.%2e/.%2E/admin", "/api/admin"),
            ("/%2e/admin", "/api/admin"),
            ("/..", "/api/"),
            ("/", "/api/"),
            ("/echo?q=1", "/api/echo?q=1"),
            ("http://bob/../admin", "/api/admin"),
            ("HTTP://bob", "/api/"),
            ("http://bob?q", "/api/?q"),
            ("https://bob/x", "/api/x"),
            // Not dot segments: kept as they came.
            ("/a%2Fb/c%5cd", "/api/a%2Fb/c%5cd"),
            ("/file%2etxt", "/api/file%2etxt"),
            ("/...", "/api/..."),
            ("/a;b", "/api/a;b"),
        ] {
            assert_eq!(under("/api", input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn dot_segments_behind_other_separators_are_refused() {
        for input in [
            "/..%2fadmin",
            "/..%2Fadmin",
            "/x/%2e%2e%2f%2e%2e%2fadmin",
            "/..%5cadmin",
            "/..%5Cadmin",
            "/..\\admin",
            "/a\\..\\..\\admin",
            "/..;/admin",
            "/.;x/admin",
            "/%2e%2e;jsessionid=1/admin",
            "/a%2f..",
        ] {
            assert_eq!(
                under("/api", input),
                Err(TargetError::HiddenDotSegment),
                "{input}"
            );
        }
    }

    #[test]
    fn other_target_forms() {
        assert_eq!(service_target("OPTIONS", "*", "").as_deref(), Ok("*"));
        assert_eq!(
            service_target("OPTIONS", "*", "/api"),
            Err(TargetError::Asterisk)
        );
        assert_eq!(service_target("GET", "*", ""), Err(TargetError::Asterisk));
        for form in ["bob:80", "bob", "ftp://bob/x", "http:/x", "", "?q"] {
            assert_eq!(under("/api", form), Err(TargetError::Form), "{form:?}");
        }
    }
}
