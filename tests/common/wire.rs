//! First-byte bits of a raw WebSocket frame, for tests that write frames by hand.

pub const FIN: u8 = 0x80;
pub const RSV1: u8 = 0x40;
pub const CONTINUATION: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xa;
