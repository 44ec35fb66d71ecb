//! Environment scrubbing: secret names and secret value formats are removed, `keep` wins,
//! ordinary variables stay, in order.

mod common;

use agent_sandbox_scan::{SecretKind, env_secret, scrub_env};
use common::{B62, B64, HEX, Rng, UPNUM};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

fn os(s: &str) -> OsString {
    OsString::from(s)
}

/// A realistic desktop/terminal environment with nothing secret in it.
fn ordinary() -> Vec<(String, String)> {
    [
        (
            "PATH",
            "/home/alice/.cargo/bin:/usr/local/bin:/usr/bin:/bin",
        ),
        ("HOME", "/home/alice"),
        ("TERM", "xterm-256color"),
        ("SHELL", "/bin/bash"),
        ("USER", "alice"),
        ("LANG", "en_US.UTF-8"),
        ("PWD", "/home/alice/src/project"),
        ("OLDPWD", "/home/alice"),
        ("SSH_AUTH_SOCK", "/run/user/1000/keyring/ssh"),
        ("SSH_AGENT_PID", "2291"),
        ("GPG_AGENT_INFO", "/run/user/1000/gnupg/S.gpg-agent:0:1"),
        (
            "LS_COLORS",
            "rs=0:di=01;34:ln=01;36:mh=00:pi=40;33:so=01;35:do=01;35:bd=40;33;01:cd=40;33;01:\
             or=40;31;01:mi=00:su=37;41:sg=30;43:ca=30;41:tw=30;42:ow=34;42:st=37;44:ex=01;32:\
             *.tar=01;31:*.tgz=01;31:*.key=00;33:*.pem=00;33:*.jpg=01;35:*.png=01;35:",
        ),
        ("DISPLAY", ":0"),
        ("XDG_RUNTIME_DIR", "/run/user/1000"),
        ("DBUS_SESSION_BUS_ADDRESS", "unix:path=/run/user/1000/bus"),
        (
            "GIT_ASKPASS",
            "/usr/share/code/resources/app/extensions/git/dist/askpass.sh",
        ),
        ("SSH_ASKPASS", "/usr/lib/ssh/x11-ssh-askpass"),
        ("EDITOR", "vim"),
        ("TOKENIZERS_PARALLELISM", "false"),
        ("VAULT_TOKEN_PATH", "/home/alice/.vault-token"),
        ("AWS_PROFILE", "default"),
        ("AWS_REGION", "eu-west-1"),
        ("KEYTIMEOUT", "1"),
        ("HISTCONTROL", "ignoreboth"),
        (
            "VSCODE_GIT_IPC_HANDLE",
            "/run/user/1000/vscode-git-3a1f2b3c4d.sock",
        ),
        ("COLORTERM", "truecolor"),
        (
            "GOOGLE_APPLICATION_CREDENTIALS",
            "/home/alice/.config/gcloud/adc.json",
        ),
        ("GNUPGHOME", "/home/alice/.gnupg"),
        ("NPM_CONFIG_PREFIX", "/home/alice/.npm-global"),
        ("DATABASE_URL", "postgres://localhost/dev"),
        ("CARGO_REGISTRY_TOKEN", ""),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect()
}

#[test]
fn ordinary_variables_are_kept() {
    for (n, v) in ordinary() {
        assert_eq!(env_secret(&n, &v), None, "{n}={v}");
    }
    let vars: Vec<(OsString, OsString)> = ordinary().iter().map(|(n, v)| (os(n), os(v))).collect();
    let (kept, removed) = scrub_env(vars.clone(), &[]);
    assert!(removed.is_empty(), "{removed:?}");
    assert_eq!(kept, vars);
}

#[test]
fn secrets_are_removed_by_name_and_by_value_format() {
    let mut r = Rng::new(11);
    let secrets: Vec<(String, String, SecretKind)> = vec![
        (
            "GITHUB_TOKEN".into(),
            format!("ghp_{}", r.mixed(B62, 36)),
            SecretKind::GitHubToken,
        ),
        (
            "AWS_ACCESS_KEY_ID".into(),
            format!("AKIA{}", r.pick(UPNUM, 16)),
            SecretKind::AwsAccessKeyId,
        ),
        (
            "AWS_SECRET_ACCESS_KEY".into(),
            r.mixed(B64, 40),
            SecretKind::EnvVariable,
        ),
        (
            "OPENAI_API_KEY".into(),
            format!("sk-proj-{}", r.mixed(B62, 100)),
            SecretKind::OpenAiKey,
        ),
        (
            "ANTHROPIC_API_KEY".into(),
            format!("sk-ant-api03-{}AA", r.mixed(B62, 93)),
            SecretKind::AnthropicKey,
        ),
        // A neutral name does not hide a known format.
        (
            "GH".into(),
            format!("gho_{}", r.mixed(B62, 36)),
            SecretKind::GitHubToken,
        ),
        (
            "PIP_INDEX_URL".into(),
            format!("https://deploy:{}@pypi.internal/simple", r.mixed(B62, 20)),
            SecretKind::UrlPassword,
        ),
        // Names alone, with values that have no recognisable format.
        (
            "PGPASSWORD".into(),
            "correct horse battery staple".into(),
            SecretKind::EnvVariable,
        ),
        (
            "MYSQL_PWD".into(),
            "Tr0ub4dor&3".into(),
            SecretKind::EnvVariable,
        ),
        (
            "RAILWAY_TOKEN".into(),
            "8f14e45f-ceea-467f-a0e6-3f1d7a2c9b10".into(),
            SecretKind::EnvVariable,
        ),
        ("DB_PASS".into(), r.mixed(B62, 12), SecretKind::EnvVariable),
        (
            "SESSION_SECRET".into(),
            r.pick(HEX, 64),
            SecretKind::EnvVariable,
        ),
        (
            "GITHUB_PAT".into(),
            r.mixed(B62, 40),
            SecretKind::EnvVariable,
        ),
        // A plain *_KEY needs a random-looking value.
        (
            "MAPBOX_KEY".into(),
            r.mixed(B62, 32),
            SecretKind::EnvVariable,
        ),
    ];
    for (n, v, k) in &secrets {
        assert_eq!(env_secret(n, v), Some(*k), "{n}={v}");
    }
    // Mixed into the ordinary environment: exactly the secrets go, the rest keeps its order.
    let mut vars: Vec<(OsString, OsString)> = Vec::new();
    let ord = ordinary();
    for (i, (n, v, _)) in secrets.iter().enumerate() {
        let (on, ov) = &ord[i % ord.len()];
        vars.push((os(on), os(ov)));
        vars.push((os(n), os(v)));
    }
    let (kept, removed) = scrub_env(vars.clone(), &[]);
    let removed_names: Vec<&str> = removed.iter().map(|(n, _)| n.as_str()).collect();
    let secret_names: Vec<&str> = secrets.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(removed_names, secret_names);
    let expected_kept: Vec<(OsString, OsString)> = vars.iter().step_by(2).cloned().collect();
    assert_eq!(kept, expected_kept);
}

#[test]
fn keep_is_honoured() {
    let mut r = Rng::new(12);
    let vars = vec![
        (os("GITHUB_TOKEN"), os(&format!("ghp_{}", r.mixed(B62, 36)))),
        (os("NPM_TOKEN"), os(&format!("npm_{}", r.mixed(B62, 36)))),
        (os("AGENT_API_KEY"), os(&r.mixed(B62, 40))),
        (os("AGENT_MODEL_TOKEN"), os(&r.mixed(B62, 40))),
        (os("HOME"), os("/home/alice")),
    ];
    let keep = vec!["GITHUB_TOKEN".to_string(), "AGENT_*".to_string()];
    let (kept, removed) = scrub_env(vars.clone(), &keep);
    let kept_names: Vec<OsString> = kept.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(
        kept_names,
        vec![
            os("GITHUB_TOKEN"),
            os("AGENT_API_KEY"),
            os("AGENT_MODEL_TOKEN"),
            os("HOME")
        ]
    );
    assert_eq!(
        removed,
        vec![("NPM_TOKEN".to_string(), SecretKind::NpmToken)]
    );
    // Without `keep` all four secrets go.
    let (_, removed) = scrub_env(vars, &[]);
    assert_eq!(removed.len(), 4);
}

#[test]
fn non_utf8_values_are_examined_and_kept_intact() {
    let mut r = Rng::new(13);
    let mut v = vec![0xff, 0xfe, b' '];
    v.extend_from_slice(format!("ghp_{}", r.mixed(B62, 36)).as_bytes());
    let odd = vec![b'a', 0xff, b'b'];
    let vars = vec![
        (os("BLOB"), OsString::from_vec(v)),
        (
            OsString::from_vec(b"X\xffY".to_vec()),
            OsString::from_vec(odd.clone()),
        ),
    ];
    let (kept, removed) = scrub_env(vars, &[]);
    assert_eq!(removed, vec![("BLOB".to_string(), SecretKind::GitHubToken)]);
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].1, OsString::from_vec(odd));
}
