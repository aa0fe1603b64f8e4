//! Virtual addresses: the names endpoints register under and callers put in `Host:`.
//!
//! The grammar is DNS host-name rules (`docs/protocol.md` §1, "Address grammar"): labels of
//! `[a-z0-9-]`, 1–63 bytes each, not starting or ending with `-`, joined by `.`, at most 253
//! bytes in all. Names compare case-insensitively, so they are stored lowercase and every
//! comparison after parsing is a plain byte comparison.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// Longest address, in bytes (the DNS limit on a host name without its trailing dot).
pub const MAX_ADDRESS_LEN: usize = 253;
/// Longest label between two dots, in bytes (the DNS limit).
pub const MAX_LABEL_LEN: usize = 63;
/// Most decimal digits a port may have in a `Host` header (`65535`).
const MAX_PORT_DIGITS: usize = 5;

/// FNV-1a 64-bit offset basis and prime: a fixed, seedless hash, so the shard that owns an
/// address is the same on every run and every thread.
const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Why a byte string is not a virtual address.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum AddressError {
    /// No bytes at all.
    #[error("address is empty")]
    Empty,
    /// Longer than [`MAX_ADDRESS_LEN`]; carries the length found, in bytes.
    #[error("address is {0} bytes long, more than {max}", max = MAX_ADDRESS_LEN)]
    TooLong(usize),
    /// A label of zero bytes: a leading, trailing or doubled `.`.
    #[error("address has an empty label (leading, trailing or doubled '.')")]
    EmptyLabel,
    /// A label longer than [`MAX_LABEL_LEN`]; carries its length, in bytes.
    #[error("address label is {0} bytes long, more than {max}", max = MAX_LABEL_LEN)]
    LabelTooLong(usize),
    /// A byte other than an ASCII letter, digit, `-` or `.`; carries the first one found.
    #[error("address contains the invalid character '{}'", std::ascii::escape_default(*.0))]
    InvalidChar(u8),
    /// A label that begins or ends with `-`, which DNS host names forbid.
    #[error("address label starts or ends with '-'")]
    HyphenAtEdge,
    /// The `:port` after a `Host` name is not 1–5 digits up to 65535.
    #[error("port in Host is not a decimal number from 0 to 65535")]
    BadPort,
}

/// A virtual address in canonical (lowercase) form. Cheap to clone (`Arc<str>` inside).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VirtualAddress(Arc<str>);

impl VirtualAddress {
    /// DNS host-name rules: labels of `[a-z0-9-]` (ASCII uppercase accepted and lowered),
    /// 1..=63 chars, not starting or ending with `-`, joined by `.`, total 1..=253. No
    /// trailing dot.
    pub fn parse(s: &[u8]) -> Result<Self, AddressError> {
        Self::validate(s)?;
        match std::str::from_utf8(s) {
            // The common case (already lowercase) costs exactly one allocation.
            Ok(text) if !text.bytes().any(|b| b.is_ascii_uppercase()) => Ok(Self(Arc::from(text))),
            Ok(text) => Ok(Self(Arc::from(text.to_ascii_lowercase()))),
            // validate() admits only ASCII, so this arm cannot be taken; it is an error rather
            // than a panic so that no input can ever bring a shard down.
            Err(_) => Err(AddressError::InvalidChar(
                s.iter().copied().find(|b| !b.is_ascii()).unwrap_or(0),
            )),
        }
    }

    /// Validate without allocating.
    pub fn validate(s: &[u8]) -> Result<(), AddressError> {
        if s.is_empty() {
            return Err(AddressError::Empty);
        }
        // Checked before the label walk so that an oversized input costs O(1).
        if s.len() > MAX_ADDRESS_LEN {
            return Err(AddressError::TooLong(s.len()));
        }
        s.split(|&b| b == b'.').try_for_each(validate_label)
    }

    /// From a `Host` header value: trims optional whitespace, strips an optional `:port`
    /// (1–5 ASCII digits, at most 65535; the port is ignored), then [`parse`](Self::parse).
    pub fn from_host_header(value: &[u8]) -> Result<Self, AddressError> {
        Self::parse(host_part(value)?)
    }

    /// The canonical (lowercase) name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Owner shard: FNV-1a 64 over the canonical bytes, modulo `shards` (`shards >= 1`; 0 is
    /// treated as 1 rather than dividing by zero). Stable across runs.
    pub fn shard_index(&self, shards: usize) -> usize {
        owner_shard(self.0.as_bytes(), shards)
    }
}

/// Lets the address table be searched with a borrowed canonical name. `Hash` and `Eq` of
/// `Arc<str>` are those of `str`, so the two agree as `Borrow` requires.
impl std::borrow::Borrow<str> for VirtualAddress {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// A canonical address on the stack: what the relay parses from every request's `Host`, so
/// routing a request allocates nothing.
#[derive(Clone, Copy)]
pub struct HostAddress {
    len: u8,
    bytes: [u8; MAX_ADDRESS_LEN],
}

impl HostAddress {
    /// The same rules as [`VirtualAddress::from_host_header`], without allocating.
    pub fn from_host_header(value: &[u8]) -> Result<Self, AddressError> {
        let host = host_part(value)?;
        VirtualAddress::validate(host)?;
        let mut bytes = [0u8; MAX_ADDRESS_LEN];
        bytes[..host.len()].copy_from_slice(host);
        bytes[..host.len()].make_ascii_lowercase();
        // validate() bounds the length by MAX_ADDRESS_LEN (253), which fits in a u8.
        Ok(Self {
            len: host.len() as u8,
            bytes,
        })
    }

    /// The canonical (lowercase) name.
    pub fn as_str(&self) -> &str {
        // validate() admits only ASCII, so this never falls back.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }

    /// Same as [`VirtualAddress::shard_index`].
    pub fn shard_index(&self, shards: usize) -> usize {
        owner_shard(&self.bytes[..usize::from(self.len)], shards)
    }
}

impl fmt::Debug for HostAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostAddress({:?})", self.as_str())
    }
}

fn owner_shard(canonical: &[u8], shards: usize) -> usize {
    let shards = shards.max(1) as u64;
    let hash = canonical.iter().fold(FNV_OFFSET_BASIS, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    });
    // The remainder is below `shards`, which came from a usize, so the cast is lossless.
    (hash % shards) as usize
}

/// The host part of a `Host` value: trimmed, with an optional `:port` checked and dropped.
/// (The name itself is not checked here: an IP literal or a domain is not an address.)
pub fn host_part(value: &[u8]) -> Result<&[u8], AddressError> {
    let value = value.trim_ascii();
    // The first ':' splits: a host name never contains one, so "a:b:80" fails as a bad port
    // instead of being guessed at.
    let mut parts = value.splitn(2, |&b| b == b':');
    let host = parts.next().unwrap_or_default();
    if let Some(port) = parts.next() {
        validate_port(port)?;
    }
    Ok(host)
}

/// One label between dots: length first (cheap), then the alphabet, then the hyphen rule.
fn validate_label(label: &[u8]) -> Result<(), AddressError> {
    if label.is_empty() {
        return Err(AddressError::EmptyLabel);
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(AddressError::LabelTooLong(label.len()));
    }
    if let Some(&bad) = label
        .iter()
        .find(|&&b| !(b.is_ascii_alphanumeric() || b == b'-'))
    {
        return Err(AddressError::InvalidChar(bad));
    }
    if label.first() == Some(&b'-') || label.last() == Some(&b'-') {
        return Err(AddressError::HyphenAtEdge);
    }
    Ok(())
}

/// Checks a `Host` port: 1–5 ASCII digits, at most 65535.
pub fn validate_port(port: &[u8]) -> Result<(), AddressError> {
    if port.is_empty() || port.len() > MAX_PORT_DIGITS || !port.iter().all(u8::is_ascii_digit) {
        return Err(AddressError::BadPort);
    }
    // At most five digits, so this cannot overflow a u32.
    let value = port
        .iter()
        .fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0'));
    if value > u32::from(u16::MAX) {
        return Err(AddressError::BadPort);
    }
    Ok(())
}

impl fmt::Display for VirtualAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for VirtualAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("VirtualAddress")
            .field(&self.as_str())
            .finish()
    }
}

impl AsRef<str> for VirtualAddress {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for VirtualAddress {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<VirtualAddress, AddressError> {
        VirtualAddress::parse(s.as_bytes())
    }

    #[test]
    fn accepts_host_names() {
        for ok in [
            "bob",
            "a",
            "alice.example",
            "x-1.y-2.z",
            "0",
            "123",
            "a.b.c.d.e",
        ] {
            assert_eq!(
                parse(ok).map(|a| a.as_str().to_owned()),
                Ok(ok.to_owned()),
                "{ok}"
            );
            assert_eq!(VirtualAddress::validate(ok.as_bytes()), Ok(()), "{ok}");
        }
    }

    #[test]
    fn uppercase_is_lowered_and_compares_equal() {
        let upper = parse("Alice.EXAMPLE").expect("valid");
        assert_eq!(upper.as_str(), "alice.example");
        assert_eq!(upper, parse("alice.example").expect("valid"));
        assert_eq!(upper.to_string(), "alice.example");
        assert_eq!(
            format!("{:?}", parse("bob").expect("valid")),
            "VirtualAddress(\"bob\")"
        );
        assert_eq!(
            "BoB".parse::<VirtualAddress>().map(|a| a.to_string()),
            Ok("bob".into())
        );
        assert_eq!(AsRef::<str>::as_ref(&upper), "alice.example");
    }

    #[test]
    fn label_length_limits() {
        let label63 = "a".repeat(63);
        let label64 = "a".repeat(64);
        assert!(parse(&label63).is_ok());
        assert_eq!(parse(&label64), Err(AddressError::LabelTooLong(64)));
        assert_eq!(
            parse(&format!("x.{label64}.y")),
            Err(AddressError::LabelTooLong(64))
        );
    }

    #[test]
    fn total_length_limits() {
        // 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253.
        let l63 = "a".repeat(63);
        let name253 = format!("{l63}.{l63}.{l63}.{}", "b".repeat(61));
        assert_eq!(name253.len(), 253);
        assert!(parse(&name253).is_ok());
        let name254 = format!("{name253}c");
        assert_eq!(parse(&name254), Err(AddressError::TooLong(254)));
        assert_eq!(
            parse(&"a".repeat(10_000)),
            Err(AddressError::TooLong(10_000))
        );
    }

    #[test]
    fn grammar_errors() {
        assert_eq!(parse(""), Err(AddressError::Empty));
        assert_eq!(parse("a..b"), Err(AddressError::EmptyLabel));
        assert_eq!(parse(".a"), Err(AddressError::EmptyLabel));
        assert_eq!(
            parse("bob."),
            Err(AddressError::EmptyLabel),
            "no trailing dot"
        );
        assert_eq!(parse("."), Err(AddressError::EmptyLabel));
        assert_eq!(parse("-bob"), Err(AddressError::HyphenAtEdge));
        assert_eq!(parse("bob-"), Err(AddressError::HyphenAtEdge));
        assert_eq!(parse("a.-b.c"), Err(AddressError::HyphenAtEdge));
        assert_eq!(parse("-"), Err(AddressError::HyphenAtEdge));
        assert_eq!(parse("b-o-b"), Ok(VirtualAddress(Arc::from("b-o-b"))));
        assert_eq!(parse("a_b"), Err(AddressError::InvalidChar(b'_')));
        assert_eq!(parse("a b"), Err(AddressError::InvalidChar(b' ')));
        assert_eq!(parse("bob:80"), Err(AddressError::InvalidChar(b':')));
        assert_eq!(parse("bob/x"), Err(AddressError::InvalidChar(b'/')));
        assert_eq!(parse("b\u{e9}b"), Err(AddressError::InvalidChar(0xc3)));
        assert_eq!(
            VirtualAddress::parse(b"\xff"),
            Err(AddressError::InvalidChar(0xff))
        );
        assert_eq!(
            VirtualAddress::validate(b"a\0"),
            Err(AddressError::InvalidChar(0))
        );
    }

    #[test]
    fn error_messages_are_readable() {
        assert_eq!(
            AddressError::InvalidChar(b'_').to_string(),
            "address contains the invalid character '_'"
        );
        assert_eq!(
            AddressError::InvalidChar(0xff).to_string(),
            "address contains the invalid character '\\xff'"
        );
        assert!(AddressError::TooLong(300).to_string().contains("300"));
        assert!(AddressError::TooLong(300).to_string().contains("253"));
    }

    #[test]
    fn host_header_strips_port_and_whitespace() {
        let host = |v: &str| VirtualAddress::from_host_header(v.as_bytes());
        assert_eq!(host("bob:8080").map(|a| a.to_string()), Ok("bob".into()));
        assert_eq!(host(" \tBob \t").map(|a| a.to_string()), Ok("bob".into()));
        assert_eq!(host("bob:0").map(|a| a.to_string()), Ok("bob".into()));
        assert_eq!(host("bob:65535").map(|a| a.to_string()), Ok("bob".into()));
        assert_eq!(host("a.b:1").map(|a| a.to_string()), Ok("a.b".into()));
        assert_eq!(host("bob:99999"), Err(AddressError::BadPort));
        assert_eq!(host("bob:65536"), Err(AddressError::BadPort));
        assert_eq!(host("bob:123456"), Err(AddressError::BadPort));
        assert_eq!(host("bob:"), Err(AddressError::BadPort));
        assert_eq!(host("bob:8o"), Err(AddressError::BadPort));
        assert_eq!(host("bob:+80"), Err(AddressError::BadPort));
        assert_eq!(host("a:b:80"), Err(AddressError::BadPort));
        assert_eq!(host("[::1]:80"), Err(AddressError::BadPort));
        assert_eq!(host(":80"), Err(AddressError::Empty));
        assert_eq!(host("   "), Err(AddressError::Empty));
        assert_eq!(host("bob :80"), Err(AddressError::InvalidChar(b' ')));
    }

    #[test]
    fn shard_index_is_stable_fnv1a() {
        // Reference FNV-1a 64 values: "" is the offset basis; "a" is a published test vector.
        let a = parse("a").expect("valid");
        assert_eq!(
            a.shard_index(usize::MAX),
            (0xaf63_dc4c_8601_ec8c_u64 % usize::MAX as u64) as usize
        );
        let bob = parse("BOB").expect("valid");
        assert_eq!(bob.shard_index(1), 0);
        assert_eq!(bob.shard_index(0), 0, "zero shards is treated as one");
        assert_eq!(
            bob.shard_index(7),
            parse("bob").expect("valid").shard_index(7)
        );
        for shards in 1..=16 {
            assert!(bob.shard_index(shards) < shards);
        }
    }

    #[test]
    fn host_address_agrees_with_virtual_address() {
        for host in [
            &b"bob"[..],
            b"BoB:8080",
            b" a.B-c ",
            b"x:1",
            b"-bad",
            b"a..b",
            b"a:b:80",
            b"",
        ] {
            let owned = VirtualAddress::from_host_header(host);
            let stack = HostAddress::from_host_header(host);
            match (owned, stack) {
                (Ok(o), Ok(s)) => {
                    assert_eq!(o.as_str(), s.as_str());
                    for shards in 1..9 {
                        assert_eq!(o.shard_index(shards), s.shard_index(shards));
                    }
                }
                (Err(a), Err(b)) => assert_eq!(a, b),
                (o, s) => panic!("{host:?}: {o:?} vs {s:?}"),
            }
        }
    }
}
