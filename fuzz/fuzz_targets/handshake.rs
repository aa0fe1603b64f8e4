//! libFuzzer entry point of the `handshake` target; its logic is in `src/targets/handshake.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| httpws_fuzz::handshake(data));
