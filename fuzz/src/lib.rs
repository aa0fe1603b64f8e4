//! httpws fuzz targets. Each target's logic is a plain `fn(&[u8])` in `src/targets/`, called
//! by its libFuzzer binary in `fuzz_targets/` and, over the committed corpus in
//! `corpus/<target>/`, by the root crate's `tests/fuzz_corpus.rs`.

mod targets;

pub use targets::{TARGETS, Target, agent_http, frame, handshake, head, ingress, stream};
