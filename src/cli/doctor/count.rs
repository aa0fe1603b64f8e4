//! The `--conns` value: a connection count, plain or with a `k` or `m` suffix.

/// Parse a connection count: `1000`, `100_000`, `100k`, `1m`, `1.5m` (k = 1,000,
/// m = 1,000,000; case-insensitive). The result must be a whole number ≥ 1.
pub fn parse_count(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a count (examples: 1000, 100k, 1m)");
    let t = text.trim().replace('_', "");
    let (number, scale) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1_000u64),
        Some('m' | 'M') => (&t[..t.len() - 1], 1_000_000u64),
        _ => (&t[..], 1u64),
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || number.ends_with('.')
    {
        return Err(bad());
    }
    let too_big = || format!("{text:?} is too large");
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_big())?
    };
    let mut value = whole.checked_mul(scale).ok_or_else(too_big)?;
    // The fraction, digit by digit, must land on a whole number of connections.
    let mut place = scale;
    for digit in frac.bytes().map(|b| u64::from(b - b'0')) {
        if place % 10 != 0 {
            return Err(format!("{text:?} is not a whole number of connections"));
        }
        place /= 10;
        value = value.checked_add(digit * place).ok_or_else(too_big)?;
    }
    if value == 0 {
        return Err("the count must be at least 1".to_owned());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_with_suffixes() {
        assert_eq!(parse_count("1000"), Ok(1000));
        assert_eq!(parse_count("100_000"), Ok(100_000));
        assert_eq!(parse_count("100k"), Ok(100_000));
        assert_eq!(parse_count("100K"), Ok(100_000));
        assert_eq!(parse_count("1m"), Ok(1_000_000));
        assert_eq!(parse_count("1M"), Ok(1_000_000));
        assert_eq!(parse_count("1.5m"), Ok(1_500_000));
        assert_eq!(parse_count("2.5k"), Ok(2_500));
        assert_eq!(parse_count(".5k"), Ok(500));
        assert_eq!(parse_count(" 10k "), Ok(10_000));
    }

    #[test]
    fn bad_counts_are_refused() {
        for bad in [
            "", "k", "abc", "10x", "1.5", "1.2345k", "-5", "1e6", "0", "0k", "1.k", "1..5k",
        ] {
            assert!(parse_count(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(parse_count("99999999999999999999").is_err());
        assert!(parse_count("99999999999999m").is_err());
    }
}
