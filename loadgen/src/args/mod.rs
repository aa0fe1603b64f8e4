//! Command line: the flags (`flags`), their value parsers (`parse`: `100k`,
//! `127.0.0.2-127.0.0.20`, `ws://host:port`), and the checked [`Config`] the workers run from.

mod config;
mod flags;
mod parse;

pub use self::config::{Config, MAX_PAYLOAD_BYTES, MIN_EVENT_BYTES, StreamPlan, Traffic};
pub use self::flags::{Args, Pattern, StreamKind};
