//! The committed seed corpora: every seed runs through its harness without a panic, the seeds
//! derived from other files of the repository are current, and the audit seeds are what their
//! names say (the valid log verifies clean, each tampered one reports its tampering).
//!
//! `FUZZ_REGENERATE_SEEDS=1 cargo test --manifest-path fuzz/Cargo.toml` rewrites the derived
//! seeds (policy copies, detector lines, audit logs) instead of comparing them.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use agent_sandbox_audit::{AuditKey, AuditWriter, ProblemKind, verify_bytes};
use agent_sandbox_fuzz::{
    AUDIT_KEY, AUDIT_SESSION, RULE_SEPARATOR, audit, audit_seed_log, detector, detector_input,
    mutate_lines, policy, reseal,
};

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn corpus(target: &str) -> PathBuf {
    fuzz_dir().join("corpus").join(target)
}

fn read_dir_sorted(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let e = e.unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            let bytes = fs::read(e.path()).unwrap_or_else(|err| panic!("{:?}: {err}", e.path()));
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    out.sort();
    out
}

/// Every 9th command of the detector's labelled corpus (about 100, destructive and benign),
/// as NUL-separated argv, plus a few inputs carrying a user rule.
fn detector_seeds() -> BTreeMap<String, Vec<u8>> {
    let tsv = fuzz_dir().join("../agent-sandbox-detect/tests/corpus.tsv");
    let text = fs::read_to_string(&tsv).unwrap_or_else(|e| panic!("{}: {e}", tsv.display()));
    let mut seeds = BTreeMap::new();
    let commands = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
    for (i, (line_no, line)) in commands.enumerate() {
        if i % 9 != 0 {
            continue;
        }
        let (label, command) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("corpus.tsv:{}: no tab", line_no + 1));
        let argv = shlex::split(command)
            .unwrap_or_else(|| panic!("corpus.tsv:{}: does not split", line_no + 1));
        seeds.insert(
            format!("{label}-{:04}", line_no + 1),
            argv.join("\0").into_bytes(),
        );
    }
    let with_rules: &[(&str, &[&str], &str)] = &[
        // The first byte chooses the rule's action: 0 allow, 1 ask, 2 deny.
        ("rule-allow", &["rm", "-rf", "target"], "0rm -rf target"),
        (
            "rule-ask",
            &["git", "push", "origin", "main"],
            "1git push ...",
        ),
        (
            "rule-deny",
            &["kubectl", "delete", "ns", "prod"],
            "2kubectl delete ...",
        ),
        (
            "rule-glob",
            &["bash", "-c", "make deploy ENV=prod && echo ok"],
            "1make deploy*",
        ),
        (
            "rule-quotes",
            &["psql", "-c", "DROP TABLE users"],
            "2psql -c 'DROP *'",
        ),
        ("rule-allow-denied", &["rm", "-rf", "/"], "0rm -rf /"),
        ("rule-bad-quotes", &["echo", "x"], "1echo 'x"),
    ];
    for (name, argv, pattern) in with_rules {
        let mut bytes = argv.join("\0").into_bytes();
        bytes.push(RULE_SEPARATOR);
        bytes.extend_from_slice(pattern.as_bytes());
        seeds.insert((*name).to_string(), bytes);
    }
    seeds
}

/// The valid seed log and tampered copies of it (truncated, edited, reordered, replayed,
/// deleted, under another key), and the final checkpoint line.
fn audit_seeds() -> BTreeMap<String, Vec<u8>> {
    let (log, checkpoint) = audit_seed_log().unwrap_or_else(|e| panic!("seed log: {e}"));
    let lines: Vec<&[u8]> = log.split_inclusive(|&b| b == b'\n').collect();
    assert!(lines.len() > 10, "the seed log has {} lines", lines.len());
    let mut seeds = BTreeMap::new();
    let key = AuditKey::from_bytes(AUDIT_KEY);
    seeds.insert(
        "checkpoint".to_string(),
        checkpoint.to_line(&key).unwrap_or_else(|e| panic!("{e}")),
    );
    seeds.insert("valid.jsonl".to_string(), log.clone());
    seeds.insert("truncated-records.jsonl".to_string(), lines[..10].concat());
    seeds.insert(
        "torn-last-line.jsonl".to_string(),
        log[..log.len() - 40].to_vec(),
    );
    let mut edited = lines.clone();
    let changed = String::from_utf8_lossy(edited[4]).replace("\"git\"", "\"gat\"");
    assert_ne!(changed.as_bytes(), edited[4], "line 5 names git");
    edited[4] = changed.as_bytes();
    seeds.insert("edited.jsonl".to_string(), edited.concat());
    let mut reordered = lines.clone();
    reordered.swap(3, 4);
    seeds.insert("reordered.jsonl".to_string(), reordered.concat());
    let mut replayed = lines.clone();
    replayed.insert(7, lines[5]);
    seeds.insert("replayed.jsonl".to_string(), replayed.concat());
    let mut deleted = lines.clone();
    deleted.remove(6);
    seeds.insert("deleted.jsonl".to_string(), deleted.concat());

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("other.jsonl");
    let other = AuditKey::from_bytes([7; 32]);
    let mut w = AuditWriter::create(&path, &other, AUDIT_SESSION).unwrap_or_else(|e| panic!("{e}"));
    for line in agent_sandbox_fuzz::AUDIT_SEED_EVENTS.lines().take(5) {
        let record = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}"));
        w.append(&record).unwrap_or_else(|e| panic!("{e}"));
    }
    drop(w);
    seeds.insert(
        "wrong-key.jsonl".to_string(),
        fs::read(&path).unwrap_or_else(|e| panic!("{e}")),
    );
    seeds
}

/// Seeds copied from the repository's policies.
fn policy_copies() -> BTreeMap<String, Vec<u8>> {
    let read = |p: &str| {
        let path = fuzz_dir().join(p);
        fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    BTreeMap::from([
        ("repo-policy.toml".to_string(), read("../policy.toml")),
        (
            "default-policy.toml".to_string(),
            read("../agent-sandbox-policy/default-policy.toml"),
        ),
    ])
}

/// Compares the derived seeds with the committed files, or rewrites them when asked.
fn check_derived(target: &str, expected: &BTreeMap<String, Vec<u8>>) {
    let dir = corpus(target);
    let regenerate = std::env::var_os("FUZZ_REGENERATE_SEEDS").is_some();
    let mut stale = Vec::new();
    for (name, bytes) in expected {
        let path = dir.join(name);
        if regenerate {
            fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        } else if fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
            stale.push(name.clone());
        }
    }
    assert!(
        stale.is_empty(),
        "corpus/{target}: {stale:?} missing or stale; rerun with FUZZ_REGENERATE_SEEDS=1"
    );
}

#[test]
fn derived_seeds_are_current() {
    check_derived("policy", &policy_copies());
    check_derived("detector", &detector_seeds());
    check_derived("audit", &audit_seeds());
}

#[test]
fn corpora_have_the_expected_sizes() {
    let policy_seeds = read_dir_sorted(&corpus("policy"));
    assert!(
        policy_seeds.len() >= 20,
        "{} policy seeds",
        policy_seeds.len()
    );
    let valid = policy_seeds
        .iter()
        .filter(|(_, b)| {
            let text = std::str::from_utf8(b).unwrap_or("");
            agent_sandbox_policy::PolicyFile::parse(
                text,
                agent_sandbox_policy::Source::Repository("/r/policy.toml".into()),
            )
            .is_ok()
        })
        .count();
    // Both kinds matter: valid files reach the merge, invalid ones the diagnostics.
    assert!(valid >= 5, "{valid} valid policy seeds");
    assert!(
        policy_seeds.len() - valid >= 5,
        "too few invalid policy seeds"
    );

    let det = read_dir_sorted(&corpus("detector"));
    assert!(det.len() >= 100, "{} detector seeds", det.len());
    assert!(det.iter().any(|(n, _)| n.starts_with("destructive-")));
    assert!(det.iter().any(|(n, _)| n.starts_with("benign-")));
    assert!(read_dir_sorted(&corpus("audit")).len() >= 8);
}

#[test]
fn every_seed_runs_through_its_harness() {
    type Harness = fn(&[u8]);
    let targets: [(&str, Harness); 3] =
        [("policy", policy), ("detector", detector), ("audit", audit)];
    for (target, harness) in targets {
        let seeds = read_dir_sorted(&corpus(target));
        assert!(!seeds.is_empty(), "no {target} seeds");
        for (_, bytes) in &seeds {
            harness(bytes);
        }
    }
}

#[test]
fn policy_validation_does_not_depend_on_the_source() {
    // The policy harness parses once and merges as both kinds of file on that basis.
    use agent_sandbox_policy::{PolicyFile, Source};
    for (name, bytes) in read_dir_sorted(&corpus("policy")) {
        let text = String::from_utf8_lossy(&bytes);
        let repo = PolicyFile::parse(&text, Source::Repository("/r/policy.toml".into()));
        let user = PolicyFile::parse(&text, Source::User("/r/policy.toml".into()));
        let default = PolicyFile::parse(&text, Source::Default);
        assert_eq!(repo.is_ok(), user.is_ok(), "{name}");
        assert_eq!(repo.is_ok(), default.is_ok(), "{name}");
    }
}

#[test]
fn audit_seeds_show_their_tampering() {
    let key = AuditKey::from_bytes(AUDIT_KEY);
    let seeds: BTreeMap<String, Vec<u8>> = read_dir_sorted(&corpus("audit")).into_iter().collect();
    let kinds = |name: &str| -> Vec<ProblemKind> {
        let bytes = seeds
            .get(name)
            .unwrap_or_else(|| panic!("no audit seed {name}"));
        verify_bytes(bytes, &key, None)
            .problems
            .iter()
            .map(|p| p.kind)
            .collect()
    };
    assert_eq!(kinds("valid.jsonl"), []);
    assert_eq!(
        kinds("truncated-records.jsonl"),
        [],
        "a prefix alone verifies"
    );
    assert!(kinds("torn-last-line.jsonl").contains(&ProblemKind::TornLastLine));
    assert!(kinds("edited.jsonl").contains(&ProblemKind::Edited));
    assert!(kinds("reordered.jsonl").contains(&ProblemKind::Reordered));
    assert!(kinds("replayed.jsonl").contains(&ProblemKind::Inserted));
    assert!(kinds("deleted.jsonl").contains(&ProblemKind::Deleted));
    assert!(kinds("wrong-key.jsonl").contains(&ProblemKind::WrongKey));
}

#[test]
fn reseal_makes_edited_lines_authentic_again() {
    let key = AuditKey::from_bytes(AUDIT_KEY);
    let (log, _) = audit_seed_log().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reseal(&log), log, "resealing a valid log changes nothing");
    let edited = String::from_utf8_lossy(&log).replacen("\"claude\"", "\"claudx\"", 1);
    let kinds = |b: &[u8]| -> Vec<ProblemKind> {
        verify_bytes(b, &key, None)
            .problems
            .iter()
            .map(|p| p.kind)
            .collect()
    };
    assert!(kinds(edited.as_bytes()).contains(&ProblemKind::Edited));
    // Resealed, the edited line is authentic, but the next line's `prev` no longer matches.
    let resealed = reseal(edited.as_bytes());
    assert!(!kinds(&resealed).contains(&ProblemKind::Edited));
    assert!(kinds(&resealed).contains(&ProblemKind::Deleted));
    // A line without a seal gets one when it ends like an object.
    assert_eq!(
        reseal(b"{\"seq\":0}\nnot json\n")
            .split(|&b| b == b'\n')
            .next()
            .map(|l| l.len()),
        Some("{\"seq\":0".len() + 74)
    );
}

#[test]
fn line_mutations_keep_lines_whole() {
    let (log, _) = audit_seed_log().unwrap_or_else(|e| panic!("{e}"));
    let originals: Vec<&[u8]> = log.split_inclusive(|&b| b == b'\n').collect();
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut changed = 0;
    for _ in 0..200 {
        let m = mutate_lines(&log, &mut rng);
        changed += usize::from(m != log);
        let lines: Vec<&[u8]> = m.split_inclusive(|&b| b == b'\n').collect();
        // Every line but a cut last one is one of the originals.
        for l in lines.iter().take(lines.len().saturating_sub(1)) {
            assert!(originals.contains(l), "a mutated log holds a new line");
        }
    }
    assert!(
        changed > 150,
        "only {changed} of 200 mutations changed the log"
    );
}

#[test]
fn detector_inputs_decode() {
    let d = detector_input(b"rm\0-rf\0/tmp/x");
    assert_eq!(d.argv, ["rm", "-rf", "/tmp/x"]);
    assert_eq!(d.rule, None);
    let d = detector_input(b"git\0push\x1e1git push ...");
    assert_eq!(d.argv, ["git", "push"]);
    assert_eq!(
        d.rule,
        Some((
            agent_sandbox_detect::Action::Ask,
            "git push ...".to_string()
        ))
    );
    assert_eq!(detector_input(b"").argv, Vec::<String>::new());
    assert_eq!(
        detector_input(b"\x1e").rule,
        Some((agent_sandbox_detect::Action::Allow, String::new()))
    );
    assert_eq!(
        detector_input(b"x\x1e2rm *\x1e").rule,
        Some((agent_sandbox_detect::Action::Deny, "rm *\x1e".to_string()))
    );
    assert_eq!(detector_input(b"a\xffb").argv, ["a\u{fffd}b"]);
}
