//! `verify_bytes` on thousands of random and mutated logs (fixed PRNG seed): it must return a
//! report for every input, never panic, and report clean only for the untouched log.

mod common;

use agent_sandbox_audit::{AuditKey, Checkpoint, verify_bytes};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TOKENS: &[&[u8]] = &[
    b"\n",
    b"{",
    b"}",
    b"\"",
    b",\"mac\":\"",
    b"\"seq\":",
    b"18446744073709551615",
    b"-1",
    b"\"prev\":\"",
    b"\\u0000",
    b"\xff\xfe",
    b"[[[[[[[[",
    b"0000000000000000000000000000000000000000000000000000000000000000",
];

fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut b = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(8) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
            }
            1 if !b.is_empty() => {
                let i = rng.below(b.len());
                let j = (i + rng.below(200)).min(b.len());
                b.drain(i..j);
            }
            2 => {
                let i = rng.below(b.len() + 1);
                let t = TOKENS[rng.below(TOKENS.len())];
                b.splice(i..i, t.iter().copied());
            }
            3 => {
                // Move a line somewhere else.
                let mut lines = common::split_lines(&b);
                if lines.len() > 1 {
                    let l = lines.remove(rng.below(lines.len()));
                    let at = rng.below(lines.len() + 1);
                    lines.insert(at, l);
                }
                b = lines.concat();
            }
            4 => {
                // Duplicate a line.
                let mut lines = common::split_lines(&b);
                if !lines.is_empty() {
                    let l = lines[rng.below(lines.len())].clone();
                    let at = rng.below(lines.len() + 1);
                    lines.insert(at, l);
                }
                b = lines.concat();
            }
            5 => {
                let cut = rng.below(b.len() + 1);
                b.truncate(cut);
            }
            6 => {
                let n = rng.below(64);
                b.extend((0..n).map(|_| rng.next() as u8));
            }
            _ => {
                // Swap the seq digits of one line for another number.
                if let Some(pos) = b.windows(7).position(|w| w == b"\"seq\":1") {
                    b[pos + 6] = b'0' + rng.below(10) as u8;
                }
            }
        }
    }
    b
}

#[test]
fn random_and_mutated_logs_never_panic() {
    let built = common::build_log();
    let base = std::fs::read(&built.log).unwrap();
    let cp = Checkpoint::load(&built.checkpoint, &built.key).unwrap();
    let clean = verify_bytes(&base, &built.key, Some(&cp));
    assert!(clean.is_clean());

    let mut rng = Rng(0x5eed_a0d1_7000_0001);
    let mut detected = 0u32;
    let mut unchanged = 0u32;
    const MUTATED: u32 = 3000;
    for _ in 0..MUTATED {
        let input = mutate(&mut rng, &base);
        let with_cp = rng.below(2) == 0;
        let r = verify_bytes(&input, &built.key, with_cp.then_some(&cp));
        assert!(r.problems.len() <= agent_sandbox_audit::MAX_PROBLEMS);
        if input == base {
            unchanged += 1;
            assert!(r.is_clean());
        } else if !r.is_clean() {
            detected += 1;
        } else {
            // A mutation can leave the log valid only by dropping whole records from the
            // end without a checkpoint to say so.
            assert!(!with_cp, "undetected change with checkpoint");
            assert!(
                base.starts_with(&input),
                "undetected change that is not a truncation"
            );
            assert!(input.is_empty() || input.ends_with(b"\n"));
        }
    }
    assert!(
        detected + unchanged > MUTATED * 9 / 10,
        "{detected} {unchanged}"
    );

    // Pure noise, including long lines and no newlines at all.
    let key = AuditKey::from_bytes([9; 32]);
    for i in 0..2000 {
        let len = rng.below(if i % 100 == 0 { 3_000_000 } else { 2000 });
        let noise: Vec<u8> = (0..len)
            .map(|_| {
                let b = rng.next() as u8;
                // Plenty of newlines and braces so some lines look like JSON.
                match b % 16 {
                    0 => b'\n',
                    1 => b'{',
                    2 => b'}',
                    _ => b,
                }
            })
            .collect();
        let r = verify_bytes(&noise, &key, None);
        assert!(r.problems.len() <= agent_sandbox_audit::MAX_PROBLEMS);
        assert_eq!(r.records, 0);
        assert_eq!(r.is_clean(), noise.is_empty());
    }
}

#[test]
fn whole_log_reversed_or_shuffled_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("big.jsonl");
    let key = AuditKey::from_bytes([4; 32]);
    let mut w = agent_sandbox_audit::AuditWriter::create(&log, &key, "big").unwrap();
    for i in 0..5000 {
        w.append(&agent_sandbox_audit::synthetic_record(i)).unwrap();
    }
    let cp = w.finish().unwrap();
    let bytes = std::fs::read(&log).unwrap();
    let mut lines = common::split_lines(&bytes);
    lines.reverse();
    let r = verify_bytes(&lines.concat(), &key, Some(&cp));
    assert_eq!(r.records, 5000);
    assert_eq!(r.problems.len(), agent_sandbox_audit::MAX_PROBLEMS);
    // Every record but one is out of place; nothing is missing.
    assert_eq!(r.problems.len() as u64 + r.problems_omitted, 4999);
    assert!(
        r.problems
            .iter()
            .all(|p| p.kind == agent_sandbox_audit::ProblemKind::Reordered)
    );

    let mut rng = Rng(7);
    for i in (1..lines.len()).rev() {
        lines.swap(i, rng.below(i + 1));
    }
    let r = verify_bytes(&lines.concat(), &key, Some(&cp));
    assert_eq!(r.records, 5000);
    assert!(!r.is_clean());
    assert!(r.problems.iter().all(|p| matches!(
        p.kind,
        agent_sandbox_audit::ProblemKind::Reordered | agent_sandbox_audit::ProblemKind::Deleted
    )));
}
