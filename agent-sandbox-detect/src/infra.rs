//! Infrastructure: terraform/tofu/terragrunt, pulumi, cdk, sst, serverless, kubectl, helm.

use crate::analyze::Finding;
use crate::rules::RuleId;
use crate::words::{Arg, has_flag, option_values, positionals};

/// Classifies infrastructure tools.
pub(crate) fn check(name: &str, rest: &[Arg], out: &mut Vec<Finding>) {
    match name {
        "terraform" | "tofu" | "terragrunt" => terraform(name, rest, out),
        "pulumi" => pulumi(rest, out),
        "cdk" | "cdktf" => {
            let pos = positionals(rest, &|o| {
                matches!(
                    o,
                    "-a" | "--app" | "-c" | "--context" | "--profile" | "--require-approval"
                )
            });
            match pos.first().map(|p| p.text.as_str()) {
                Some("destroy") => {
                    out.push(Finding::new(RuleId::IacDestroy, format!("{name} destroy")))
                }
                Some("deploy") => {
                    let never = option_values(rest, None, &["--require-approval"])
                        .iter()
                        .any(|v| v.text == "never");
                    let rule = if never || has_flag(rest, &[], &["--auto-approve"]) {
                        RuleId::IacApplyAuto
                    } else {
                        RuleId::IacApply
                    };
                    out.push(Finding::new(rule, format!("{name} deploy")));
                }
                _ => {}
            }
        }
        "sst" | "serverless" | "sls" => {
            let pos = positionals(rest, &|o| {
                matches!(o, "--stage" | "-s" | "--region" | "-r" | "--config" | "-c")
            });
            if pos.first().is_some_and(|p| p.text == "remove") {
                out.push(Finding::new(
                    RuleId::ServerlessRemove,
                    format!("{name} remove"),
                ));
            }
        }
        "kubectl" | "oc" | "k" => kubectl(rest, out),
        "helm" => {
            let pos = positionals(rest, &|o| {
                matches!(o, "-n" | "--namespace" | "--kube-context" | "--kubeconfig")
            });
            if pos
                .first()
                .is_some_and(|p| matches!(p.text.as_str(), "uninstall" | "delete" | "del" | "un"))
            {
                if has_flag(rest, &[], &["--dry-run"]) {
                    return;
                }
                out.push(Finding::new(
                    RuleId::HelmUninstall,
                    pos.iter()
                        .map(|p| p.text.as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                ));
            }
        }
        _ => {}
    }
}

fn terraform(name: &str, rest: &[Arg], out: &mut Vec<Finding>) {
    if rest
        .iter()
        .any(|a| matches!(a.text.as_str(), "-help" | "--help" | "-h"))
    {
        return;
    }
    // terraform uses single-dash long options (`-chdir=x`, `-auto-approve`): all take `=`.
    let mut words: Vec<&str> = rest
        .iter()
        .filter(|a| !a.text.starts_with('-'))
        .map(|a| a.text.as_str())
        .collect();
    // terragrunt: `run-all destroy`, `run --all -- destroy`, `destroy-all`.
    if name == "terragrunt" {
        words.retain(|w| !matches!(*w, "run-all" | "run"));
    }
    let opt = |o: &str| {
        rest.iter()
            .any(|a| a.text == o || a.text.starts_with(&format!("{o}=")))
    };
    let sub = words.first().copied().unwrap_or("");
    match sub {
        "destroy" | "destroy-all" => {
            out.push(Finding::new(RuleId::IacDestroy, format!("{name} destroy")))
        }
        "apply" | "apply-all" => {
            if opt("-destroy") || opt("--destroy") {
                out.push(Finding::new(
                    RuleId::IacDestroy,
                    format!("{name} apply -destroy"),
                ));
            } else if opt("-auto-approve") || opt("--auto-approve") || opt("--non-interactive") {
                out.push(Finding::new(
                    RuleId::IacApplyAuto,
                    format!("{name} apply -auto-approve"),
                ));
            } else {
                out.push(Finding::new(RuleId::IacApply, format!("{name} apply")));
            }
        }
        "state" => {
            if let Some(op @ ("rm" | "push" | "replace-provider")) = words.get(1).copied() {
                out.push(Finding::new(
                    RuleId::IacStateRm,
                    format!("{name} state {op}"),
                ));
            }
        }
        "workspace" if words.get(1) == Some(&"delete") => {
            out.push(Finding::new(
                RuleId::IacWorkspaceDelete,
                format!("{name} workspace delete"),
            ));
        }
        _ => {}
    }
}

fn pulumi(rest: &[Arg], out: &mut Vec<Finding>) {
    let takes = |o: &str| {
        matches!(
            o,
            "-C" | "--cwd"
                | "-s"
                | "--stack"
                | "--color"
                | "-v"
                | "--verbose"
                | "-m"
                | "--message"
                | "--target"
                | "-t"
                | "--config-file"
                | "-c"
                | "--config"
        )
    };
    let pos = positionals(rest, &takes);
    let words: Vec<&str> = pos.iter().map(|p| p.text.as_str()).collect();
    let yes = has_flag(
        rest,
        &['y', 'f'],
        &["--yes", "--skip-preview", "--non-interactive"],
    );
    match words.as_slice() {
        ["destroy", ..] | ["down", ..] => {
            out.push(Finding::new(RuleId::IacDestroy, "pulumi destroy"))
        }
        ["up", ..] | ["update", ..] => {
            let rule = if yes {
                RuleId::IacApplyAuto
            } else {
                RuleId::IacApply
            };
            out.push(Finding::new(rule, "pulumi up"));
        }
        ["stack", "rm", ..] | ["stack", "remove", ..] => {
            out.push(Finding::new(RuleId::IacWorkspaceDelete, "pulumi stack rm"))
        }
        ["state", "delete", ..] => {
            out.push(Finding::new(RuleId::IacStateRm, "pulumi state delete"))
        }
        _ => {}
    }
}

/// kubectl global options that take a separate value.
fn kubectl_takes(o: &str) -> bool {
    matches!(
        o,
        "-n" | "--namespace"
            | "--context"
            | "--kubeconfig"
            | "--cluster"
            | "--user"
            | "-s"
            | "--server"
            | "--token"
            | "-l"
            | "--selector"
            | "-f"
            | "--filename"
            | "-o"
            | "--output"
            | "-c"
            | "--container"
            | "--replicas"
            | "--grace-period"
            | "--timeout"
            | "--field-selector"
            | "-k"
            | "--kustomize"
            | "--as"
            | "--request-timeout"
            | "--cascade"
            | "--dry-run"
    )
}

fn kubectl(rest: &[Arg], out: &mut Vec<Finding>) {
    let pos = positionals(rest, &kubectl_takes);
    let Some(verb) = pos.first().map(|p| p.text.as_str()) else {
        return;
    };
    let dry_run = option_values(rest, None, &["--dry-run"])
        .iter()
        .any(|v| v.text != "none")
        || rest.iter().any(|a| a.text == "--dry-run");
    if dry_run || has_flag(rest, &['h'], &["--help"]) {
        return;
    }
    let shown = pos
        .iter()
        .map(|p| p.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    match verb {
        "delete" => {
            let ns = pos.get(1).is_some_and(|k| {
                matches!(k.text.as_str(), "namespace" | "namespaces" | "ns")
                    || k.text.starts_with("namespace/")
                    || k.text.starts_with("ns/")
            });
            let rule = if ns {
                RuleId::K8sDeleteNamespace
            } else {
                RuleId::K8sDelete
            };
            out.push(Finding::new(rule, shown));
        }
        "drain" => out.push(Finding::new(RuleId::K8sDrain, shown)),
        "replace" if has_flag(rest, &[], &["--force"]) => {
            out.push(Finding::new(RuleId::K8sReplaceForce, shown));
        }
        "scale"
            if option_values(rest, None, &["--replicas"])
                .iter()
                .any(|v| v.text == "0") =>
        {
            out.push(Finding::new(RuleId::K8sScaleZero, shown));
        }
        "apply" if has_flag(rest, &[], &["--prune"]) => {
            out.push(Finding::new(RuleId::K8sApplyPrune, shown));
        }
        _ => {}
    }
}

/// For `kubectl exec ... -- CMD`: the command run in the container.
pub(crate) fn kubectl_exec_command(rest: &[Arg]) -> Option<&[Arg]> {
    let pos = positionals(rest, &kubectl_takes);
    if pos.first().map(|p| p.text.as_str()) != Some("exec") {
        return None;
    }
    let dd = rest.iter().position(|a| a.known && a.text == "--")?;
    rest.get(dd + 1..)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(name: &str, line: &str) -> Vec<RuleId> {
        let args: Vec<Arg> = line.split_whitespace().map(Arg::lit).collect();
        let mut out = Vec::new();
        check(name, &args, &mut out);
        out.into_iter().map(|f| f.rule).collect()
    }

    #[test]
    fn terraform_verbs() {
        assert_eq!(rules("terraform", "destroy"), [RuleId::IacDestroy]);
        assert_eq!(
            rules("terraform", "-chdir=infra destroy"),
            [RuleId::IacDestroy]
        );
        assert_eq!(rules("terraform", "apply -destroy"), [RuleId::IacDestroy]);
        assert_eq!(
            rules("terraform", "apply -auto-approve"),
            [RuleId::IacApplyAuto]
        );
        assert_eq!(rules("tofu", "apply"), [RuleId::IacApply]);
        assert_eq!(rules("terraform", "plan -destroy"), []);
        assert_eq!(rules("terraform", "state list"), []);
        assert_eq!(rules("terraform", "state rm x"), [RuleId::IacStateRm]);
        assert_eq!(rules("terraform", "destroy -help"), []);
        assert_eq!(rules("terragrunt", "run-all destroy"), [RuleId::IacDestroy]);
    }

    #[test]
    fn kubectl_verbs() {
        assert_eq!(
            rules("kubectl", "-n prod delete pod x"),
            [RuleId::K8sDelete]
        );
        assert_eq!(
            rules("kubectl", "delete ns prod"),
            [RuleId::K8sDeleteNamespace]
        );
        assert_eq!(rules("kubectl", "get pods -n delete"), []);
        assert_eq!(rules("kubectl", "delete --dry-run=client -f x"), []);
        assert_eq!(
            rules("kubectl", "scale deploy/x --replicas=0"),
            [RuleId::K8sScaleZero]
        );
        assert_eq!(rules("kubectl", "scale deploy/x --replicas 3"), []);
        assert_eq!(
            rules("helm", "uninstall web -n prod"),
            [RuleId::HelmUninstall]
        );
        assert_eq!(rules("helm", "list"), []);
    }
}
