//! The httpws wire format, pure and without I/O: every function here works on byte slices
//! so that it can be unit-tested, benchmarked and fuzzed on its own.

pub mod address;
pub mod answer_error;
pub mod frame;
pub mod handshake;
pub mod head;
pub mod http1;
pub mod indication;
pub mod origin;
pub mod public_request;
pub mod stream;
