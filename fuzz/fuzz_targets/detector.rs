//! libFuzzer entry point of the `detector` target; the harness is [`agent_sandbox_fuzz::detector`].

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| agent_sandbox_fuzz::detector(data));
