//! Decimal numbers in heads (`Content-Length`, `CSeq`, status codes): read strictly, written
//! without allocating.
//!
//! Reading is hand-written because `str::parse::<u64>` accepts a leading `+`, and a length
//! two parsers could read differently is a smuggling shape (RFC 9112 §6.3). Writing is
//! `itoa`'s.

use bytes::BytesMut;

/// A decimal u64: ASCII digits only (no sign, no spaces, no hex), at least one, no overflow.
pub fn parse_u64(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// Append `n` in decimal.
pub fn put_u64(dst: &mut BytesMut, n: u64) {
    dst.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Number of decimal digits in `n` (what [`put_u64`] will append).
pub fn len_u64(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_reading_and_writing() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"007"), Some(7));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b""[..],
            b"+5",
            b"-1",
            b" 5",
            b"5 ",
            b"0x10",
            b"1e3",
            b"18446744073709551616",
        ] {
            assert_eq!(parse_u64(bad), None, "{bad:?}");
        }
        for n in [0, 9, 10, 99, 100, 12_345, u64::MAX] {
            let mut dst = BytesMut::new();
            put_u64(&mut dst, n);
            assert_eq!(dst, n.to_string().as_bytes());
            assert_eq!(len_u64(n), dst.len());
        }
    }
}
