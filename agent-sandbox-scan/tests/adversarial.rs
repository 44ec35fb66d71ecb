//! Inputs built to make a scanner slow or confused: the work must stay linear in the input
//! size, and anchors that overlap a keyword must not hide the keyword.

mod common;

use agent_sandbox_scan::{SecretKind, scan_bytes};
use common::{B62, B64, Rng, UPNUM};
use std::time::{Duration, Instant};

#[test]
fn keywords_inside_token_like_names_still_count() {
    let mut r = Rng::new(21);
    for name in [
        "TASK_TOKEN",
        "npm_token",
        "DISK_PASSWORD",
        "hf_token",
        "ASIA_SECRET",
    ] {
        let line = format!("{name}={}\n", r.mixed(B62, 24));
        let k: Vec<SecretKind> = scan_bytes(line.as_bytes())
            .into_iter()
            .map(|f| f.1)
            .collect();
        assert_eq!(k, vec![SecretKind::Assignment], "{line}");
    }
}

fn repeat_to(unit: &str, size: usize) -> Vec<u8> {
    unit.as_bytes().iter().copied().cycle().take(size).collect()
}

/// Fastest of three runs, to shed scheduling noise on a shared machine.
fn time(data: &[u8]) -> Duration {
    (0..3)
        .map(|_| {
            let t = Instant::now();
            let _ = scan_bytes(data);
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

/// Every adversarial input must scan within a small factor of ordinary source code of the
/// same size. Without the scanner's skip rules, `x_key=` repeated costs about 20 times more and
/// `fm2_/` repeated thousands of times more (each hit re-reading a run of up to 8 KiB).
#[test]
fn adversarial_inputs_cost_about_as_much_as_source_code() {
    let mut r = Rng::new(22);
    let size = 512 << 10;
    let source = include_str!("../src/detect.rs");
    let baseline = time(&repeat_to(source, size));
    let aws_line = format!("AKIA{},{}\n", r.pick(UPNUM, 16), r.mixed(B64, 40));
    let units: Vec<(&str, String)> = vec![
        ("values that contain further keywords", "x_key=".into()),
        ("one long macaroon-like run full of anchors", "fm2_/".into()),
        ("github_pat_ runs", "github_pat_".into()),
        (
            "BEGIN lines without END",
            "-----BEGIN PRIVATE KEY-----\n".into(),
        ),
        ("AWS key ids with secrets", aws_line),
        ("URL schemes", "a://b:c".into()),
        ("sk- runs", format!("sk-{} ", "a".repeat(300))),
        ("keywords", "token=token=Token:KEY ".into()),
        ("slack", format!("xoxb-1-{}", r.mixed(B62, 30))),
    ];
    for (what, unit) in units {
        let t = time(&repeat_to(&unit, size));
        assert!(
            t <= baseline * 12 + Duration::from_millis(20),
            "{what}: 512 KiB took {t:?}; the same size of source code took {baseline:?}"
        );
    }
}
