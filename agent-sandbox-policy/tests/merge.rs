//! Sources and the tighten-only merge, on real files in temporary dirs.

use std::fs;
use std::path::{Path, PathBuf};

use agent_sandbox_policy::{
    EffectivePolicy, LoadOptions, NetworkDefault, PolicyError, PolicyFile, Source,
    find_repository_policy, load, sha256_hex,
};

/// A home with an optional user policy and a repository (with `.git`) with
/// an optional `policy.toml`.
struct World {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    repo: PathBuf,
}

impl World {
    fn new(user: Option<&str>, repo: Option<&str>) -> World {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        let repo_dir = tmp.path().join("repo");
        fs::create_dir_all(home.join(".config/agent-sandbox")).unwrap();
        fs::create_dir_all(repo_dir.join(".git")).unwrap();
        fs::create_dir_all(repo_dir.join("src/deep")).unwrap();
        if let Some(u) = user {
            fs::write(home.join(".config/agent-sandbox/policy.toml"), u).unwrap();
        }
        if let Some(r) = repo {
            fs::write(repo_dir.join("policy.toml"), r).unwrap();
        }
        World {
            _tmp: tmp,
            home,
            repo: repo_dir,
        }
    }

    fn opts(&self) -> LoadOptions {
        LoadOptions {
            home: self.home.clone(),
            cwd: self.repo.join("src/deep"),
            explicit: None,
            user_policy: None,
        }
    }

    fn load(&self) -> Result<EffectivePolicy, PolicyError> {
        load(&self.opts())
    }

    fn user_path(&self) -> PathBuf {
        self.home.join(".config/agent-sandbox/policy.toml")
    }

    fn repo_path(&self) -> PathBuf {
        self.repo.join("policy.toml")
    }

    /// The error lines of a failed load.
    fn errors(&self) -> Vec<String> {
        match self.load() {
            Err(PolicyError::Invalid(d)) => d.iter().map(ToString::to_string).collect(),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }
}

#[test]
fn default_only() {
    let w = World::new(None, None);
    let eff = w.load().unwrap();
    assert_eq!(eff.sources, vec![Source::Default]);
    assert_eq!(eff.workspace, w.repo.join("src/deep"));
    assert_eq!(eff.network_default.value, NetworkDefault::Allow);
    assert!(eff.rule("aws-credentials").is_some());
    assert_eq!(eff.hash(), None);
}

#[test]
fn repository_policy_is_found_upward_and_search_stops_at_git() {
    let w = World::new(None, Some("[approval]\ntimeout_secs = 30\n"));
    assert_eq!(
        find_repository_policy(&w.repo.join("src/deep")),
        Some(w.repo_path())
    );
    let eff = w.load().unwrap();
    assert_eq!(eff.workspace, w.repo);
    assert_eq!(eff.repository_path(), Some(w.repo_path().as_path()));

    // A policy.toml above the repository root is not the repository's.
    let outer = w.repo.parent().unwrap().join("policy.toml");
    fs::write(&outer, "[approval]\ntimeout_secs = 1\n").unwrap();
    fs::remove_file(w.repo_path()).unwrap();
    assert_eq!(find_repository_policy(&w.repo.join("src/deep")), None);
    // Without a .git boundary, the search continues upward.
    fs::remove_dir(w.repo.join(".git")).unwrap();
    assert_eq!(
        find_repository_policy(&w.repo.join("src/deep")),
        Some(outer)
    );
}

#[test]
fn explicit_policy_wins_and_must_exist() {
    let w = World::new(None, Some("[approval]\ntimeout_secs = 30\n"));
    let other = w.home.join("other.toml");
    fs::write(&other, "[approval]\ntimeout_secs = 20\n").unwrap();
    let mut o = w.opts();
    o.explicit = Some(other.clone());
    let eff = load(&o).unwrap();
    assert_eq!(eff.approval_timeout_secs.value, 20);
    assert_eq!(
        eff.approval_timeout_secs.origin.source,
        Source::Repository(other)
    );
    // A relative --policy is taken from the cwd; the workspace is absolute.
    let mut rel = w.opts();
    rel.cwd = w.repo.join("src");
    rel.explicit = Some(PathBuf::from("../policy.toml"));
    let eff = load(&rel).unwrap();
    assert_eq!(eff.workspace, fs::canonicalize(&w.repo).unwrap());
    assert_eq!(eff.approval_timeout_secs.value, 30);
    o.explicit = Some(w.home.join("missing.toml"));
    assert!(matches!(load(&o), Err(PolicyError::Read { .. })));
    let mut o = w.opts();
    o.user_policy = Some(w.home.join("missing-user.toml"));
    assert!(matches!(load(&o), Err(PolicyError::Read { .. })));
}

#[test]
fn hash_is_sha256_of_the_repository_bytes() {
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let text = "# x\n[approval]\ntimeout_secs = 30\n";
    let w = World::new(None, Some(text));
    let eff = w.load().unwrap();
    assert_eq!(eff.hash(), Some(sha256_hex(text.as_bytes())));
    assert_eq!(eff.repository_bytes(), Some(text.as_bytes()));
}

#[test]
fn user_may_disable_and_replace_default_rules() {
    let w = World::new(
        Some(
            "disable = [\"kube-config\", \"no-such-rule\"]\n[[files.deny_read]]\nid = \"kube-config\"\npaths = [\"~/.kube/prod\"]\n[scan]\nenabled = false\n[env]\nkeep = [\"TOKEN_X\"]\n",
        ),
        None,
    );
    let eff = w.load().unwrap();
    let rule = eff
        .deny_read
        .iter()
        .find(|r| r.meta.id == "kube-config")
        .unwrap();
    assert_eq!(rule.meta.origin.source, Source::User(w.user_path()));
    assert_eq!(rule.paths[0].as_str(), "~/.kube/prod");
    assert_eq!(eff.disabled.len(), 1);
    assert_eq!(eff.disabled[0].value, "kube-config");
    assert!(!eff.scan_enabled.value);
    assert_eq!(eff.env_keep[0].value, "TOKEN_X");
    assert_eq!(eff.warnings.len(), 1);
    assert_eq!(
        eff.warnings[0].to_string(),
        format!(
            "{}:1:27: warning: disable: \"no-such-rule\" names no rule of the embedded default",
            w.user_path().display()
        )
    );
}

#[test]
fn user_rule_reusing_a_default_id_is_refused() {
    let w = World::new(
        Some("[[files.deny_read]]\nid = \"netrc\"\npaths = [\"~/x\"]\n"),
        None,
    );
    let e = w.errors();
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with(&format!(
            "{}:1:1: error: rule \"netrc\" reuses the id of rule \"netrc\" from embedded default:",
            w.user_path().display()
        )),
        "{}",
        e[0]
    );
    assert!(
        e[0].ends_with("(disable the default rule to replace it)"),
        "{}",
        e[0]
    );
}

#[test]
fn repository_refusals_name_both_rules() {
    let user = "[network]\ndefault = \"deny\"\n\n[[exec.rule]]\nid = \"rm-ask\"\naction = \"ask\"\nmatch = \"rm -rf *\"\n";
    let repo = "disable = [\"aws-credentials\"]\n\
[network]\ndefault = \"allow\"\n\
[[network.allow]]\nid = \"open-all\"\ncidrs = [\"0.0.0.0/0\"]\n\
[[exec.rule]]\nid = \"rm-ok\"\naction = \"allow\"\nmatch = \"rm -rf ./target\"\n\
[[files.deny_read]]\nid = \"rm-ask\"\npaths = [\"x\"]\n\
[scan]\nenabled = false\nexempt = [\"fixtures/**\"]\n\
[env]\nkeep = [\"AWS_SECRET_ACCESS_KEY\"]\n";
    let w = World::new(Some(user), Some(repo));
    let r = w.repo_path().display().to_string();
    let u = w.user_path().display().to_string();
    let aws_line = PolicyFile::parse(agent_sandbox_policy::DEFAULT_POLICY, Source::Default)
        .unwrap()
        .deny_read
        .iter()
        .find(|x| x.meta.id == "aws-credentials")
        .unwrap()
        .meta
        .origin
        .line;
    let tail = "; a repository policy may only tighten";
    let mut expected = vec![
        format!(
            "{r}:1:12: error: disable = [\"aws-credentials\"] would switch off rule \"aws-credentials\" from embedded default:{aws_line}{tail}"
        ),
        format!(
            "{r}:3:11: error: network.default = \"allow\" would loosen network.default = \"deny\" from user policy {u}:2{tail}"
        ),
        format!(
            "{r}:4:1: error: [[network.allow]] rule \"open-all\" would open a destination closed by network.default = \"deny\" from user policy {u}:2{tail}"
        ),
        format!(
            "{r}:7:1: error: [[exec.rule]] \"rm-ok\" with action = \"allow\" would loosen rule \"rm-ask\" from user policy {u}:4{tail}"
        ),
        format!(
            "{r}:11:1: error: rule \"rm-ask\" reuses the id of rule \"rm-ask\" from user policy {u}:4; ids are unique across the effective policy"
        ),
        format!(
            "{r}:15:11: error: scan.enabled = false would turn off scan.enabled = true from embedded default:"
        ),
        format!(
            "{r}:16:11: error: scan.exempt \"fixtures/**\" would exempt files from the scan enabled by scan.enabled from embedded default:"
        ),
        format!(
            "{r}:18:9: error: [env] keep = [\"AWS_SECRET_ACCESS_KEY\"] would pass a variable through the sandbox's built-in environment scrubbing (only the user policy may keep variables){tail}"
        ),
    ];
    let mut got = w.errors();
    got.sort();
    expected.sort();
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    for (g, e) in got.iter().zip(&expected) {
        assert!(g.starts_with(e.as_str()), "\n got: {g}\nwant: {e}");
    }
}

#[test]
fn tightening_is_accepted_and_the_stricter_value_wins() {
    let user = "[approval]\ntimeout_secs = 120\n[network]\nresolve_interval_secs = 60\n";
    let repo = "[network]\ndefault = \"deny\"\nresolve_interval_secs = 600\n\
[[network.allow]]\nid = \"registry\"\nhosts = [\"crates.io\"]\nports = [443]\n\
[[network.deny]]\nid = \"prod\"\ncidrs = [\"10.0.0.0/8\"]\n\
[[exec.rule]]\nid = \"tf\"\naction = \"ask\"\nmatch = \"terraform destroy*\"\n\
[[sql.rule]]\nid = \"drop\"\naction = \"deny\"\nmatch = \"DROP *\"\n\
[approval]\ntimeout_secs = 30\n[scan]\nenabled = true\nmax_secs = 60\n";
    let w = World::new(Some(user), Some(repo));
    let eff = w.load().unwrap();
    let repo_src = Source::Repository(w.repo_path());
    assert_eq!(eff.network_default.value, NetworkDefault::Deny);
    assert_eq!(eff.network_default.origin.source, repo_src);
    assert_eq!(eff.approval_timeout_secs.value, 30);
    assert_eq!(eff.approval_timeout_secs.origin.source, repo_src);
    // The user's shorter re-resolution interval stays.
    assert_eq!(eff.resolve_interval_secs.value, 60);
    assert_eq!(
        eff.resolve_interval_secs.origin.source,
        Source::User(w.user_path())
    );
    assert_eq!(eff.scan_max_secs.value, 60);
    assert_eq!(eff.rule("registry").unwrap().origin.line, 4);
    assert_eq!(eff.rule("prod").unwrap().origin.source, repo_src);
    assert_eq!(eff.sources.len(), 3);

    // A longer repository timeout does not loosen the user's.
    let w = World::new(Some(user), Some("[approval]\ntimeout_secs = 900\n"));
    let eff = w.load().unwrap();
    assert_eq!(eff.approval_timeout_secs.value, 120);
    assert_eq!(
        eff.approval_timeout_secs.origin.source,
        Source::User(w.user_path())
    );
}

#[test]
fn errors_of_both_files_are_reported_together() {
    let w = World::new(
        Some("[network]\ndefault = \"maybe\"\n"),
        Some("[aproval]\n"),
    );
    let e = w.errors();
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(
        e.iter()
            .any(|l| l.starts_with(&format!("{}:2:11:", w.user_path().display())))
    );
    assert!(e.iter().any(|l| l.starts_with(&format!(
        "{}:1:2: error: unknown key \"aproval\"",
        w.repo_path().display()
    )) && l.ends_with("did you mean \"approval\"?")));
}

#[test]
fn render_lists_sources_and_parses_back() {
    let user = "[[exec.rule]]\nid = \"ok-clean\"\naction = \"allow\"\nmatch = \"cargo clean\"\n[env]\nkeep = [\"RUST_LOG\"]\n";
    let repo = "\n\n[[files.protect]]\nid = \"backups\"\nwhy = \"say \\\"no\\\"\"\npaths = [\"backups/**\"]\naction = \"deny\"\n";
    let w = World::new(Some(user), Some(repo));
    let eff = w.load().unwrap();
    let out = eff.render();
    let u = w.user_path().display().to_string();
    let r = w.repo_path().display().to_string();
    assert!(
        out.contains(&format!(
            "#   repository policy {r} (sha256 {})",
            eff.hash().unwrap()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "[[exec.rule]]  # from user policy {u}:1\nid = \"ok-clean\""
        )),
        "{out}"
    );
    assert!(out.contains(&format!("[[files.protect]]  # from repository policy {r}:3\nid = \"backups\"\nwhy = \"say \\\"no\\\"\"")), "{out}");
    assert!(
        out.contains("[[files.deny_read]]  # from embedded default:"),
        "{out}"
    );
    assert!(
        out.contains(&format!("  \"RUST_LOG\",  # from user policy {u}:6")),
        "{out}"
    );
    assert!(
        out.contains("timeout_secs = 300  # from embedded default:"),
        "{out}"
    );
    // Every rule header carries its source.
    for line in out.lines().filter(|l| l.starts_with("[[")) {
        assert!(line.contains("  # from "), "{line}");
    }
    // The rendering is itself a valid policy with the same rules.
    let back = PolicyFile::parse(&out, Source::Default).unwrap_or_else(|d| {
        panic!(
            "{}\n{out}",
            d.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    let ids = |v: Vec<&agent_sandbox_policy::RuleMeta>| {
        v.iter().map(|m| m.id.clone()).collect::<Vec<_>>()
    };
    assert_eq!(ids(back.rules()), ids(eff.rules()));
}

#[test]
fn relative_globs_resolve_against_the_workspace() {
    let w = World::new(
        None,
        Some("[[files.protect]]\nid = \"b\"\npaths = [\"backups/**\"]\n"),
    );
    let eff = w.load().unwrap();
    let g = &eff.protect[0].paths[0];
    assert_eq!(eff.resolve(g), format!("{}/backups/**", w.repo.display()));
    assert!(
        g.resolved(&eff.home, &eff.workspace)
            .matches(&w.repo.join("backups/db.dump"))
    );
    assert!(
        !g.resolved(&eff.home, &eff.workspace)
            .matches(Path::new("/backups/db.dump"))
    );
}
