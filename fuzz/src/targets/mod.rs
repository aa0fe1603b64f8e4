//! The fuzz targets' logic, one plain function per target, shared by the libFuzzer binaries
//! (`fuzz/fuzz_targets/`) and the root crate's corpus replay (`tests/fuzz_corpus.rs`, which
//! includes this directory with `#[path]`). It uses only `httpws`, `bytes`, `httparse` and
//! `tokio`, all of them dependencies of the root crate, so both builds compile it unchanged.
//!
//! Every target reads a few parameter bytes off the front of its input (limits, role, how to
//! split the rest into reads) and feeds the rest to the parser. Besides "no panic", each
//! checks properties the parser promises: feeding the same bytes whole or read by read gives
//! the same answer, what was accepted respects the limits, and encode/rewrite round-trips.

mod agent_http;
mod frame;
mod handshake;
mod head;
mod ingress;
mod input;
mod stream;

pub use agent_http::agent_http;
pub use frame::frame;
pub use handshake::handshake;
pub use head::head;
pub use ingress::ingress;
pub use stream::stream;

/// A target: it panics on a finding and returns otherwise.
pub type Target = fn(&[u8]);

/// Every target with its name, which is also the name of its corpus directory.
pub const TARGETS: [(&str, Target); 6] = [
    ("frame", frame),
    ("handshake", handshake),
    ("head", head),
    ("agent_http", agent_http),
    ("ingress", ingress),
    ("stream", stream),
];
