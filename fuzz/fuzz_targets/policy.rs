//! libFuzzer entry point of the `policy` target; the harness is [`agent_sandbox_fuzz::policy`].

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| agent_sandbox_fuzz::policy(data));
