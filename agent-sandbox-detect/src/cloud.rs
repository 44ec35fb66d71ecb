//! Cloud CLIs and hosting platforms (aws, gcloud, gsutil, az, railway, fly, heroku, vercel,
//! netlify, gh) and raw HTTP clients (curl, wget, httpie).

use crate::analyze::Finding;
use crate::rules::RuleId;
use crate::words::{Arg, has_flag, option_values, positionals};

/// Classifies cloud and HTTP commands.
pub(crate) fn check(name: &str, rest: &[Arg], out: &mut Vec<Finding>) {
    match name {
        "aws" | "awslocal" => aws(rest, out),
        "gcloud" => gcloud(rest, out),
        "gsutil" => gsutil(rest, out),
        "az" => az(rest, out),
        "railway" => {
            let pos = words(rest, &["-s", "--service", "-e", "--environment"]);
            let destructive = matches!(pos.first().map(String::as_str), Some("down" | "delete"))
                || pos.iter().skip(1).any(|w| w == "delete");
            if destructive {
                out.push(Finding::new(
                    RuleId::PaasDestroy,
                    format!("railway {}", pos.join(" ")),
                ));
            }
        }
        "fly" | "flyctl" => {
            let pos = words(
                rest,
                &[
                    "-a", "--app", "-c", "--config", "-r", "--region", "-o", "--org",
                ],
            );
            let first = pos.first().map(String::as_str);
            let destructive = matches!(first, Some("destroy"))
                || pos
                    .iter()
                    .take(3)
                    .skip(1)
                    .any(|w| matches!(w.as_str(), "destroy" | "delete" | "remove" | "rm"));
            if destructive && first != Some("ssh") {
                out.push(Finding::new(
                    RuleId::PaasDestroy,
                    format!("{name} {}", pos.join(" ")),
                ));
            }
        }
        "heroku" => heroku(rest, out),
        "vercel" | "vc" => {
            let pos = words(
                rest,
                &[
                    "--scope",
                    "-S",
                    "--token",
                    "-t",
                    "-A",
                    "--local-config",
                    "--cwd",
                ],
            );
            let first = pos.first().map(String::as_str);
            let destructive = matches!(first, Some("remove" | "rm"))
                || pos
                    .get(1)
                    .is_some_and(|w| matches!(w.as_str(), "rm" | "remove"));
            if destructive {
                out.push(Finding::new(
                    RuleId::PaasDestroy,
                    format!("vercel {}", pos.join(" ")),
                ));
            }
        }
        "netlify" | "ntl" => {
            let pos = words(rest, &["--site", "-s", "--auth", "--filter"]);
            let destructive = pos.iter().take(2).any(|w| {
                matches!(
                    w.as_str(),
                    "sites:delete" | "deleteSite" | "deleteDeploy" | "deleteSiteBuildHook"
                )
            });
            if destructive {
                out.push(Finding::new(
                    RuleId::PaasDestroy,
                    format!("netlify {}", pos.join(" ")),
                ));
            }
        }
        "gh" => {
            let pos = words(
                rest,
                &[
                    "-R",
                    "--repo",
                    "-X",
                    "--method",
                    "-H",
                    "--header",
                    "-f",
                    "-F",
                    "--field",
                    "--raw-field",
                ],
            );
            match (
                pos.first().map(String::as_str),
                pos.get(1).map(String::as_str),
            ) {
                (Some("repo"), Some("delete")) => {
                    out.push(Finding::new(RuleId::GhRepoDelete, pos.join(" ")))
                }
                (Some(_), Some("delete")) => {
                    out.push(Finding::new(RuleId::GhDelete, pos.join(" ")))
                }
                (Some("api"), _)
                    if option_values(rest, Some('X'), &["--method"])
                        .iter()
                        .any(|m| m.text.eq_ignore_ascii_case("DELETE")) =>
                {
                    out.push(Finding::new(RuleId::HttpDelete, pos.join(" ")));
                }
                _ => {}
            }
        }
        "curl" => curl(rest, out),
        "wget"
            if option_values(rest, None, &["--method"])
                .iter()
                .any(|m| m.text.eq_ignore_ascii_case("DELETE")) =>
        {
            out.push(Finding::new(RuleId::HttpDelete, url(rest)));
        }
        "http" | "https" | "xh" | "xhs" => {
            let pos = positionals(rest, &|o| {
                matches!(
                    o,
                    "-a" | "--auth" | "-A" | "--auth-type" | "--session" | "-o" | "--output"
                )
            });
            if pos
                .first()
                .is_some_and(|m| m.text.eq_ignore_ascii_case("DELETE"))
            {
                out.push(Finding::new(
                    RuleId::HttpDelete,
                    pos.get(1).map(|u| u.text.clone()).unwrap_or_default(),
                ));
            }
        }
        _ => {}
    }
}

/// Positional words as strings, skipping values of the given options.
fn words(rest: &[Arg], with_value: &[&str]) -> Vec<String> {
    positionals(rest, &|o| with_value.contains(&o))
        .into_iter()
        .map(|a| a.text.clone())
        .collect()
}

fn aws(rest: &[Arg], out: &mut Vec<Finding>) {
    let takes = |o: &str| {
        matches!(
            o,
            "--profile"
                | "--region"
                | "--output"
                | "--endpoint-url"
                | "--query"
                | "--cli-read-timeout"
                | "--cli-connect-timeout"
                | "--color"
                | "--ca-bundle"
                | "--cli-binary-format"
        ) || (o.starts_with("--")
            && !matches!(
                o,
                "--debug"
                    | "--no-paginate"
                    | "--no-verify-ssl"
                    | "--no-sign-request"
                    | "--recursive"
                    | "--force"
                    | "--delete"
                    | "--dryrun"
                    | "--quiet"
                    | "--exact-timestamps"
                    | "--skip-final-snapshot"
                    | "--force-delete-without-recovery"
                    | "--dry-run"
                    | "--no-dry-run"
            ))
    };
    let pos = positionals(rest, &takes);
    let (Some(svc), Some(op)) = (pos.first(), pos.get(1)) else {
        return;
    };
    let (svc, op) = (svc.text.as_str(), op.text.as_str());
    if has_flag(rest, &[], &["--dryrun", "--dry-run"]) {
        return;
    }
    let shown = format!(
        "aws {svc} {op} {}",
        pos.get(2).map(|a| a.text.as_str()).unwrap_or("")
    );
    let shown = shown.trim_end().to_string();
    if svc == "s3" {
        match op {
            "rm" => {
                let rule = if has_flag(rest, &[], &["--recursive"]) {
                    RuleId::AwsS3RmRecursive
                } else {
                    RuleId::AwsS3Rm
                };
                out.push(Finding::new(rule, shown));
            }
            "rb" => out.push(Finding::new(RuleId::AwsS3Rb, shown)),
            "sync" | "mv" if has_flag(rest, &[], &["--delete"]) => {
                out.push(Finding::new(RuleId::AwsS3SyncDelete, shown))
            }
            _ => {}
        }
        return;
    }
    let destructive = [
        "delete-",
        "batch-delete-",
        "terminate-",
        "purge-",
        "schedule-key-deletion",
        "deregister-db",
        "remove-",
    ]
    .iter()
    .any(|p| op.starts_with(p))
        && !op.starts_with("remove-tags")
        && !op.starts_with("remove-permission");
    if destructive {
        out.push(Finding::new(RuleId::AwsDelete, shown));
    }
}

fn gcloud(rest: &[Arg], out: &mut Vec<Finding>) {
    let pos = words(
        rest,
        &[
            "--project",
            "--account",
            "--configuration",
            "--format",
            "--verbosity",
            "--zone",
            "--region",
            "--instance",
            "--impersonate-service-account",
        ],
    );
    let shown = format!("gcloud {}", pos.join(" "));
    // gcloud storage rm / rsync, then any `... delete` verb.
    let storage = pos.iter().position(|w| w == "storage");
    if let Some(i) = storage {
        match pos.get(i + 1).map(String::as_str) {
            Some("rm") => {
                let recursive =
                    has_flag(rest, &['r', 'R', 'a'], &["--recursive", "--all-versions"])
                        || pos.iter().any(|w| w.contains("**"));
                out.push(Finding::new(
                    if recursive {
                        RuleId::GcsRmRecursive
                    } else {
                        RuleId::GcsRm
                    },
                    shown,
                ));
                return;
            }
            Some("rsync") if has_flag(rest, &[], &["--delete-unmatched-destination-objects"]) => {
                out.push(Finding::new(RuleId::GcsRm, shown));
                return;
            }
            _ => {}
        }
    }
    // Only the command path counts: stop at the first word that looks like a resource name.
    let verb_pos = pos
        .iter()
        .take(5)
        .position(|w| w == "delete" || w == "destroy");
    if verb_pos.is_some() {
        out.push(Finding::new(RuleId::GcloudDelete, shown));
    }
}

fn gsutil(rest: &[Arg], out: &mut Vec<Finding>) {
    // Top-level options come before the command.
    let mut i = 0;
    while let Some(a) = rest.get(i) {
        match a.text.as_str() {
            "-o" | "-h" | "-u" | "-i" => i += 2,
            t if t.starts_with('-') => i += 1,
            _ => break,
        }
    }
    let Some(cmd) = rest.get(i).map(|a| a.text.as_str()) else {
        return;
    };
    let args = rest.get(i + 1..).unwrap_or(&[]);
    let shown = format!(
        "gsutil {cmd} {}",
        positionals(args, &|_| false)
            .iter()
            .map(|a| a.text.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    );
    match cmd {
        "rm" | "del" | "delete" | "remove" => {
            let recursive =
                has_flag(args, &['r', 'R', 'a'], &[]) || args.iter().any(|a| a.text.contains("**"));
            out.push(Finding::new(
                if recursive {
                    RuleId::GcsRmRecursive
                } else {
                    RuleId::GcsRm
                },
                shown,
            ));
        }
        "rb" => out.push(Finding::new(RuleId::GcsRmRecursive, shown)),
        "rsync" if has_flag(args, &['d'], &[]) => out.push(Finding::new(RuleId::GcsRm, shown)),
        _ => {}
    }
}

fn az(rest: &[Arg], out: &mut Vec<Finding>) {
    let pos = words(
        rest,
        &[
            "-g",
            "--resource-group",
            "-n",
            "--name",
            "--subscription",
            "-o",
            "--output",
            "--query",
            "-s",
            "--server",
            "-c",
            "--container-name",
            "--account-name",
            "-l",
            "--location",
        ],
    );
    let shown = format!("az {}", pos.join(" "));
    let verb = pos
        .iter()
        .take(4)
        .find(|w| *w == "delete" || w.starts_with("delete-") || *w == "purge");
    if verb.is_some() {
        let rule = if pos.first().is_some_and(|w| w == "group") {
            RuleId::AzureGroupDelete
        } else {
            RuleId::AzureDelete
        };
        out.push(Finding::new(rule, shown));
    }
}

/// heroku flags that take a value (they may appear anywhere, even after `run CMD`).
const HEROKU_VALUE: &[&str] = &[
    "-a",
    "--app",
    "-r",
    "--remote",
    "-s",
    "--size",
    "-e",
    "--env",
    "--type",
    "--confirm",
    "-c",
];

fn heroku(rest: &[Arg], out: &mut Vec<Finding>) {
    let pos = words(rest, HEROKU_VALUE);
    let Some(cmd) = pos.first() else { return };
    let shown = format!("heroku {}", pos.join(" "));
    let reset = matches!(cmd.as_str(), "pg:reset" | "pg:killall" | "redis:reset");
    let destroy = cmd.ends_with(":destroy")
        || matches!(
            cmd.as_str(),
            "destroy" | "addons:remove" | "pg:backups:delete" | "apps:delete"
        );
    if reset {
        out.push(Finding::new(RuleId::PaasDbReset, shown));
    } else if destroy {
        out.push(Finding::new(RuleId::PaasDestroy, shown));
    }
}

/// For `heroku run CMD`: the command run on a one-off dyno (heroku's own flags removed).
pub(crate) fn heroku_run_command(rest: &[Arg]) -> Option<Vec<Arg>> {
    let pos = positionals(rest, &|o| HEROKU_VALUE.contains(&o));
    if !pos
        .first()
        .is_some_and(|p| p.text == "run" || p.text == "run:detached")
    {
        return None;
    }
    let start = rest
        .iter()
        .position(|a| a.text == "run" || a.text == "run:detached")?
        + 1;
    let mut out = Vec::new();
    let mut i = start;
    while let Some(a) = rest.get(i) {
        i += 1;
        if a.known && HEROKU_VALUE.contains(&a.text.as_str()) {
            i += 1;
            continue;
        }
        if a.known
            && matches!(
                a.text.as_str(),
                "-x" | "--exit-code" | "--no-tty" | "--no-notify" | "--"
            )
        {
            continue;
        }
        out.push(a.clone());
    }
    Some(out)
}

fn url(rest: &[Arg]) -> String {
    rest.iter()
        .find(|a| a.text.starts_with("http://") || a.text.starts_with("https://"))
        .map(|a| a.text.clone())
        .unwrap_or_default()
}

fn curl(rest: &[Arg], out: &mut Vec<Finding>) {
    let methods = option_values(rest, Some('X'), &["--request"]);
    if methods
        .iter()
        .any(|m| m.text.eq_ignore_ascii_case("DELETE"))
    {
        out.push(Finding::new(RuleId::HttpDelete, url(rest)));
    }
    let bodies = option_values(
        rest,
        Some('d'),
        &[
            "--data",
            "--data-raw",
            "--data-binary",
            "--data-ascii",
            "--json",
            "--data-urlencode",
        ],
    );
    for b in bodies {
        if let Some(m) = destructive_mutation(&b.text) {
            out.push(Finding::new(
                RuleId::HttpDestructiveMutation,
                format!("{m} to {}", url(rest)),
            ));
        }
    }
}

/// Finds a GraphQL mutation field whose name says it deletes something (`volumeDelete`).
/// Only identifiers followed by `(` or `{` count, so words inside string values do not.
pub(crate) fn destructive_mutation(body: &str) -> Option<String> {
    let lower = body.to_ascii_lowercase();
    let at = lower.find("mutation")?;
    let tail = body.get(at + "mutation".len()..)?;
    let verbs = [
        "delete",
        "destroy",
        "drop",
        "remove",
        "purge",
        "wipe",
        "terminate",
        "truncate",
    ];
    let chars: Vec<char> = tail.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
        if !chars.get(i).copied().is_some_and(is_ident) {
            i += 1;
            continue;
        }
        let start = i;
        while chars.get(i).copied().is_some_and(is_ident) {
            i += 1;
        }
        let word: String = chars.get(start..i).unwrap_or(&[]).iter().collect();
        let mut j = i;
        while chars.get(j).is_some_and(|c| c.is_whitespace()) {
            j += 1;
        }
        let called = matches!(chars.get(j), Some('(') | Some('{'));
        let l = word.to_ascii_lowercase();
        if called && verbs.iter().any(|v| l.starts_with(v) || l.ends_with(v)) {
            return Some(word);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(name: &str, args: &[&str]) -> Vec<RuleId> {
        let args: Vec<Arg> = args.iter().map(|s| Arg::lit(*s)).collect();
        let mut out = Vec::new();
        check(name, &args, &mut out);
        out.into_iter().map(|f| f.rule).collect()
    }

    #[test]
    fn aws_operations() {
        assert_eq!(
            rules("aws", &["s3", "rm", "s3://b", "--recursive"]),
            [RuleId::AwsS3RmRecursive]
        );
        assert_eq!(
            rules("aws", &["--profile", "prod", "ec2", "terminate-instances"]),
            [RuleId::AwsDelete]
        );
        assert_eq!(
            rules(
                "aws",
                &[
                    "ec2",
                    "describe-instances",
                    "--query",
                    "x[?State==`terminated`]"
                ]
            ),
            []
        );
        assert_eq!(rules("aws", &["s3", "sync", "a", "s3://b"]), []);
        assert_eq!(
            rules("aws", &["s3", "sync", "a", "s3://b", "--delete"]),
            [RuleId::AwsS3SyncDelete]
        );
        assert_eq!(rules("aws", &["s3", "rm", "s3://b/x", "--dryrun"]), []);
    }

    #[test]
    fn gcloud_and_az() {
        assert_eq!(
            rules("gcloud", &["sql", "instances", "delete", "db"]),
            [RuleId::GcloudDelete]
        );
        assert_eq!(rules("gcloud", &["compute", "instances", "list"]), []);
        assert_eq!(
            rules("gsutil", &["-m", "rm", "-r", "gs://b"]),
            [RuleId::GcsRmRecursive]
        );
        assert_eq!(
            rules("az", &["group", "delete", "-n", "rg"]),
            [RuleId::AzureGroupDelete]
        );
        assert_eq!(rules("az", &["group", "create", "-n", "delete"]), []);
    }

    #[test]
    fn graphql_mutations() {
        assert_eq!(
            destructive_mutation(r#"{"query":"mutation { volumeDelete(id: 1) }"}"#).as_deref(),
            Some("volumeDelete")
        );
        assert_eq!(
            destructive_mutation(r#"{"query":"mutation { deleteProject(id: 1) }"}"#).as_deref(),
            Some("deleteProject")
        );
        assert_eq!(destructive_mutation(r#"{"query":"{ me { id } }"}"#), None);
        assert_eq!(
            destructive_mutation(
                r#"{"query":"mutation { createItem(name: \"delete me\") { id } }"}"#
            ),
            None
        );
    }

    #[test]
    fn heroku_run_strips_own_flags() {
        let args: Vec<Arg> = ["run", "rails", "db:drop", "-a", "app"]
            .iter()
            .map(|s| Arg::lit(*s))
            .collect();
        let cmd: Vec<String> = heroku_run_command(&args)
            .unwrap_or_default()
            .into_iter()
            .map(|a| a.text)
            .collect();
        assert_eq!(cmd, ["rails", "db:drop"]);
    }
}
