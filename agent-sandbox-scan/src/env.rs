//! Secrets in the environment the agent is about to receive.
//!
//! A variable is a secret when its value contains a known token format (whatever its name), or
//! when its name says it holds a credential (`GITHUB_TOKEN`, `PGPASSWORD`, `*_API_KEY`) and its
//! value is not empty, a placeholder, a path, a number or a boolean. Ordinary variables (`PATH`,
//! `HOME`, `TERM`, `SSH_AUTH_SOCK`, `LS_COLORS`…) match neither rule.

use crate::detect::{self, SecretKind};
use crate::value::{self, NameStrength};
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

/// Name components that mark a credential wherever they appear in the name.
const STRONG_PARTS: &[&str] = &[
    "TOKEN",
    "SECRET",
    "SECRETS",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "PASS",
    "CREDENTIAL",
    "CREDENTIALS",
    "APIKEY",
    "AUTHTOKEN",
    "PAT",
];

/// Components that, before a final `KEY`, make it a credential (`OPENAI_API_KEY`).
const STRONG_KEY_QUALIFIERS: &[&str] = &[
    "API",
    "ACCESS",
    "SECRET",
    "PRIVATE",
    "AUTH",
    "MASTER",
    "SIGNING",
    "ENCRYPTION",
    "LICENSE",
    "ADMIN",
    "SERVICE",
];

/// A last component that says the variable describes a credential rather than holds one
/// (`GITHUB_TOKEN_URL`, `AWS_ACCESS_KEY_ID`, `VAULT_TOKEN_PATH`).
const DESCRIPTIVE_LAST: &[&str] = &[
    "ID",
    "URL",
    "URI",
    "PATH",
    "FILE",
    "DIR",
    "HOST",
    "PORT",
    "ENDPOINT",
    "TYPE",
    "NAME",
    "USER",
    "USERNAME",
    "EXPIRY",
    "EXPIRES",
    "EXPIRATION",
    "TTL",
    "TIMEOUT",
    "LENGTH",
    "ENABLED",
    "MODE",
    "FORMAT",
    "HEADER",
    "PARAM",
    "PREFIX",
    "COMMAND",
    "CMD",
    "HELPER",
    "PROGRAM",
    "PROMPT",
    "SOCK",
    "SOCKET",
    "FD",
    "PID",
    "LOCATION",
    "PROVIDER",
    "SERVER",
    "REGION",
    "VERSION",
];

/// Components that mark a public value.
const PUBLIC_PARTS: &[&str] = &["PUBLIC", "PUBLISHABLE", "PUB"];

/// How strongly an environment variable's name says "credential".
fn env_name_strength(name: &str) -> Option<NameStrength> {
    let upper = name.to_ascii_uppercase();
    let parts: Vec<&str> = upper
        .split(['_', '-', '.'])
        .filter(|p| !p.is_empty())
        .collect();
    let last = *parts.last()?;
    if DESCRIPTIVE_LAST.contains(&last) || parts.iter().any(|p| PUBLIC_PARTS.contains(p)) {
        return None;
    }
    let strong_part = parts.iter().any(|p| {
        STRONG_PARTS.contains(p)
            || p.ends_with("PASSWORD")
            || p.ends_with("PASSWD")
            || p.ends_with("TOKEN")
            || p.ends_with("SECRET")
    });
    // `MYSQL_PWD`, but never the shell's `PWD`/`OLDPWD`.
    let pwd = parts.len() >= 2 && last == "PWD";
    if strong_part || pwd {
        return Some(NameStrength::Strong);
    }
    if last == "KEY" || last == "KEYS" {
        let qualifier = parts.len() >= 2
            && parts
                .get(parts.len() - 2)
                .is_some_and(|q| STRONG_KEY_QUALIFIERS.contains(q));
        return Some(if qualifier {
            NameStrength::Strong
        } else {
            NameStrength::Key
        });
    }
    None
}

/// A non-trivial value: not empty, not a placeholder, path, number or boolean.
fn env_value_plausible(value: &str) -> bool {
    let v = value.trim();
    if v.len() < 8 || v.len() > 64 * 1024 {
        return false;
    }
    let b = v.as_bytes();
    if value::is_placeholder(b) {
        return false;
    }
    if ["/", "./", "../", "~/"].iter().any(|p| v.starts_with(p)) {
        return false;
    }
    if v.bytes()
        .all(|c| c.is_ascii_digit() || c == b'.' || c == b'-')
    {
        return false;
    }
    const WORDS: &[&str] = &[
        "true", "false", "yes", "no", "on", "off", "none", "null", "disabled", "enabled",
        "required", "optional", "keychain", "prompt",
    ];
    !WORDS.iter().any(|w| v.eq_ignore_ascii_case(w))
}

/// Classifies one environment variable: `Some(kind)` when it carries a secret.
///
/// The value is checked for known token formats first (so `GH=ghp_…` is caught whatever the
/// name); otherwise a credential-like name (`*_TOKEN`, `*_SECRET`, `*PASSWORD`, `*_API_KEY`,
/// `MYSQL_PWD`…) with a non-trivial value gives [`SecretKind::EnvVariable`]. A plain `*_KEY`
/// name needs a random-looking value.
pub fn env_secret(name: &str, value: &str) -> Option<SecretKind> {
    let mut raw = Vec::new();
    detect::find(value.as_bytes(), &mut raw);
    if let Some(r) = raw.iter().max_by_key(|r| specificity(r.kind)) {
        return Some(r.kind);
    }
    match env_name_strength(name)? {
        NameStrength::Strong => env_value_plausible(value).then_some(SecretKind::EnvVariable),
        NameStrength::Key => value::random_value(value.trim().as_bytes(), NameStrength::Key)
            .then_some(SecretKind::EnvVariable),
    }
}

fn specificity(k: SecretKind) -> u8 {
    match k {
        SecretKind::Assignment | SecretKind::EnvVariable => 0,
        SecretKind::UrlPassword => 1,
        _ => 2,
    }
}

/// True when `name` is listed in `keep`, exactly or by a `PREFIX*` pattern.
fn kept(name: &str, keep: &[String]) -> bool {
    keep.iter().any(|k| match k.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => k == name,
    })
}

/// An environment as `(name, value)` pairs, the shape `std::env::vars_os` yields.
pub type EnvVars = Vec<(OsString, OsString)>;

/// Splits an environment into the variables to pass on and the secrets removed from it.
///
/// Names in `keep` (exact, or `PREFIX*`) are always passed on: the user decided the agent needs
/// them. Non-UTF-8 names and values are examined lossily and passed on unchanged when clean.
/// Returns `(kept variables in their original order, removed (name, kind))`.
pub fn scrub_env(vars: EnvVars, keep: &[String]) -> (EnvVars, Vec<(String, SecretKind)>) {
    let mut out = Vec::with_capacity(vars.len());
    let mut removed = Vec::new();
    for (n, v) in vars {
        let name = String::from_utf8_lossy(n.as_bytes()).into_owned();
        if kept(&name, keep) {
            out.push((n, v));
            continue;
        }
        let value = String::from_utf8_lossy(v.as_bytes());
        match env_secret(&name, &value) {
            Some(kind) => removed.push((name, kind)),
            None => out.push((n, v)),
        }
    }
    (out, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_rules() {
        use NameStrength::*;
        for (n, s) in [
            ("GITHUB_TOKEN", Some(Strong)),
            ("PGPASSWORD", Some(Strong)),
            ("MYSQL_PWD", Some(Strong)),
            ("PWD", None),
            ("OLDPWD", None),
            ("AWS_SECRET_ACCESS_KEY", Some(Strong)),
            ("AWS_ACCESS_KEY_ID", None),
            ("OPENAI_API_KEY", Some(Strong)),
            ("GPG_KEY", Some(Key)),
            ("SSH_AUTH_SOCK", None),
            ("GIT_ASKPASS", None),
            ("SSH_ASKPASS", None),
            ("TOKENIZERS_PARALLELISM", None),
            ("STRIPE_PUBLISHABLE_KEY", None),
            ("VAULT_TOKEN_PATH", None),
            ("KEYTIMEOUT", None),
            ("GITHUB_PAT", Some(Strong)),
        ] {
            assert_eq!(env_name_strength(n), s, "{n}");
        }
    }

    #[test]
    fn trivial_values_are_not_secrets() {
        assert_eq!(env_secret("DB_PASSWORD", ""), None);
        assert_eq!(env_secret("DB_PASSWORD", "changeme"), None);
        assert_eq!(env_secret("DB_PASSWORD", "${DB_PASSWORD}"), None);
        assert_eq!(env_secret("VAULT_TOKEN", "/run/secrets/vault"), None);
        assert_eq!(env_secret("NPM_TOKEN", "12345678"), None);
        assert_eq!(env_secret("GIT_TOKEN", "false"), None);
    }

    #[test]
    fn keep_patterns() {
        let keep = vec!["GITHUB_TOKEN".to_string(), "MY_*".to_string()];
        assert!(kept("GITHUB_TOKEN", &keep));
        assert!(kept("MY_SECRET", &keep));
        assert!(!kept("GITHUB_TOKEN2", &keep));
        assert!(!kept("OTHER", &keep));
    }
}
