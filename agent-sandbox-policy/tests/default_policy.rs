//! The embedded default policy: it parses, its globs are all home- or
//! workspace-relative, and it covers the credential stores it promises.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use agent_sandbox_policy::{
    Anchor, DEFAULT_POLICY, EffectivePolicy, LoadOptions, PolicyFile, Source, load,
};

fn effective() -> (tempfile::TempDir, EffectivePolicy) {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home/u");
    let ws = tmp.path().join("ws");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(ws.join(".git")).unwrap();
    let eff = load(&LoadOptions {
        home,
        cwd: ws,
        explicit: None,
        user_policy: None,
    })
    .unwrap();
    (tmp, eff)
}

#[test]
fn parses_with_unique_ids_and_a_why_on_every_rule() {
    let f = PolicyFile::parse(DEFAULT_POLICY, Source::Default).unwrap();
    let ids: Vec<&str> = f.rules().iter().map(|m| m.id.as_str()).collect();
    assert!(ids.len() >= 20, "{ids:?}");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
    for m in f.rules() {
        assert!(
            m.why.as_deref().is_some_and(|w| !w.is_empty()),
            "{} has no why",
            m.id
        );
    }
}

#[test]
fn every_path_is_home_or_workspace_relative() {
    let f = PolicyFile::parse(DEFAULT_POLICY, Source::Default).unwrap();
    let mut n = 0;
    for r in &f.deny_read {
        for g in r.paths.iter().chain(&r.except) {
            assert_ne!(g.anchor(), Anchor::Root, "{} in {}", g, r.meta.id);
            if g.anchor() == Anchor::Home {
                assert!(g.as_str().starts_with("~/"), "{g}");
            }
            n += 1;
        }
    }
    for r in &f.protect {
        for g in &r.paths {
            assert_ne!(g.anchor(), Anchor::Root, "{g}");
            n += 1;
        }
    }
    assert!(n > 30, "only {n} globs");
}

#[test]
fn denies_the_credential_files_it_promises() {
    let (_tmp, eff) = effective();
    let home = eff.home.clone();
    let ws = eff.workspace.clone();
    let denied: &[(&str, &str)] = &[
        ("~/.aws/credentials", "aws-credentials"),
        ("~/.aws/sso/cache/x.json", "aws-credentials"),
        (
            "~/.config/gcloud/application_default_credentials.json",
            "gcp-credentials",
        ),
        ("~/.azure/msal_token_cache.json", "azure-credentials"),
        ("~/.kube/config", "kube-config"),
        ("~/.docker/config.json", "docker-config"),
        ("~/.ssh/id_ed25519", "ssh-private-keys"),
        ("~/.ssh/id_rsa", "ssh-private-keys"),
        ("~/.ssh/deploy_ed25519", "ssh-private-keys"),
        ("~/.ssh/server.pem", "ssh-private-keys"),
        ("~/.netrc", "netrc"),
        ("~/.git-credentials", "git-credentials"),
        ("~/.config/git/credentials", "git-credentials"),
        ("~/.npmrc", "npm-token"),
        ("~/.pypirc", "pypi-token"),
        ("~/.cargo/credentials.toml", "cargo-token"),
        ("~/.cargo/credentials", "cargo-token"),
        ("~/.railway/config.json", "railway-token"),
        ("~/.fly/config.yml", "fly-token"),
        ("~/.local/share/com.vercel.cli/auth.json", "vercel-token"),
        ("~/.config/heroku/config.json", "heroku-token"),
        ("~/.config/netlify/config.json", "netlify-token"),
        ("~/.terraform.d/credentials.tfrc.json", "terraform-token"),
        ("~/.config/gh/hosts.yml", "github-cli-token"),
        ("~/.pgpass", "pgpass"),
        ("~/.my.cnf", "mysql-credentials"),
        ("~/.vault-token", "vault-token"),
        ("W/.env", "dotenv"),
        ("W/services/api/.env.production", "dotenv"),
    ];
    let abs = |p: &str| -> PathBuf {
        if let Some(r) = p.strip_prefix("~/") {
            home.join(r)
        } else {
            ws.join(p.strip_prefix("W/").unwrap())
        }
    };
    for (p, id) in denied {
        let rule = eff.read_denied_by(&abs(p));
        assert_eq!(rule.map(|r| r.meta.id.as_str()), Some(*id), "{p}");
    }
    for p in [
        "~/.ssh/id_ed25519.pub",
        "~/.ssh/known_hosts",
        "~/.ssh/config",
        "~/.docker/buildx/instances",
        "~/.cargo/registry/index",
        "W/.env.example",
        "W/app/.env.local.example",
        "W/.env.template",
        "W/src/main.rs",
        "W/environment.rs",
    ] {
        assert!(eff.read_denied_by(&abs(p)).is_none(), "{p} denied");
    }
    // A path outside both anchors is never matched by relative rules.
    assert!(eff.read_denied_by(Path::new("/elsewhere/.env")).is_none());
}

#[test]
fn denies_cloud_metadata_endpoints() {
    let (_tmp, eff) = effective();
    let rule = eff
        .network_deny
        .iter()
        .find(|r| r.meta.id == "cloud-metadata")
        .unwrap();
    for ip in ["169.254.169.254", "fd00:ec2::254", "::ffff:169.254.169.254"] {
        let ip: IpAddr = ip.parse().unwrap();
        assert!(rule.cidrs.iter().any(|c| c.contains(ip)), "{ip}");
    }
    assert!(
        rule.hosts
            .iter()
            .any(|h| h.matches("metadata.google.internal"))
    );
    assert!(rule.ports.is_empty(), "all ports");
}
