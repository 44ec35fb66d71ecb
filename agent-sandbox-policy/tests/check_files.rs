//! Data-driven `policy check` tests: each `tests/data/check/NAME.toml` is
//! checked and the diagnostics compared, line by line, with
//! `NAME.expected`. Set `UPDATE_EXPECTED=1` to rewrite the expected files
//! (then review the diff).

use std::fs;
use std::path::Path;

use agent_sandbox_policy::check;

#[test]
fn check_data_files() {
    let dir = Path::new("tests/data/check");
    let mut cases = 0;
    let mut failures = Vec::new();
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        cases += 1;
        let got: String = check(&path).iter().map(|d| format!("{d}\n")).collect();
        let expected_path = path.with_extension("expected");
        if std::env::var_os("UPDATE_EXPECTED").is_some() {
            fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        if got != expected {
            failures.push(format!(
                "{}\n--- expected\n{expected}--- got\n{got}",
                path.display()
            ));
        }
    }
    assert!(cases >= 4, "only {cases} cases found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_walkthrough_example_parses_clean() {
    let example = Path::new("../policy.toml");
    let diags = check(example);
    assert!(
        diags.is_empty(),
        "{}",
        diags
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let text = fs::read_to_string(example).unwrap();
    let f = agent_sandbox_policy::PolicyFile::parse(
        &text,
        agent_sandbox_policy::Source::Repository(example.to_path_buf()),
    )
    .unwrap();
    // It demonstrates every section.
    assert!(!f.network.deny.is_empty());
    assert!(!f.deny_read.is_empty() && !f.protect.is_empty());
    assert!(!f.exec.is_empty() && !f.sql.is_empty() && !f.http.is_empty());
    assert!(f.approval_timeout_secs.is_some() && f.scan.enabled.is_some());
}

#[test]
fn unreadable_and_binary_files_are_diagnostics() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing.toml");
    let d = check(&missing);
    assert_eq!(d.len(), 1);
    assert!(
        d[0].to_string()
            .starts_with(&format!("{}: error: cannot read policy", missing.display())),
        "{}",
        d[0]
    );
    let bin = tmp.path().join("bin.toml");
    fs::write(&bin, [0xff, 0xfe, 0x00]).unwrap();
    let d = check(&bin);
    assert_eq!(d.len(), 1);
    assert!(d[0].message.contains("not UTF-8"), "{}", d[0]);
    let big = tmp.path().join("big.toml");
    fs::write(
        &big,
        vec![b'#'; (agent_sandbox_policy::MAX_POLICY_BYTES + 1) as usize],
    )
    .unwrap();
    let d = check(&big);
    assert!(d[0].message.contains("larger than"), "{}", d[0]);
}
