//! Loopback ports for tests that need an address nothing listens on.

use std::net::{SocketAddr, TcpListener};

/// A loopback port nothing listens on (bound, then released).
pub fn dead_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}
