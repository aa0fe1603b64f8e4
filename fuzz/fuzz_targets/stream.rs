//! libFuzzer entry point of the `stream` target; its logic is in `src/targets/stream.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| httpws_fuzz::stream(data));
