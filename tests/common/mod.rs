//! The harness every integration test shares: the real `httpws` binary started on
//! `127.0.0.1:0`, independent clients to talk to it (tungstenite, raw TCP, curl), a real web
//! service, and the rule that a test which cannot run here says so. One idea a module.
// Each test binary compiles this whole tree and uses only part of it.
#![allow(dead_code)]

use std::time::Duration;

/// How long any single read in a test may block before the test fails.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

pub mod agent;
pub mod bystanders;
pub mod certs;
pub mod curl;
pub mod driver;
pub mod fake_proxy;
pub mod handshake;
pub mod http1;
pub mod message;
pub mod node;
pub mod ports;
pub mod proc_stats;
pub mod process;
pub mod programs;
pub mod proxy;
pub mod proxy_errors;
pub mod python;
pub mod raw_conn;
pub mod raw_ws;
pub mod scratch;
pub mod service;
pub mod skip;
pub mod stream_wire;
pub mod wire;
pub mod ws;
