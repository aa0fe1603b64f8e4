//! libFuzzer entry point of the `frame` target; its logic is in `src/targets/frame.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| httpws_fuzz::frame(data));
