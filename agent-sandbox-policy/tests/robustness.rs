//! Mutated policies never panic and every diagnostic points inside the file.
//! A deterministic stand-in until the fuzz targets exist.

use std::time::Instant;

use agent_sandbox_policy::{DEFAULT_POLICY, PolicyFile, Source};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const PIECES: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "\"",
    "'",
    "=",
    ",",
    "\n",
    "#",
    "*",
    "**",
    "~",
    "/",
    "-",
    "é",
    "\u{0}",
    "id",
    "paths",
    "[network]",
    "[[files.deny_read]]",
    "99999999999999999999",
];

#[test]
fn mutations_never_panic_and_positions_are_in_range() {
    let example = std::fs::read_to_string("../policy.toml").unwrap();
    let bases = [DEFAULT_POLICY, example.as_str()];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut with_errors = 0;
    let start = Instant::now();
    for round in 0..400 {
        let base = bases[round % 2];
        let mut chars: Vec<char> = base.chars().collect();
        for _ in 0..1 + rng.below(6) {
            let at = rng.below(chars.len());
            match rng.below(3) {
                0 => {
                    let n = rng.below(20).min(chars.len() - at);
                    chars.drain(at..at + n);
                }
                1 => {
                    let piece = PIECES[rng.below(PIECES.len())];
                    for (i, c) in piece.chars().enumerate() {
                        chars.insert(at + i, c);
                    }
                }
                _ => {
                    let other = rng.below(chars.len());
                    chars.swap(at, other);
                }
            }
        }
        let text: String = chars.into_iter().collect();
        let lines = text.split('\n').count();
        if let Err(diags) = PolicyFile::parse(&text, Source::Default) {
            with_errors += 1;
            for d in diags {
                assert!(
                    d.line >= 1 && d.line <= lines,
                    "{d} (file has {lines} lines)\n{text}"
                );
                assert!(d.column >= 1, "{d}");
            }
        }
    }
    // Most mutations break something; if none did, the mutator is broken.
    assert!(
        with_errors > 200,
        "only {with_errors} of 400 mutations produced errors"
    );
    eprintln!("400 mutated policies checked in {:?}", start.elapsed());
}
