//! libFuzzer entry point of the `head` target; its logic is in `src/targets/head.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| httpws_fuzz::head(data));
