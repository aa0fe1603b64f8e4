//! libFuzzer entry point of the `agent_http` target; its logic is in `src/targets/agent_http.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| httpws_fuzz::agent_http(data));
