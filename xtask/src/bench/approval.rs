//! The `approval` workload: how fast a held action reaches a human and how fast the answer
//! reaches the held process.
//!
//! One session per rep runs a Python agent that, [`HOLDS`] times, forks a child which notes the
//! time and execs `date +%s%N`, a command the bench policy's `[[exec.rule]]` asks about. The
//! bench is the approver: it subscribes to the session's approval socket like `attach` does,
//! and for every held action feeds the update to the approval UI's own state (`App`) and draws
//! it (on ratatui's `TestBackend`: a real terminal only adds the write of the changed cells),
//! then answers, alternately deny and allow. Measured per hold, on one clock (CLOCK_REALTIME):
//!
//! - hold → UI: from the child's last instant before `execve` to the frame that shows the hold;
//! - decision → resume: from the instant before the decision is sent to the held call's return
//!   (deny: the child notes the time when `execve` fails with EPERM; allow: `date` prints the
//!   time it started, which also counts its exec and dynamic loading, so it is an upper bound).

use std::fs;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use agent_sandbox_tui::client::Client;
use agent_sandbox_tui::proto::Decision;
use agent_sandbox_tui::tui::{App, End, event_loop};
use anyhow::{Context as _, Result, bail};
use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

/// Held actions per session.
pub const HOLDS: usize = 40;
/// Bound of a failing rep (not a timing assertion).
const DEADLINE: Duration = Duration::from_secs(60);

/// The agent: forks, notes the time, execs the held command; prints one line per step.
const AGENT: &str = r#"
import os, sys, time
for i in range(int(sys.argv[1])):
    pid = os.fork()
    if pid == 0:
        print(f"t0 {time.time_ns()}", flush=True)
        try:
            os.execv("/bin/date", ["date", "+%s%N"])
        except OSError:
            print(f"denied {time.time_ns()}", flush=True)
        os._exit(126)
    os.waitpid(pid, 0)
"#;

/// The bench policy: the held command, asked about.
const POLICY: &str = r#"
[[exec.rule]]
id = "bench-hold"
why = "the approval benchmark's held command"
action = "ask"
match = "date +%s%N"
"#;

/// One rep's measurements, in milliseconds, one entry per hold.
#[derive(Debug, Default)]
pub struct Rep {
    /// Held action → drawn in the UI.
    pub hold_to_ui_ms: Vec<f64>,
    /// Decision sent → held call returned.
    pub resume_ms: Vec<f64>,
}

/// A workspace (with `.git`, so no repository policy above it applies), its policy and a
/// state directory of its own.
pub fn workspace(bench_dir: &Path) -> Result<PathBuf> {
    let ws = bench_dir.join("approval-workspace");
    fs::create_dir_all(ws.join(".git"))
        .with_context(|| format!("failed to create {}", ws.display()))?;
    fs::write(ws.join("policy.toml"), POLICY).context("writing the bench policy")?;
    fs::write(ws.join("agent.py"), AGENT).context("writing the bench agent")?;
    Ok(ws)
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// Ends a failed rep's session: SIGKILL of its supervisor (the watchdog ends the tree).
fn abandon(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs one rep: a session with [`HOLDS`] held actions, each answered by the bench.
pub fn rep(supervisor: &Path, workspace: &Path, stderr_log: &Path) -> Result<Rep> {
    let state = workspace.join("state");
    let _ = fs::remove_dir_all(&state);
    let log = fs::File::create(stderr_log)
        .with_context(|| format!("failed to create {}", stderr_log.display()))?;
    let mut child = Command::new(supervisor)
        .args([
            "run",
            "--user",
            "root",
            "--trust-policy",
            "--no-tui",
            "--state-dir",
        ])
        .arg(&state)
        .args(["--", "python3", "agent.py", &HOLDS.to_string()])
        .current_dir(workspace)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .with_context(|| format!("failed to start {}", supervisor.display()))?;
    let r = approve_all(&mut child, &state);
    if r.is_err() {
        abandon(&mut child);
        return r.map(|_| Rep::default());
    }
    let status = child.wait().context("waiting for the session")?;
    if !status.success() {
        bail!(
            "the session failed ({status}; see {})",
            stderr_log.display()
        );
    }
    r.map(|(stamps, decided)| pair(&stamps, &decided))?
}

/// What the bench saw of one hold: when it was on screen and when it was answered (ns), and
/// how.
type Decided = (i128, i128, Decision);

/// Drives the approval UI's own event loop (updates folded in, frame drawn, keys polled every
/// 20 ms) on a `TestBackend`; the "keyboard" reads the drawn screen and presses `d` or `a` as
/// soon as the next hold is on it. Returns the agent's output lines and the bench's times.
fn approve_all(child: &mut Child, state: &Path) -> Result<(Vec<String>, Vec<Decided>)> {
    let sockets = state.join("sessions");
    let start = Instant::now();
    let socket = loop {
        if let Some(s) = fs::read_dir(&sockets).ok().and_then(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|e| e == "sock"))
        }) {
            break s;
        }
        if start.elapsed() > DEADLINE || child.try_wait()?.is_some() {
            bail!("the session's approval socket never appeared");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let mut sub = Client::connect(&socket)
        .and_then(Client::subscribe)
        .context("subscribing to the session")?;
    let mut app = App::new();
    let mut term = Terminal::new(TestBackend::new(160, 50)).context("a test terminal")?;
    let mut decided: Vec<Decided> = Vec::with_capacity(HOLDS);
    let mut input = |t: &Terminal<TestBackend>, wait: Duration| {
        if start.elapsed() > DEADLINE {
            // Ends the loop; the caller reports the shortfall.
            return Ok(Some(Event::Key(KeyEvent::new(
                KeyCode::Char('q'),
                KeyModifiers::NONE,
            ))));
        }
        let id = decided.len() + 1;
        if id <= HOLDS && on_screen(t, id) {
            let seen = now_ns();
            let (key, decision) = if id % 2 == 1 {
                ('d', Decision::Deny)
            } else {
                ('a', Decision::Allow)
            };
            decided.push((seen, now_ns(), decision));
            return Ok(Some(Event::Key(KeyEvent::new(
                KeyCode::Char(key),
                KeyModifiers::NONE,
            ))));
        }
        // What crossterm's poll does when no key comes.
        std::thread::sleep(wait);
        Ok(None)
    };
    let end = event_loop(&mut term, &mut app, &mut sub, &mut input).context("the approval UI")?;
    if decided.len() < HOLDS {
        bail!(
            "only {} of {HOLDS} holds were shown ({end:?})",
            decided.len()
        );
    }
    if end != End::Ended(0) {
        bail!("the session did not end cleanly: {end:?}");
    }
    let out = child.stdout.take().context("the session's stdout")?;
    let lines = BufReader::new(out)
        .lines()
        .collect::<Result<Vec<_>, _>>()
        .context("reading the agent's output")?;
    Ok((lines, decided))
}

/// Whether hold `id` is in the drawn queue (its row reads `#ID` then spaces).
fn on_screen(t: &Terminal<TestBackend>, id: usize) -> bool {
    let buf = t.backend().buffer();
    let width = usize::from(buf.area.width).max(1);
    let needle = format!("#{id} ");
    buf.content().chunks(width).any(|row| {
        row.iter()
            .map(|c| c.symbol())
            .collect::<String>()
            .contains(&needle)
    })
}

/// Pairs the agent's lines (`t0 NS`, then `denied NS` or the bare `NS` that date printed)
/// with the bench's times, hold by hold.
fn pair(lines: &[String], decided: &[Decided]) -> Result<Rep> {
    let mut rep = Rep::default();
    let mut it = lines.iter().map(|l| l.trim()).filter(|l| !l.is_empty());
    for (i, &(seen, sent, decision)) in decided.iter().enumerate() {
        let t0 = it
            .next()
            .and_then(|l| l.strip_prefix("t0 "))
            .and_then(|v| v.parse::<i128>().ok())
            .with_context(|| format!("hold {i}: no start time in the agent's output"))?;
        let end_line = it
            .next()
            .with_context(|| format!("hold {i}: no end in the agent's output"))?;
        let end = match (decision, end_line.strip_prefix("denied ")) {
            (Decision::Deny, Some(v)) => v.parse::<i128>().ok(),
            (Decision::Allow, None) => end_line.parse::<i128>().ok(),
            _ => None,
        }
        .with_context(|| format!("hold {i} ({decision:?}): unexpected line {end_line:?}"))?;
        rep.hold_to_ui_ms.push((seen - t0) as f64 / 1e6);
        rep.resume_ms.push((end - sent) as f64 / 1e6);
    }
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_pair_with_decisions_in_order() {
        let lines: Vec<String> = ["t0 1000000", "denied 9000000", "t0 20000000", "26000000"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let decided = [
            (4_000_000, 5_000_000, Decision::Deny),
            (22_000_000, 23_000_000, Decision::Allow),
        ];
        let rep = pair(&lines, &decided).unwrap();
        assert_eq!(rep.hold_to_ui_ms, [3.0, 2.0]);
        assert_eq!(rep.resume_ms, [4.0, 3.0]);
        // An allowed hold whose command printed "denied" is an error, not a number.
        let bad = [decided[1], decided[0]];
        assert!(pair(&lines, &bad).is_err());
    }
}
