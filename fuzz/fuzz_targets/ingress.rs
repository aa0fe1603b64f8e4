//! libFuzzer entry point of the `ingress` target; its logic is in `src/targets/ingress.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| httpws_fuzz::ingress(data));
