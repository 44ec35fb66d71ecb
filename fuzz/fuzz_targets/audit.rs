//! libFuzzer entry point of the `audit` target; the harness is [`agent_sandbox_fuzz::audit`].
//!
//! Byte-level mutations almost always break a line's MAC, so half of the mutations here work on
//! whole lines instead (move, duplicate, delete, swap, cut at a line end): the records stay
//! authenticated and the verifier's reorder, replay, deletion and truncation logic is reached.

#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target, fuzzer_mutate};

fuzz_target!(|data: &[u8]| agent_sandbox_fuzz::audit(data));

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    let mut rng = u64::from(seed) | 1;
    if seed.is_multiple_of(2) {
        return fuzzer_mutate(data, size, max_size);
    }
    let Some(input) = data.get(..size) else {
        return fuzzer_mutate(data, size, max_size);
    };
    let mutated = agent_sandbox_fuzz::mutate_lines(input, &mut rng);
    if mutated.len() > max_size || mutated.len() > data.len() {
        return fuzzer_mutate(data, size, max_size);
    }
    if let Some(dst) = data.get_mut(..mutated.len()) {
        dst.copy_from_slice(&mutated);
    }
    mutated.len()
});
