//! The walk: peel wrappers, hand scripts to the shell parser, classify each simple command,
//! then combine the findings with the user rules into one verdict.

use crate::paths::{self, Cwd, Scope};
use crate::rules::RuleId;
use crate::words::{Arg, basename, has_flag, option_values, positionals, texts};
use crate::{Action, CommandContext, Detector, Severity, Verdict, shell};
use crate::{cloud, db, docker, fs, git, infra, inline, user};

/// Maximum nesting of wrappers, scripts and substitutions.
pub(crate) const MAX_DEPTH: usize = 24;
/// Maximum number of commands analysed for one `execve` (bounds work on hostile input).
const MAX_STEPS: usize = 20_000;

/// One reason to hold a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    /// The rule.
    pub rule: RuleId,
    /// What exactly matched (a target, a statement), appended to the rule's explanation.
    pub detail: String,
}

impl Finding {
    /// A finding with a detail.
    pub fn new(rule: RuleId, detail: impl Into<String>) -> Self {
        Finding {
            rule,
            detail: detail.into(),
        }
    }
}

/// A simple command after unwrapping, with what the built-in rules found in it.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    /// The unwrapped argv.
    pub args: Vec<Arg>,
    /// Built-in findings (may be empty: user rules still see the command).
    pub findings: Vec<Finding>,
}

/// A command about to be classified.
#[derive(Debug, Clone)]
pub(crate) struct Inv {
    /// argv, program first.
    pub args: Vec<Arg>,
    /// Text known to arrive on stdin (here-string, here-document, `echo ... |`).
    pub stdin: Option<String>,
}

/// Collects reports while walking one `execve`.
pub(crate) struct Analyzer<'a> {
    /// The environment of the `execve` (for `$VAR` in scripts).
    pub env: &'a [(String, String)],
    /// Everything found so far.
    pub reports: Vec<Report>,
    steps: usize,
    exhausted: bool,
}

impl<'a> Analyzer<'a> {
    /// A fresh analyzer.
    pub fn new(env: &'a [(String, String)]) -> Self {
        Analyzer {
            env,
            reports: Vec::new(),
            steps: 0,
            exhausted: false,
        }
    }

    /// Records a report.
    pub fn report(&mut self, args: &[Arg], findings: Vec<Finding>) {
        self.reports.push(Report {
            args: args.to_vec(),
            findings,
        });
    }

    /// Counts one unit of work; false (after recording why) when the budget is spent.
    pub fn step(&mut self, args: &[Arg], depth: usize) -> bool {
        self.steps += 1;
        if self.steps > MAX_STEPS || depth > MAX_DEPTH {
            if !self.exhausted {
                self.exhausted = true;
                let why = if depth > MAX_DEPTH {
                    format!("nesting deeper than {MAX_DEPTH} levels")
                } else {
                    format!("more than {MAX_STEPS} commands")
                };
                self.report(args, vec![Finding::new(RuleId::TooDeep, why)]);
            }
            return false;
        }
        true
    }

    /// Classifies one command (program + arguments), peeling wrappers.
    pub fn command(&mut self, inv: Inv, scope: &Scope, depth: usize) {
        if inv.args.is_empty() || !self.step(&inv.args, depth) {
            return;
        }
        let Some(first) = inv.args.first() else {
            return;
        };
        let Some(prog) = first.known_text() else {
            let finding = Finding::new(RuleId::DynamicCommand, first.text.clone());
            self.report(&inv.args, vec![finding]);
            return;
        };
        // `VAR=value cmd` typed as one argv (a shell would have consumed the assignment).
        if is_assignment(prog) && !prog.starts_with('/') {
            let args = inv.args.get(1..).unwrap_or(&[]).to_vec();
            self.command(
                Inv {
                    args,
                    stdin: inv.stdin,
                },
                scope,
                depth + 1,
            );
            return;
        }
        let name = basename(prog).to_string();
        let rest = inv.args.get(1..).unwrap_or(&[]).to_vec();
        if self.wrapper(&name, &rest, &inv, scope, depth) {
            return;
        }
        let mut findings = Vec::new();
        fs::check(&name, &rest, scope, &mut findings);
        git::check(&name, &rest, &mut findings);
        infra::check(&name, &rest, &mut findings);
        cloud::check(&name, &rest, &mut findings);
        docker::check(&name, &rest, &mut findings);
        db::check(&name, &rest, inv.stdin.as_deref(), &mut findings);
        inline::check(&name, &rest, scope, &mut findings);
        if name == "find" {
            self.find(&rest, scope, depth, &mut findings);
        }
        self.report(&inv.args, findings);
        // Scripts handed to an interpreter inline may also run shell commands.
        for call in inline::shell_calls(&name, &rest) {
            match call {
                inline::Call::Script(s) => shell::analyze_script(self, &s, scope, depth + 1),
                inline::Call::Argv(v) => {
                    let args = v.into_iter().map(Arg::lit).collect();
                    self.command(Inv { args, stdin: None }, scope, depth + 1);
                }
            }
        }
    }

    /// Runs `args` (a slice of the current argv) as a new command.
    fn inner(&mut self, args: &[Arg], inv: &Inv, scope: &Scope, depth: usize) {
        self.command(
            Inv {
                args: args.to_vec(),
                stdin: inv.stdin.clone(),
            },
            scope,
            depth + 1,
        );
    }

    /// Handles wrapper programs; returns true when `name` was one.
    fn wrapper(
        &mut self,
        name: &str,
        rest: &[Arg],
        inv: &Inv,
        scope: &Scope,
        depth: usize,
    ) -> bool {
        match name {
            "sudo" => {
                if has_flag(rest, &['e', 'l'], &["--edit", "--list"])
                    && first_cmd(rest, SUDO_VAL) >= rest.len()
                {
                    return true;
                }
                let i = first_cmd(rest, SUDO_VAL);
                let mut sc = scope.clone();
                if let Some(dir) =
                    option_values(rest.get(..i).unwrap_or(rest), Some('D'), &["--chdir"]).last()
                {
                    sc.cwd =
                        Cwd::from_option(dir.known_text().and_then(|d| paths::resolve(d, scope)));
                }
                self.inner(tail(rest, i), inv, &sc, depth);
            }
            "doas" => self.inner(
                tail(rest, first_cmd(rest, &["-u", "-C"])),
                inv,
                scope,
                depth,
            ),
            "su" | "runuser" => {
                let cmds = option_values(rest, Some('c'), &["--command"]);
                if let Some(c) = cmds.last() {
                    shell::analyze_arg_script(self, c, scope, depth + 1);
                } else if name == "runuser" {
                    let i = first_cmd(rest, &["-u", "-g", "-G", "--user", "--group"]);
                    // runuser -u USER CMD: the command follows the options.
                    if has_flag(rest, &['u'], &["--user"]) {
                        self.inner(tail(rest, i), inv, scope, depth);
                    }
                }
            }
            "env" => self.env_wrapper(rest, inv, scope, depth),
            "nice" => self.inner(
                tail(rest, first_cmd(rest, &["-n", "--adjustment"])),
                inv,
                scope,
                depth,
            ),
            "timeout" => {
                let i = first_cmd(rest, &["-s", "-k", "--signal", "--kill-after"]);
                self.inner(tail(rest, i + 1), inv, scope, depth);
            }
            "nohup" | "builtin" | "unbuffer" | "caffeinate" | "catchsegv" => {
                self.inner(tail(rest, first_cmd(rest, &[])), inv, scope, depth)
            }
            "setsid" => self.inner(tail(rest, first_cmd(rest, &[])), inv, scope, depth),
            "time" => self.inner(
                tail(rest, first_cmd(rest, &["-f", "-o", "--format", "--output"])),
                inv,
                scope,
                depth,
            ),
            "command" => {
                if !has_flag(rest, &['v', 'V'], &[]) {
                    self.inner(tail(rest, first_cmd(rest, &[])), inv, scope, depth);
                }
            }
            "exec" => self.inner(tail(rest, first_cmd(rest, &["-a"])), inv, scope, depth),
            "stdbuf" => self.inner(
                tail(
                    rest,
                    first_cmd(rest, &["-i", "-o", "-e", "--input", "--output", "--error"]),
                ),
                inv,
                scope,
                depth,
            ),
            "ionice" => {
                if !has_flag(rest, &['p', 'P', 'u'], &["--pid", "--pgid", "--uid"]) {
                    let i = first_cmd(rest, &["-c", "-n", "--class", "--classdata"]);
                    self.inner(tail(rest, i), inv, scope, depth);
                }
            }
            "chrt" | "taskset" => {
                if !has_flag(rest, &['p'], &["--pid"]) {
                    let i = first_cmd(
                        rest,
                        &[
                            "-T",
                            "-P",
                            "-D",
                            "--sched-runtime",
                            "--sched-period",
                            "--sched-deadline",
                        ],
                    );
                    // The first positional is the priority (chrt) or the CPU mask (taskset).
                    self.inner(tail(rest, i + 1), inv, scope, depth);
                }
            }
            "flock" => {
                let cmds = option_values(rest, Some('c'), &["--command"]);
                if let Some(c) = cmds.last() {
                    shell::analyze_arg_script(self, c, scope, depth + 1);
                } else {
                    let i = first_cmd(
                        rest,
                        &["-w", "-E", "--timeout", "--wait", "--conflict-exit-code"],
                    );
                    self.inner(tail(rest, i + 1), inv, scope, depth);
                }
            }
            "chroot" => {
                let i = first_cmd(rest, &["--userspec", "--groups"]);
                let Some(newroot) = rest.get(i) else {
                    return true;
                };
                let mut sc = scope.clone();
                let root = newroot.known_text().and_then(|r| paths::resolve(r, scope));
                sc.cwd = Cwd::from_option(root.clone());
                sc.root = root;
                sc.workspace = None;
                self.inner(tail(rest, i + 1), inv, &sc, depth);
            }
            "watch" => {
                let i = first_cmd(rest, &["-n", "--interval", "-d", "-q", "--equexit"]);
                let cmd = tail(rest, i);
                if has_flag(rest.get(..i).unwrap_or(&[]), &['x'], &["--exec"]) {
                    self.inner(cmd, inv, scope, depth);
                } else {
                    shell::analyze_joined(self, cmd, scope, depth + 1);
                }
            }
            "eval" => shell::analyze_joined(self, rest, scope, depth + 1),
            "xargs" => self.xargs(rest, scope, depth),
            "busybox" => self.inner(rest, inv, scope, depth),
            "bash" | "sh" | "zsh" | "dash" | "ksh" | "mksh" | "ash" | "fish" | "yash" | "posh" => {
                self.shell_wrapper(rest, inv, scope, depth)
            }
            "ssh" => {
                let pos = positionals(rest, &|o| {
                    o.len() == 2
                        && "bcDEeFIiJLlmOopQRSWwB".contains(o.chars().nth(1).unwrap_or(' '))
                });
                if pos.len() > 1 {
                    let cmd: Vec<Arg> = pos.into_iter().skip(1).cloned().collect();
                    shell::analyze_joined(self, &cmd, &scope.remote(), depth + 1);
                }
            }
            "kubectl" | "oc" => {
                if let Some(cmd) = infra::kubectl_exec_command(rest) {
                    self.report(&prepend(name, rest), Vec::new());
                    self.inner(cmd, inv, &scope.remote(), depth);
                } else {
                    return false;
                }
            }
            "docker" | "podman" | "docker-compose" | "nerdctl" => {
                if let Some(cmd) = docker::exec_command(name, rest) {
                    self.report(&prepend(name, rest), Vec::new());
                    self.inner(cmd, inv, &scope.remote(), depth);
                } else {
                    return false;
                }
            }
            "heroku" => {
                if let Some(cmd) = cloud::heroku_run_command(rest) {
                    shell::analyze_joined(self, &cmd, &scope.remote(), depth + 1);
                } else {
                    return false;
                }
            }
            "fly" | "flyctl" => {
                let pos = positionals(rest, &|_| false);
                if pos.first().is_some_and(|p| p.text == "ssh") {
                    for c in option_values(rest, Some('C'), &["--command"]) {
                        shell::analyze_arg_script(self, &c, &scope.remote(), depth + 1);
                    }
                    return true;
                }
                return false;
            }
            "railway" => {
                let pos = positionals(rest, &|o| {
                    matches!(o, "-s" | "--service" | "-e" | "--environment")
                });
                if pos.first().is_some_and(|p| p.text == "run") {
                    let i = rest.iter().position(|a| a.text == "run").unwrap_or(0) + 1;
                    let j =
                        i + first_cmd(tail(rest, i), &["-s", "--service", "-e", "--environment"]);
                    self.inner(tail(rest, j), inv, scope, depth);
                    return true;
                }
                return false;
            }
            "doppler" | "op" | "infisical" | "dotenvx" | "dotenv" | "aws-vault" | "envchain"
            | "with-env" => {
                if let Some(i) = rest.iter().position(|a| a.text == "--") {
                    self.inner(tail(rest, i + 1), inv, scope, depth);
                } else if let Some(c) = option_values(rest, None, &["--command"]).last() {
                    shell::analyze_arg_script(self, c, scope, depth + 1);
                } else if name == "dotenv" {
                    let i = first_cmd(rest, &["-e", "-v", "-c"]);
                    self.inner(tail(rest, i), inv, scope, depth);
                } else {
                    return false;
                }
            }
            "npx" | "bunx" | "pnpx" | "uvx" => {
                if let Some(c) = option_values(rest, Some('c'), &["--call"]).last() {
                    shell::analyze_arg_script(self, c, scope, depth + 1);
                } else {
                    let i = first_cmd(rest, &["-p", "--package", "--from", "--with", "--python"]);
                    self.inner(tail(rest, i), inv, scope, depth);
                }
            }
            "npm" | "pnpm" | "yarn" | "bun" | "bundle" | "poetry" | "uv" | "pipx" | "pipenv"
            | "pdm" | "rye" | "hatch" => {
                let i = first_cmd(
                    rest,
                    &[
                        "--filter",
                        "-F",
                        "-C",
                        "--dir",
                        "--cwd",
                        "--project",
                        "--directory",
                        "-p",
                        "--python",
                        "--with",
                    ],
                );
                let Some(sub) = rest.get(i).and_then(Arg::known_text) else {
                    return false;
                };
                let runs = match name {
                    "npm" => matches!(sub, "exec" | "x"),
                    "pnpm" | "yarn" | "bun" => {
                        matches!(sub, "exec" | "dlx" | "x") || KNOWN_BINS.contains(&sub)
                    }
                    "bundle" => sub == "exec",
                    "pipx" | "poetry" | "uv" | "pipenv" | "pdm" | "rye" | "hatch" => sub == "run",
                    _ => false,
                };
                if !runs {
                    return false;
                }
                let skip =
                    if KNOWN_BINS.contains(&sub) && !matches!(sub, "exec" | "dlx" | "x" | "run") {
                        i
                    } else {
                        i + 1
                    };
                let t = tail(rest, skip);
                let j = first_cmd(t, &["-p", "--package", "--with", "--python", "--from"]);
                self.inner(tail(t, j), inv, scope, depth);
            }
            _ => return false,
        }
        true
    }

    fn env_wrapper(&mut self, rest: &[Arg], inv: &Inv, scope: &Scope, depth: usize) {
        let mut sc = scope.clone();
        let mut i = 0;
        let mut prefix: Vec<Arg> = Vec::new();
        while let Some(a) = rest.get(i) {
            let t = a.text.as_str();
            if a.known && t == "--" {
                i += 1;
                break;
            }
            if a.known && t.starts_with('-') && t.len() > 1 {
                let takes = matches!(
                    t,
                    "-u" | "-C" | "-S" | "--unset" | "--chdir" | "--split-string"
                );
                let value = if let Some((_, v)) = t.split_once('=') {
                    Some(Arg::lit(v))
                } else if takes {
                    i += 1;
                    rest.get(i).cloned()
                } else if t.starts_with("-C") || t.starts_with("-S") {
                    t.get(2..).map(Arg::lit)
                } else {
                    None
                };
                if t.starts_with("-C") || t.starts_with("--chdir") {
                    sc.cwd = Cwd::from_option(
                        value
                            .as_ref()
                            .and_then(Arg::known_text)
                            .and_then(|d| paths::resolve(d, scope)),
                    );
                }
                if (t.starts_with("-S") || t.starts_with("--split-string"))
                    && let Some(s) = value.as_ref().and_then(Arg::known_text)
                {
                    let words = shlex::split(s)
                        .unwrap_or_else(|| s.split_whitespace().map(str::to_string).collect());
                    prefix.extend(words.into_iter().map(Arg::lit));
                }
                i += 1;
                continue;
            }
            if a.known && is_assignment(t) {
                i += 1;
                continue;
            }
            break;
        }
        prefix.extend_from_slice(tail(rest, i));
        self.inner(&prefix, inv, &sc, depth);
    }

    /// `xargs [opts] CMD`: CMD runs with unknown extra arguments (its input).
    fn xargs(&mut self, rest: &[Arg], scope: &Scope, depth: usize) {
        let with_value = [
            "-a",
            "-d",
            "-E",
            "-I",
            "-L",
            "-n",
            "-P",
            "-s",
            "--arg-file",
            "--delimiter",
            "--eof",
            "--replace",
            "--max-lines",
            "--max-args",
            "--max-procs",
            "--max-chars",
            "--process-slot-var",
        ];
        let i = first_cmd(rest, &with_value);
        let opts = rest.get(..i.min(rest.len())).unwrap_or(&[]);
        let mut repl: Option<String> = option_values(opts, Some('I'), &["--replace"])
            .last()
            .map(|a| a.text.clone());
        if repl.is_none()
            && opts
                .iter()
                .any(|a| a.known && (a.text == "-i" || a.text.starts_with("-i")))
        {
            repl = Some("{}".into());
        }
        let mut cmd: Vec<Arg> = tail(rest, i).to_vec();
        if cmd.is_empty() {
            cmd.push(Arg::lit("echo"));
        }
        let placeholder = Arg::unknown("<xargs input>", None, true);
        match repl {
            Some(r) if !r.is_empty() => {
                for a in cmd.iter_mut().skip(1) {
                    if a.known && a.text.contains(&r) {
                        *a = placeholder.clone();
                    }
                }
            }
            _ => cmd.push(placeholder),
        }
        // xargs' stdin is its input list, not the command's stdin.
        let inner = Inv {
            args: cmd,
            stdin: None,
        };
        self.command(inner, scope, depth + 1);
    }

    fn shell_wrapper(&mut self, rest: &[Arg], inv: &Inv, scope: &Scope, depth: usize) {
        let mut command_mode = false;
        let mut read_stdin = false;
        let mut i = 0;
        while let Some(a) = rest.get(i) {
            let t = a.text.as_str();
            if !a.known {
                break;
            }
            if t == "--" || t == "-" {
                i += 1;
                break;
            }
            if t.starts_with("--") {
                i += if matches!(t, "--rcfile" | "--init-file") {
                    2
                } else {
                    1
                };
                continue;
            }
            if (t.starts_with('-') || t.starts_with('+')) && t.len() > 1 {
                let cluster = t.get(1..).unwrap_or("");
                if cluster.contains('c') {
                    command_mode = true;
                }
                if cluster.contains('s') {
                    read_stdin = true;
                }
                // -o/-O/+o/+O take an option name.
                i += if cluster.ends_with('o') || cluster.ends_with('O') {
                    2
                } else {
                    1
                };
                continue;
            }
            break;
        }
        if command_mode {
            if let Some(script) = rest.get(i) {
                // Words after the script become $0, $1, ...
                let positional = rest.get(i + 1..).unwrap_or(&[]).to_vec();
                shell::analyze_shell_c(self, script, Some(positional), scope, depth + 1);
            }
        } else if (read_stdin || rest.get(i).is_none())
            && let Some(text) = &inv.stdin
        {
            shell::analyze_script(self, text, scope, depth + 1);
        }
        // `bash script.sh`: the file is not visible to a pure library.
    }

    /// `find`: `-delete` is judged here, `-exec`/`-execdir`/`-ok` commands are classified with
    /// `{}` standing for "many paths under each starting point".
    fn find(&mut self, rest: &[Arg], scope: &Scope, depth: usize, findings: &mut Vec<Finding>) {
        let (roots, exprs) = fs::find_split(rest);
        let roots: Vec<Arg> = if roots.is_empty() {
            vec![Arg::lit(".")]
        } else {
            roots
        };
        let mut i = 0;
        while let Some(a) = exprs.get(i) {
            i += 1;
            let t = a.text.as_str();
            if t == "-delete" {
                fs::find_delete(&roots, scope, findings);
            } else if matches!(t, "-exec" | "-execdir" | "-ok" | "-okdir") {
                let mut cmd = Vec::new();
                while let Some(b) = exprs.get(i) {
                    i += 1;
                    if b.known
                        && (b.text == ";"
                            || (b.text == "+" && cmd.last().is_some_and(|l: &Arg| l.text == "{}")))
                    {
                        break;
                    }
                    cmd.push(b.clone());
                }
                for root in &roots {
                    // An unknown root leaves the placeholder without a directory.
                    let under = root.known_text().and_then(|r| paths::resolve(r, scope));
                    let inner: Vec<Arg> = cmd
                        .iter()
                        .map(|c| {
                            if c.known && c.text.contains("{}") {
                                Arg::unknown(c.text.clone(), under.clone(), true)
                            } else {
                                c.clone()
                            }
                        })
                        .collect();
                    self.command(
                        Inv {
                            args: inner,
                            stdin: None,
                        },
                        scope,
                        depth + 1,
                    );
                }
            }
        }
    }
}

/// Option names (taking a value) of sudo.
const SUDO_VAL: &[&str] = &[
    "-u",
    "-g",
    "-h",
    "-p",
    "-C",
    "-D",
    "-r",
    "-t",
    "-T",
    "-U",
    "-R",
    "--user",
    "--group",
    "--host",
    "--prompt",
    "--close-from",
    "--chdir",
    "--role",
    "--type",
    "--command-timeout",
    "--other-user",
];

/// Programs that package managers run directly (`yarn prisma ...`).
const KNOWN_BINS: &[&str] = &[
    "prisma",
    "rimraf",
    "sequelize",
    "sequelize-cli",
    "cdk",
    "typeorm",
    "knex",
    "supabase",
    "serverless",
    "sls",
    "sst",
    "rails",
    "rake",
    "terraform",
    "pulumi",
    "wrangler",
    "vercel",
    "netlify",
    "railway",
    "drizzle-kit",
];

/// Index of the first non-option argument, skipping values of `with_value` options and a `--`.
pub(crate) fn first_cmd(rest: &[Arg], with_value: &[&str]) -> usize {
    let mut i = 0;
    while let Some(a) = rest.get(i) {
        if !a.is_option() {
            return i;
        }
        if a.text == "--" {
            return i + 1;
        }
        let bare = !a.text.contains('=');
        i += if bare && with_value.contains(&a.text.as_str()) {
            2
        } else {
            1
        };
    }
    i
}

fn tail(rest: &[Arg], i: usize) -> &[Arg] {
    rest.get(i..).unwrap_or(&[])
}

fn prepend(name: &str, rest: &[Arg]) -> Vec<Arg> {
    let mut v = vec![Arg::lit(name)];
    v.extend_from_slice(rest);
    v
}

/// `NAME=value` with a valid shell name.
pub(crate) fn is_assignment(t: &str) -> bool {
    match t.split_once('=') {
        Some((n, _)) => {
            !n.is_empty()
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !n.starts_with(|c: char| c.is_ascii_digit())
        }
        None => false,
    }
}

/// Entry point behind [`Detector::classify`].
pub(crate) fn classify(det: &Detector, cmd: &CommandContext) -> Verdict {
    let cwd = Cwd::from_option(Some(paths::normalize(cmd.cwd)).filter(|_| cmd.cwd.is_absolute()));
    classify_in(det, cmd, cwd)
}

/// Entry point behind [`Detector::classify_deferring_cwd`]: `None` when the working
/// directory mattered and the command must be classified again with it.
pub(crate) fn classify_without_cwd(det: &Detector, cmd: &CommandContext) -> Option<Verdict> {
    Cwd::reset_deferred_reads();
    let verdict = classify_in(det, cmd, Cwd::Deferred);
    (!Cwd::deferred_was_read()).then_some(verdict)
}

fn classify_in(det: &Detector, cmd: &CommandContext, cwd: Cwd) -> Verdict {
    let scope = Scope {
        cwd,
        workspace: cmd
            .workspace
            .filter(|w| w.is_absolute())
            .map(paths::normalize),
        home: cmd.home.filter(|h| h.is_absolute()).map(paths::normalize),
        root: None,
    };
    let mut an = Analyzer::new(cmd.env);
    let args: Vec<Arg> = cmd.argv.iter().map(|s| Arg::lit(s.as_str())).collect();
    an.command(Inv { args, stdin: None }, &scope, 0);
    combine(det, an.reports)
}

/// Candidate verdict for ordering.
struct Candidate {
    action: Action,
    severity: Option<Severity>,
    rule_id: Option<String>,
    explanation: String,
    matched: Vec<String>,
}

fn combine(det: &Detector, reports: Vec<Report>) -> Verdict {
    let mut best: Option<Candidate> = None;
    let mut allowed_by: Option<(String, Vec<String>)> = None;
    for r in &reports {
        let argv = texts(&r.args);
        let matching: Vec<&user::CompiledRule> = det
            .user_rules()
            .iter()
            .filter(|u| u.matches(&r.args))
            .collect();
        let user_allow = matching.iter().find(|u| u.action == Action::Allow);
        let user_restrict: Vec<&&user::CompiledRule> = matching
            .iter()
            .filter(|u| u.action != Action::Allow)
            .collect();
        let mut cands: Vec<Candidate> = Vec::new();
        for f in &r.findings {
            let action = f.rule.action();
            if action == Action::Ask && user_allow.is_some() && user_restrict.is_empty() {
                continue;
            }
            let explanation = if f.detail.is_empty() {
                f.rule.explanation().to_string()
            } else {
                format!("{}: {}", f.rule.explanation(), f.detail)
            };
            cands.push(Candidate {
                action,
                severity: Some(f.rule.severity()),
                rule_id: Some(f.rule.id().to_string()),
                explanation,
                matched: argv.clone(),
            });
        }
        if let Some(u) = user_allow
            && user_restrict.is_empty()
            && !r.findings.is_empty()
            && allowed_by.is_none()
        {
            allowed_by = Some((u.id.clone(), argv.clone()));
        }
        for u in user_restrict {
            cands.push(Candidate {
                action: u.action,
                severity: Some(u.severity()),
                rule_id: Some(u.id.clone()),
                explanation: u.explanation(),
                matched: argv.clone(),
            });
        }
        for c in cands {
            let better = match &best {
                None => true,
                Some(b) => (c.action, c.severity) > (b.action, b.severity),
            };
            if better {
                best = Some(c);
            }
        }
    }
    match best {
        Some(c) => Verdict {
            action: c.action,
            rule_id: c.rule_id,
            severity: c.severity,
            explanation: c.explanation,
            matched: c.matched,
        },
        None => match allowed_by {
            Some((id, matched)) => Verdict {
                action: Action::Allow,
                explanation: format!("allowed by user rule `{id}`"),
                rule_id: Some(id),
                severity: None,
                matched,
            },
            None => Verdict {
                action: Action::Allow,
                rule_id: None,
                severity: None,
                explanation: "no destructive pattern found".into(),
                matched: Vec::new(),
            },
        },
    }
}
