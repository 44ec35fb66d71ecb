//! Containers: docker, podman, nerdctl and compose (volumes and prunes).

use crate::analyze::Finding;
use crate::rules::RuleId;
use crate::words::{Arg, has_flag};

/// docker global options that take a separate value.
fn global_takes(o: &str) -> bool {
    matches!(
        o,
        "-H" | "--host"
            | "-c"
            | "--context"
            | "--config"
            | "-l"
            | "--log-level"
            | "--tlscacert"
            | "--tlscert"
            | "--tlskey"
    )
}

/// compose options that take a separate value.
fn compose_takes(o: &str) -> bool {
    matches!(
        o,
        "-f" | "--file"
            | "-p"
            | "--project-name"
            | "--profile"
            | "--env-file"
            | "--project-directory"
            | "--ansi"
            | "--progress"
            | "--parallel"
    )
}

/// Splits `docker [global opts] SUB ARGS` (or `docker-compose ARGS`) into the words after the
/// global options: `("compose", rest)` is normalised so `docker-compose x` looks like
/// `docker compose x`.
fn split<'a>(name: &str, rest: &'a [Arg]) -> (Vec<&'a str>, &'a [Arg]) {
    let mut i = 0;
    let mut path: Vec<&str> = Vec::new();
    if name == "docker-compose" {
        path.push("compose");
    }
    while let Some(a) = rest.get(i) {
        if a.is_option() {
            let compose = path.last() == Some(&"compose");
            let takes = if compose {
                compose_takes(&a.text)
            } else {
                global_takes(&a.text)
            };
            i += if takes && !a.text.contains('=') { 2 } else { 1 };
            continue;
        }
        path.push(a.text.as_str());
        i += 1;
        // `compose`, `volume`, `system`, `container`, `image` take a further verb.
        if !matches!(
            a.text.as_str(),
            "compose" | "volume" | "system" | "container" | "image" | "network"
        ) {
            break;
        }
    }
    (path, rest.get(i..).unwrap_or(&[]))
}

/// Classifies container commands.
pub(crate) fn check(name: &str, rest: &[Arg], out: &mut Vec<Finding>) {
    if !matches!(name, "docker" | "podman" | "nerdctl" | "docker-compose") {
        return;
    }
    let (path, args) = split(name, rest);
    // `docker-compose down` is shown as typed, without the synthetic `compose`.
    let shown_path = if name == "docker-compose" {
        path.get(1..).unwrap_or(&[])
    } else {
        &path[..]
    };
    let shown = format!("{name} {}", shown_path.join(" "));
    if has_flag(args, &[], &["--help", "--dry-run"]) {
        return;
    }
    match path.as_slice() {
        ["volume", "rm" | "remove" | "prune"] => {
            out.push(Finding::new(RuleId::DockerVolumeRm, shown))
        }
        ["system", "prune"] => {
            let rule = if has_flag(args, &[], &["--volumes"]) {
                RuleId::DockerSystemPruneVolumes
            } else {
                RuleId::DockerSystemPrune
            };
            out.push(Finding::new(rule, shown));
        }
        ["rm"] | ["container", "rm"] if has_flag(args, &['v'], &["--volumes"]) => {
            out.push(Finding::new(RuleId::DockerRmVolumes, shown));
        }
        ["compose", "down"] | ["compose", "rm"] if has_flag(args, &['v'], &["--volumes"]) => {
            out.push(Finding::new(RuleId::DockerComposeDownVolumes, shown));
        }
        _ => {}
    }
}

/// For `docker exec [opts] CONTAINER CMD...` or `docker compose exec [opts] SERVICE CMD...`:
/// the command run inside.
pub(crate) fn exec_command<'a>(name: &str, rest: &'a [Arg]) -> Option<&'a [Arg]> {
    let (path, args) = split(name, rest);
    let is_exec = matches!(
        path.as_slice(),
        ["exec"] | ["container", "exec"] | ["compose", "exec"] | ["compose", "run"]
    );
    if !is_exec {
        return None;
    }
    let takes = |o: &str| {
        matches!(
            o,
            "-e" | "--env"
                | "--env-file"
                | "-u"
                | "--user"
                | "-w"
                | "--workdir"
                | "--detach-keys"
                | "--index"
                | "--name"
                | "-p"
                | "--publish"
                | "-v"
                | "--volume"
                | "--entrypoint"
                | "-l"
                | "--label"
        )
    };
    let mut i = 0;
    while let Some(a) = args.get(i) {
        if !a.is_option() {
            break;
        }
        if a.text == "--" {
            i += 1;
            break;
        }
        i += if takes(&a.text) && !a.text.contains('=') {
            2
        } else {
            1
        };
    }
    // Skip the container / service name.
    args.get(i + 1..).filter(|c| !c.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<Arg> {
        line.split_whitespace().map(Arg::lit).collect()
    }

    fn rules(name: &str, line: &str) -> Vec<RuleId> {
        let mut out = Vec::new();
        check(name, &args(line), &mut out);
        out.into_iter().map(|f| f.rule).collect()
    }

    #[test]
    fn volumes_and_prunes() {
        assert_eq!(
            rules("docker", "volume rm pgdata"),
            [RuleId::DockerVolumeRm]
        );
        assert_eq!(
            rules("docker", "--context prod volume prune -f"),
            [RuleId::DockerVolumeRm]
        );
        assert_eq!(
            rules("docker", "system prune -a --volumes"),
            [RuleId::DockerSystemPruneVolumes]
        );
        assert_eq!(
            rules("docker", "compose -f x.yml down -v"),
            [RuleId::DockerComposeDownVolumes]
        );
        assert_eq!(
            rules("docker-compose", "down --volumes"),
            [RuleId::DockerComposeDownVolumes]
        );
        assert_eq!(rules("docker", "compose down"), []);
        assert_eq!(rules("docker", "rm -f web"), []);
        assert_eq!(rules("docker", "rm -fv web"), [RuleId::DockerRmVolumes]);
        assert_eq!(rules("docker", "image prune -f"), []);
    }

    #[test]
    fn exec_inner_command() {
        let a = args("exec -it -u root db psql -c x");
        let inner: Vec<&str> = exec_command("docker", &a)
            .unwrap_or(&[])
            .iter()
            .map(|x| x.text.as_str())
            .collect();
        assert_eq!(inner, ["psql", "-c", "x"]);
        assert!(exec_command("docker", &args("ps -a")).is_none());
        assert!(exec_command("docker", &args("exec -it db")).is_none());
    }
}
