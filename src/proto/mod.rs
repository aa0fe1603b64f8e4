//! The httpws wire format, pure and without I/O: every function here works on byte slices
//! so that it can be unit-tested, benchmarked and fuzzed on its own.

pub mod address;
pub mod chunked;
pub mod frame;
pub mod handshake;
pub mod head;
pub mod head_scanner;
pub mod header_name;
pub mod indication;
pub mod ingress;
pub mod origin;
pub mod request_error;
