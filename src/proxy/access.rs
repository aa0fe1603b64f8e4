//! The tokens file (`--tokens FILE`): which bearer token may register which names, and which
//! callers may reach which targets. Tokens are stored as SHA-256 hashes and compared in
//! constant time; the file is re-read on SIGHUP without touching live connections.
//!
//! ```toml
//! [[tokens]]
//! label = "team-a"                 # for logs; the token itself is never logged
//! sha256 = "<64 hex digits>"       # `httpws hash-token` prints it
//! names = ["team-a-*", "printer"]  # exact names, or a prefix ending in `*`; "*" is any
//! public = false                   # may not register public endpoints (default: may)
//!
//! [[rules]]
//! targets = ["team-a-*"]           # the first rule whose targets match decides
//! accept_from = ["team-a-*", "ops", "-internet-"]   # "-internet-": public ingress callers
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::proto::address::VirtualAddress;
use crate::proto::public_request::INTERNET_CALLER;
use crate::proxy::table::{CredentialHash, constant_time_eq};

/// Why the tokens file cannot be used (the proxy refuses to start, or keeps the old one on
/// SIGHUP).
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The file could not be read at all.
    #[error("reading {path}: {source}")]
    Read {
        /// The `--tokens` path.
        path: PathBuf,
        /// Why the read failed.
        source: std::io::Error,
    },
    /// The file is not TOML of the expected shape (unknown keys included).
    #[error("parsing {path}: {message}")]
    Parse {
        /// The `--tokens` path.
        path: PathBuf,
        /// The TOML parser's account, with line and column.
        message: String,
    },
    /// Well-formed TOML whose content is wrong: a bad hash or pattern, a token listed twice.
    #[error("{path}: {message}")]
    Invalid {
        /// The `--tokens` path.
        path: PathBuf,
        /// What is wrong and where (a token is named by its label, never by its hash).
        message: String,
    },
}

/// A registration the policy does not allow: the handshake answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No token, or one the file does not know (401).
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// A known token that is not allowed this name (403).
    #[error("this token may not register {0}")]
    Forbidden(String),
    /// A known token whose endpoints may not take calls from the internet (403).
    #[error("this token may not register a public endpoint (public = false in the tokens file)")]
    PublicForbidden,
}

impl Denied {
    /// The HTTP status of the refusal: 401 without a usable token, 403 for a known one.
    pub fn status(&self) -> u16 {
        match self {
            Denied::Unauthorized => 401,
            Denied::Forbidden(_) | Denied::PublicForbidden => 403,
        }
    }
}

/// A name or a name prefix: `bob`, `team-a-*`, or `*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamePattern {
    /// A name matched whole, lowercase (a valid address, or `-internet-`).
    Exact(String),
    /// The part before a trailing `*`, lowercase: every name that starts with it matches
    /// (the empty prefix, from `*`, matches all).
    Prefix(String),
}

impl NamePattern {
    fn parse(s: &str) -> Result<NamePattern, String> {
        let lower = s.to_ascii_lowercase();
        if lower == INTERNET_CALLER {
            // Not an address, but the name rules use for callers of the public ingress.
            return Ok(NamePattern::Exact(lower));
        }
        match lower.strip_suffix('*') {
            Some(prefix) if !prefix.contains('*') => Ok(NamePattern::Prefix(prefix.to_owned())),
            Some(_) => Err(format!("pattern {s:?}: only one trailing '*' is allowed")),
            None => VirtualAddress::parse(lower.as_bytes())
                .map(|_| NamePattern::Exact(lower))
                .map_err(|e| format!("pattern {s:?}: {e}")),
        }
    }

    /// Whether the canonical (lowercase) `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            NamePattern::Exact(exact) => exact == name,
            NamePattern::Prefix(prefix) => name.starts_with(prefix.as_str()),
        }
    }
}

fn any_matches(patterns: &[NamePattern], name: &str) -> bool {
    patterns.iter().any(|p| p.matches(name))
}

struct TokenEntry {
    label: String,
    hash: [u8; 32],
    names: Vec<NamePattern>,
    /// May register endpoints that take calls from the internet.
    public: bool,
}

struct Rule {
    targets: Vec<NamePattern>,
    accept_from: Vec<NamePattern>,
}

/// What a tokens file says. An empty policy (no file) is open: anyone may register any free
/// name and call anyone.
#[derive(Default)]
pub struct AccessPolicy {
    /// None: no tokens file, registration is open.
    tokens: Option<Vec<TokenEntry>>,
    rules: Vec<Rule>,
}

impl std::fmt::Debug for AccessPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Labels only: hashes are secrets' fingerprints and stay out of logs too.
        let labels: Option<Vec<&str>> = self
            .tokens
            .as_ref()
            .map(|t| t.iter().map(|e| e.label.as_str()).collect());
        f.debug_struct("AccessPolicy")
            .field("tokens", &labels)
            .field("rules", &self.rules.len())
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    #[serde(default)]
    tokens: Vec<TokenFormat>,
    #[serde(default)]
    rules: Vec<RuleFormat>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFormat {
    label: String,
    sha256: String,
    names: Vec<String>,
    #[serde(default = "public_by_default")]
    public: bool,
}

/// Tokens may register public endpoints unless their entry says `public = false`: an
/// endpoint is private until it asks, so the default only lets its owner choose.
fn public_by_default() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFormat {
    targets: Vec<String>,
    accept_from: Vec<String>,
}

/// The hex SHA-256 of a token, as the tokens file stores it.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl AccessPolicy {
    /// Read and check a tokens file.
    pub fn load(path: &Path) -> Result<AccessPolicy, AccessError> {
        let text = std::fs::read_to_string(path).map_err(|source| AccessError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|(parse, message)| {
            let path = path.to_owned();
            if parse {
                AccessError::Parse { path, message }
            } else {
                AccessError::Invalid { path, message }
            }
        })
    }

    /// Parse a tokens file's text. Err((true, _)) for TOML errors, (false, _) for content.
    fn parse(text: &str) -> Result<AccessPolicy, (bool, String)> {
        let file: FileFormat = toml::from_str(text).map_err(|e| (true, e.to_string()))?;
        let invalid = |m: String| (false, m);
        let patterns = |list: &[String]| -> Result<Vec<NamePattern>, (bool, String)> {
            list.iter()
                .map(|p| NamePattern::parse(p).map_err(invalid))
                .collect()
        };
        let mut tokens = Vec::with_capacity(file.tokens.len());
        for t in &file.tokens {
            let hash = parse_hex32(&t.sha256).ok_or_else(|| {
                invalid(format!(
                    "token {:?}: sha256 must be 64 hex digits (httpws hash-token prints it)",
                    t.label
                ))
            })?;
            if tokens.iter().any(|e: &TokenEntry| e.hash == hash) {
                return Err(invalid(format!("token {:?} is listed twice", t.label)));
            }
            tokens.push(TokenEntry {
                label: t.label.clone(),
                hash,
                names: patterns(&t.names)?,
                public: t.public,
            });
        }
        let rules = file
            .rules
            .iter()
            .map(|r| {
                Ok(Rule {
                    targets: patterns(&r.targets)?,
                    accept_from: patterns(&r.accept_from)?,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(AccessPolicy {
            tokens: Some(tokens),
            rules,
        })
    }

    /// Whether registration needs a token (a tokens file is in force).
    pub fn is_closed(&self) -> bool {
        self.tokens.is_some()
    }

    /// May the connection whose token hashes to `credential` register `address`?
    /// `assigned`: the proxy picked the name (path `/`), which any valid token may hold since
    /// nobody can choose it. Ok carries the token's label.
    /// `public`: the endpoint asked to take calls from the internet.
    pub fn authorize(
        &self,
        credential: Option<&CredentialHash>,
        address: &VirtualAddress,
        assigned: bool,
        public: bool,
    ) -> Result<Option<&str>, Denied> {
        let Some(tokens) = &self.tokens else {
            return Ok(None);
        };
        let credential = credential.ok_or(Denied::Unauthorized)?;
        // Every entry is compared, so the time taken does not depend on which one matches.
        let mut found = None;
        for entry in tokens {
            if constant_time_eq(&entry.hash, credential) {
                found = Some(entry);
            }
        }
        let entry = found.ok_or(Denied::Unauthorized)?;
        if public && !entry.public {
            return Err(Denied::PublicForbidden);
        }
        if assigned || any_matches(&entry.names, address.as_str()) {
            Ok(Some(entry.label.as_str()))
        } else {
            Err(Denied::Forbidden(address.to_string()))
        }
    }

    /// May `from` call `to` (both canonical)? The first rule whose targets match `to` decides;
    /// a target no rule names accepts everyone.
    pub fn may_call(&self, from: &str, to: &str) -> bool {
        match self.rules.iter().find(|r| any_matches(&r.targets, to)) {
            Some(rule) => any_matches(&rule.accept_from, from),
            None => true,
        }
    }
}

/// The policy in force, shared by all shards and replaced whole on reload. Shards keep their
/// own `Arc` and compare a generation number per use, so the hot path takes no lock.
pub struct PolicyCell {
    current: RwLock<Arc<AccessPolicy>>,
    generation: AtomicU64,
    path: Option<PathBuf>,
}

impl PolicyCell {
    /// Load `path` if given (an error here stops the proxy from starting).
    pub fn new(path: Option<PathBuf>) -> Result<PolicyCell, AccessError> {
        let policy = match &path {
            Some(p) => AccessPolicy::load(p)?,
            None => AccessPolicy::default(),
        };
        Ok(PolicyCell {
            current: RwLock::new(Arc::new(policy)),
            generation: AtomicU64::new(0),
            path,
        })
    }

    /// How many reloads have succeeded: a shard whose copy is older takes
    /// [`current`](Self::current) again.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The policy in force now (a short read lock, then a clone of the `Arc`).
    pub fn current(&self) -> Arc<AccessPolicy> {
        let guard = self.current.read().unwrap_or_else(|p| p.into_inner());
        Arc::clone(&guard)
    }

    /// Re-read the file. On error the old policy stays in force.
    pub fn reload(&self) -> Result<(), AccessError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let policy = Arc::new(AccessPolicy::load(path)?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = policy;
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }
}

impl std::fmt::Debug for PolicyCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyCell")
            .field("path", &self.path)
            .field("generation", &self.generation())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> AccessPolicy {
        let text = format!(
            r#"
[[tokens]]
label = "team-a"
sha256 = "{}"
names = ["team-a-*", "Printer"]

[[tokens]]
label = "ops"
sha256 = "{}"
names = ["*"]
public = false

[[rules]]
targets = ["team-a-*"]
accept_from = ["team-a-*", "ops"]

[[rules]]
targets = ["web"]
accept_from = ["-internet-"]

[[rules]]
targets = ["*"]
accept_from = ["*"]
"#,
            hash_token("secret-a"),
            hash_token("secret-ops")
        );
        AccessPolicy::parse(&text).map_err(|e| e.1).unwrap()
    }

    fn credential(token: &str) -> CredentialHash {
        Sha256::digest(token.as_bytes()).into()
    }

    fn addr(s: &str) -> VirtualAddress {
        VirtualAddress::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn registration_needs_an_allowed_token() {
        let p = policy();
        let a = credential("secret-a");
        assert_eq!(
            p.authorize(Some(&a), &addr("team-a-1"), false, false),
            Ok(Some("team-a"))
        );
        assert_eq!(
            p.authorize(Some(&a), &addr("printer"), false, false),
            Ok(Some("team-a"))
        );
        assert_eq!(
            p.authorize(Some(&a), &addr("team-b-1"), false, false),
            Err(Denied::Forbidden("team-b-1".into()))
        );
        assert_eq!(
            p.authorize(Some(&a), &addr("ep-1"), true, false),
            Ok(Some("team-a"))
        );
        assert_eq!(
            p.authorize(None, &addr("team-a-1"), false, false),
            Err(Denied::Unauthorized)
        );
        let wrong = credential("secret-b");
        assert_eq!(
            p.authorize(Some(&wrong), &addr("team-a-1"), false, false),
            Err(Denied::Unauthorized)
        );
        let ops = credential("secret-ops");
        assert!(
            p.authorize(Some(&ops), &addr("anything"), false, false)
                .is_ok()
        );
        assert_eq!(
            p.authorize(Some(&ops), &addr("anything"), false, true),
            Err(Denied::PublicForbidden),
            "public = false"
        );
        assert!(
            p.authorize(Some(&a), &addr("team-a-1"), false, true)
                .is_ok(),
            "public by default"
        );
        assert!(
            AccessPolicy::default()
                .authorize(None, &addr("x"), false, false)
                .is_ok()
        );
    }

    #[test]
    fn first_matching_rule_decides() {
        let p = policy();
        assert!(p.may_call("-internet-", "web"));
        assert!(!p.may_call("ops", "web"));
        assert!(!p.may_call("-internet-", "team-a-1"));
        assert!(p.may_call("team-a-2", "team-a-1"));
        assert!(p.may_call("ops", "team-a-1"));
        assert!(!p.may_call("team-b-1", "team-a-1"));
        assert!(p.may_call("team-b-1", "printer"));
        let open = AccessPolicy::default();
        assert!(open.may_call("x", "y"));
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        let cases = [
            (
                "[[tokens]]\nlabel='a'\nsha256='zz'\nnames=['a']\n",
                "64 hex",
            ),
            (
                "[[tokens]]\nlabel='a'\nsha256='00'\nnames=['a']\nextra=1\n",
                "unknown field",
            ),
            (
                "[[rules]]\ntargets=['a*b*']\naccept_from=['*']\n",
                "trailing",
            ),
            (
                "[[rules]]\ntargets=['bad_name']\naccept_from=['*']\n",
                "bad_name",
            ),
            ("tokens = 3", "invalid type"),
        ];
        for (text, expect) in cases {
            let err = AccessPolicy::parse(text)
                .err()
                .map(|e| e.1)
                .unwrap_or_default();
            assert!(err.contains(expect), "{text:?}: {err}");
        }
    }

    #[test]
    fn debug_shows_labels_not_hashes() {
        let shown = format!("{:?}", policy());
        assert!(shown.contains("team-a"));
        assert!(!shown.contains(&hash_token("secret-a")));
    }
}
