//! Where the session stands, as [`Session::status`](super::Session::status) reports it.

use super::failure::Fatal;
use crate::proto::address::VirtualAddress;

/// Where the session stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Connecting, or waiting to reconnect.
    Down,
    /// Registered under `address`; `generation` counts registrations (1, 2, … per reconnect).
    Up {
        /// The name the proxy registered.
        address: VirtualAddress,
        /// Which registration this is, counting from 1.
        generation: u64,
    },
    /// Given up: nothing will be retried.
    Failed(Fatal),
    /// Closed by [`Session::close`](super::Session::close).
    Closed,
}
