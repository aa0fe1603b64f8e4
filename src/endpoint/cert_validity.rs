//! The validity period of an X.509 certificate, read from its DER: the one check a pinned
//! certificate still needs (see [`super::pinned`]), which webpki does only as part of the
//! chain checks a pinned certificate is exempt from.
//!
//! Only the path to `tbsCertificate.validity` is walked (RFC 5280 §4.1): every length is
//! checked against what is left, so a malformed certificate is an error, never a panic.

use rustls::CertificateError;
use rustls::pki_types::UnixTime;

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
/// `[0] EXPLICIT Version`, present in every v2/v3 certificate.
const VERSION: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const SECONDS_PER_DAY: u64 = 86_400;

/// Fail unless `now` lies within the certificate's notBefore..=notAfter.
pub fn check(der: &[u8], now: UnixTime) -> Result<(), CertificateError> {
    let (not_before, not_after) = validity(der).ok_or(CertificateError::BadEncoding)?;
    let (not_before, not_after) = (
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(not_before)),
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(not_after)),
    );
    if now < not_before {
        return Err(CertificateError::NotValidYetContext {
            time: now,
            not_before,
        });
    }
    if now > not_after {
        return Err(CertificateError::ExpiredContext {
            time: now,
            not_after,
        });
    }
    Ok(())
}

/// (notBefore, notAfter) in seconds since the Unix epoch.
fn validity(der: &[u8]) -> Option<(u64, u64)> {
    let (certificate, _) = element(der, SEQUENCE)?;
    let (mut tbs, _) = element(certificate, SEQUENCE)?;
    if tbs.first() == Some(&VERSION) {
        tbs = element(tbs, VERSION)?.1;
    }
    let (_serial, rest) = element(tbs, INTEGER)?;
    let (_signature_algorithm, rest) = element(rest, SEQUENCE)?;
    let (_issuer, rest) = element(rest, SEQUENCE)?;
    let (validity, _) = element(rest, SEQUENCE)?;
    let (not_before, rest) = time(validity)?;
    let (not_after, _) = time(rest)?;
    (not_before <= not_after).then_some((not_before, not_after))
}

/// One DER element with tag `tag` at the start of `input`: (its content, what follows).
fn element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&first, rest) = input.split_first()?;
    if first != tag {
        return None;
    }
    let (&len0, rest) = rest.split_first()?;
    let (len, rest) = match len0 {
        n if n < 0x80 => (usize::from(n), rest),
        // Long form: 1 to 4 length bytes are plenty for any certificate.
        n @ 0x81..=0x84 => {
            let count = usize::from(n & 0x7f);
            let bytes = rest.get(..count)?;
            let len = bytes
                .iter()
                .fold(0usize, |acc, &b| acc << 8 | usize::from(b));
            (len, &rest[count..])
        }
        _ => return None,
    };
    let content = rest.get(..len)?;
    Some((content, &rest[len..]))
}

/// A UTCTime (`YYMMDDHHMMSSZ`, 1950–2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`), the only
/// forms RFC 5280 §4.1.2.5 allows, as Unix seconds.
fn time(input: &[u8]) -> Option<(u64, &[u8])> {
    let tag = *input.first()?;
    let (text, rest) = element(input, tag)?;
    let (year, digits) = match (tag, text.len()) {
        (UTC_TIME, 13) => {
            let yy = number(&text[..2])?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &text[2..])
        }
        (GENERALIZED_TIME, 15) => (number(&text[..4])?, &text[4..]),
        _ => return None,
    };
    if digits.last() != Some(&b'Z') {
        return None;
    }
    let field = |i: usize| number(&digits[2 * i..2 * i + 2]);
    let (month, day, hour, minute, second) =
        (field(0)?, field(1)?, field(2)?, field(3)?, field(4)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_since_epoch(year, month, day)?;
    let seconds = days * SECONDS_PER_DAY + hour * 3600 + minute * 60 + second;
    Some((seconds, rest))
}

/// ASCII decimal digits as a number.
fn number(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
    })
}

/// Days from 1970-01-01 to the given date (proleptic Gregorian; years before 1970 are not
/// certificate dates we need): Howard Hinnant's `days_from_civil`.
fn days_since_epoch(year: u64, month: u64, day: u64) -> Option<u64> {
    let y = if month <= 2 {
        year.checked_sub(1)?
    } else {
        year
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).checked_sub(719_468)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn cert(not_before: (i32, u8, u8), not_after: (i32, u8, u8)) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn at(secs: u64) -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs(secs))
    }

    #[test]
    fn reads_both_time_forms() {
        // 2001-02-03 (UTCTime) to 2051-06-07 (GeneralizedTime, from 2050 on).
        let der = cert((2001, 2, 3), (2051, 6, 7));
        assert_eq!(validity(&der), Some((981_158_400, 2_569_708_800)));
        assert!(check(&der, at(981_158_400)).is_ok());
        assert!(matches!(
            check(&der, at(981_158_399)),
            Err(CertificateError::NotValidYetContext { .. })
        ));
        assert!(matches!(
            check(&der, at(2_569_708_801)),
            Err(CertificateError::ExpiredContext { .. })
        ));
    }

    #[test]
    fn epoch_arithmetic() {
        assert_eq!(days_since_epoch(1970, 1, 1), Some(0));
        assert_eq!(days_since_epoch(2000, 3, 1), Some(11_017));
        assert_eq!(days_since_epoch(2024, 2, 29), Some(19_782));
        assert_eq!(days_since_epoch(1969, 12, 31), None);
    }

    #[test]
    fn malformed_certificates_are_errors() {
        let der = cert((2001, 2, 3), (2051, 6, 7));
        for cut in 0..der.len() {
            // Every truncation either still holds the validity or is refused, never a panic.
            let _ = validity(&der[..cut]);
        }
        assert_eq!(validity(b""), None);
        assert_eq!(validity(&[0x30, 0x85, 1, 2, 3, 4, 5]), None);
        assert!(matches!(
            check(b"junk", UnixTime::now()),
            Err(CertificateError::BadEncoding)
        ));
    }
}
