//! The endpoint agent's tunnel life and start-up as a new user meets them, with the real
//! `httpws` binary (and the real proxy on both io drivers where one is involved):
//!
//! - [`refusals`]: the proxy's refusal reason is shown, and only refusals that can heal
//!   are retried;
//! - [`restart`]: an assigned name after a proxy restart, for the agent and the library;
//! - [`tls_pin`]: `--ca` with the proxy's own self-signed certificate, and advice for
//!   certificates that fail;
//! - [`scheme`]: `ws://` at a TLS port and `wss://` at a plain one;
//! - [`token_source`]: the token from the environment or a file, never logged.

mod common;

#[path = "agent_life/refusals.rs"]
mod refusals;
#[path = "agent_life/restart.rs"]
mod restart;
#[path = "agent_life/scheme.rs"]
mod scheme;
#[path = "agent_life/support.rs"]
mod support;
#[path = "agent_life/tls_pin.rs"]
mod tls_pin;
#[path = "agent_life/token_source.rs"]
mod token_source;
