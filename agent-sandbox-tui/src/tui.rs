//! The approval terminal UI.
//!
//! [`App`] is the whole state and is pure: [`App::apply`] folds in an [`Update`] from the
//! supervisor, [`App::on_key`] turns a key into an [`Action`]. [`draw`] renders an `App` on a
//! ratatui frame, and [`run`] wires both to the approval socket and the real terminal.
//!
//! Everything shown comes from the agent's side (argv, paths, comm), so every string is passed
//! through [`sanitize`]: a control character or a bidi override in an argv must not reach the
//! terminal or disguise the command a person is approving.

use std::collections::VecDeque;
use std::io::{self, IsTerminal};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::Frame;
use ratatui::Terminal;
use ratatui::backend::{Backend, CrosstermBackend};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Borders, Clear, List, ListItem, ListState, Paragraph, Wrap};
use serde_json::Value;

use crate::client::{Client, Next, Subscription};
use crate::error::TuiError;
use crate::proto::{Approver, Decision, Held, HeldKind, Reply, Request, Summary, Update};

/// How many feed lines are kept.
pub const FEED_CAP: usize = 2000;
/// Longest rendered feed line, in characters (argvs can be long).
const LINE_CHARS: usize = 2000;
/// The countdown needs a redraw at least this often.
const REDRAW: Duration = Duration::from_millis(250);
/// Key poll timeout: bounds how late a new hold is drawn.
const POLL: Duration = Duration::from_millis(20);
/// Updates folded in per loop turn at most, so a flood cannot starve keys and drawing.
const DRAIN_MAX: usize = 4096;

/// What the caller of [`App::on_key`] should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this request to the supervisor.
    Send(Request),
    /// Leave the UI (the session goes on).
    Quit,
}

/// A held action and when it reached the UI (the countdown runs from then).
#[derive(Debug, Clone)]
struct Pending {
    held: Held,
    arrived: Instant,
}

/// Highlighting class of a feed line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Plain,
    Refused,
    Held,
    Decision,
}

#[derive(Debug, Clone)]
struct FeedLine {
    text: String,
    class: Class,
}

/// A decision waiting for `y`.
#[derive(Debug, Clone)]
struct Confirm {
    id: u64,
    decision: Decision,
    lines: Vec<String>,
}

#[derive(Debug, Clone)]
enum Mode {
    Normal,
    /// Typing a feed filter (not applied until Enter).
    Filter(String),
    Confirm(Confirm),
    Help,
}

/// The state of the approval UI.
#[derive(Debug, Clone)]
pub struct App {
    session: String,
    command: Vec<String>,
    summary: Summary,
    queue: Vec<Pending>,
    selected: usize,
    feed: VecDeque<FeedLine>,
    /// The applied filter, lower-cased.
    filter: String,
    mode: Mode,
    status: String,
    status_error: bool,
    now: Instant,
    ended: Option<i32>,
}

impl Default for App {
    fn default() -> Self {
        App::new()
    }
}

impl App {
    /// An empty UI, waiting for the snapshot.
    pub fn new() -> App {
        App {
            session: String::new(),
            command: Vec::new(),
            summary: Summary::default(),
            queue: Vec::new(),
            selected: 0,
            feed: VecDeque::new(),
            filter: String::new(),
            mode: Mode::Normal,
            status: String::new(),
            status_error: false,
            now: Instant::now(),
            ended: None,
        }
    }

    /// Folds in one update, received now.
    pub fn apply(&mut self, update: Update) {
        self.apply_at(update, Instant::now());
    }

    /// Folds in one update received at `now` (the countdown of a new hold starts then).
    pub fn apply_at(&mut self, update: Update, now: Instant) {
        match update {
            Update::Snapshot {
                session,
                command,
                held,
                summary,
            } => {
                let keep = self.selected_id();
                self.session = session;
                self.command = command;
                self.summary = summary;
                self.queue = held
                    .into_iter()
                    .map(|held| Pending { held, arrived: now })
                    .collect();
                self.selected = keep
                    .and_then(|id| self.index_of(id))
                    .unwrap_or(0)
                    .min(self.queue.len().saturating_sub(1));
                self.drop_stale_confirm();
            }
            Update::Held { held } => match self.index_of(held.id) {
                // A repeated id replaces the entry (the supervisor's view wins).
                Some(i) => {
                    if let Some(p) = self.queue.get_mut(i) {
                        *p = Pending { held, arrived: now };
                    }
                }
                None => self.queue.push(Pending { held, arrived: now }),
            },
            Update::Resolved { id, decision, by } => {
                if let Some(i) = self.index_of(id) {
                    self.queue.remove(i);
                    // Keep the same item selected when one above it goes away; when the
                    // selected one goes, the next one takes its place.
                    if i < self.selected {
                        self.selected -= 1;
                    }
                    self.selected = self.selected.min(self.queue.len().saturating_sub(1));
                }
                self.set_status(
                    format!(
                        "#{id}: {} by {}",
                        decision_word(decision),
                        approver_word(by)
                    ),
                    false,
                );
                self.drop_stale_confirm();
            }
            Update::Event { event } => {
                let class = match event.get("kind").and_then(Value::as_str) {
                    Some("net_refused" | "file_refused") => Class::Refused,
                    Some("held") => Class::Held,
                    Some("decision") => Class::Decision,
                    _ => Class::Plain,
                };
                self.feed.push_back(FeedLine {
                    text: event_line(&event),
                    class,
                });
                while self.feed.len() > FEED_CAP {
                    self.feed.pop_front();
                }
            }
            Update::Summary { summary } => self.summary = summary,
            Update::Answer { reply } => match reply {
                Reply::Done { message } => self.set_status(sanitize(&message), false),
                Reply::Error { message } => {
                    self.set_status(format!("error: {}", sanitize(&message)), true)
                }
                Reply::Held { .. } => {
                    self.set_status("unexpected answer: a list of held actions".into(), true)
                }
            },
            Update::Ended { exit_code } => {
                self.ended = Some(exit_code);
                self.set_status(
                    format!("the session ended (agent exit code {exit_code})"),
                    false,
                );
            }
        }
    }

    /// Moves the clock used by the countdown.
    pub fn tick(&mut self, now: Instant) {
        self.now = now;
    }

    /// Shows an error (a malformed line, a failed send) in the status line.
    pub fn show_error(&mut self, err: &TuiError) {
        self.set_status(format!("error: {}", sanitize(&err.to_string())), true);
    }

    /// Handles one key; returns what to do about it.
    pub fn on_key(&mut self, key: KeyEvent) -> Option<Action> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        // Raw mode swallows SIGINT, so Ctrl-C has to quit by hand.
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return Some(Action::Quit);
        }
        match std::mem::replace(&mut self.mode, Mode::Normal) {
            Mode::Help => None,
            Mode::Confirm(c) => {
                if key.code == KeyCode::Char('y')
                    && key.modifiers.difference(KeyModifiers::SHIFT).is_empty()
                {
                    Some(self.send(c.id, c.decision))
                } else {
                    self.set_status(
                        format!("cancelled: {} for #{}", c.decision.as_str(), c.id),
                        false,
                    );
                    None
                }
            }
            Mode::Filter(mut typed) => {
                match key.code {
                    KeyCode::Enter => {
                        self.filter = typed.to_lowercase();
                    }
                    KeyCode::Esc => self.filter.clear(),
                    KeyCode::Backspace => {
                        typed.pop();
                        self.mode = Mode::Filter(typed);
                    }
                    KeyCode::Char(c)
                        if !key
                            .modifiers
                            .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) =>
                    {
                        typed.push(c);
                        self.mode = Mode::Filter(typed);
                    }
                    _ => self.mode = Mode::Filter(typed),
                }
                None
            }
            Mode::Normal => self.normal_key(key),
        }
    }

    fn normal_key(&mut self, key: KeyEvent) -> Option<Action> {
        if key
            .modifiers
            .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
        {
            return None;
        }
        match key.code {
            KeyCode::Up | KeyCode::Char('k') => {
                self.selected = self.selected.saturating_sub(1);
                None
            }
            KeyCode::Down | KeyCode::Char('j') => {
                if self.selected + 1 < self.queue.len() {
                    self.selected += 1;
                }
                None
            }
            KeyCode::Char('a') => self.decide_selected(Decision::Allow),
            KeyCode::Char('d') => self.decide_selected(Decision::Deny),
            KeyCode::Char('A') => {
                let h = self.selected_held()?.clone();
                self.mode = Mode::Confirm(Confirm {
                    id: h.id,
                    decision: Decision::AllowSession,
                    lines: vec![
                        format!(
                            "Allow rule `{}` for the rest of this session?",
                            sanitize(&h.rule)
                        ),
                        String::new(),
                        format!(
                            "#{} proceeds now, and every later action held by this rule",
                            h.id
                        ),
                        "proceeds without asking until the session ends.".into(),
                        format!("Rule: {}", sanitize(&h.why)),
                        String::new(),
                        "y: allow for the session    any other key: cancel".into(),
                    ],
                });
                None
            }
            KeyCode::Char('K') => {
                let h = self.selected_held()?.clone();
                self.mode = Mode::Confirm(Confirm {
                    id: h.id,
                    decision: Decision::Kill,
                    lines: vec![
                        "Kill the whole process tree of the session?".into(),
                        String::new(),
                        "The agent and everything it started are killed at once".into(),
                        format!("(cgroup.kill), starting from held action #{}.", h.id),
                        String::new(),
                        "y: kill    any other key: cancel".into(),
                    ],
                });
                None
            }
            KeyCode::Char('f') => {
                Some(self.send(self.selected_id().unwrap_or(0), Decision::Freeze))
            }
            KeyCode::Char('t') => Some(self.send(self.selected_id().unwrap_or(0), Decision::Thaw)),
            KeyCode::Char('?') => {
                self.mode = Mode::Help;
                None
            }
            KeyCode::Char('/') => {
                self.mode = Mode::Filter(String::new());
                None
            }
            KeyCode::Esc => {
                self.filter.clear();
                None
            }
            KeyCode::Char('q') => Some(Action::Quit),
            _ => None,
        }
    }

    fn decide_selected(&mut self, decision: Decision) -> Option<Action> {
        let id = self.selected_held()?.id;
        Some(self.send(id, decision))
    }

    fn send(&mut self, id: u64, decision: Decision) -> Action {
        self.set_status(format!("sent {} for #{id}…", decision.as_str()), false);
        Action::Send(Request::Decide {
            id,
            decision,
            by: Approver::Tui,
        })
    }

    /// The selected held action; with none, says so in the status line.
    fn selected_held(&mut self) -> Option<&Held> {
        if self.queue.is_empty() {
            self.set_status("nothing is held: no action to decide".into(), false);
            return None;
        }
        self.queue.get(self.selected).map(|p| &p.held)
    }

    fn drop_stale_confirm(&mut self) {
        if let Mode::Confirm(c) = &self.mode {
            let id = c.id;
            if self.index_of(id).is_none() {
                self.mode = Mode::Normal;
                self.set_status(
                    format!("#{id} was decided before you confirmed; nothing sent"),
                    true,
                );
            }
        }
    }

    fn set_status(&mut self, text: String, error: bool) {
        self.status = text;
        self.status_error = error;
    }

    fn index_of(&self, id: u64) -> Option<usize> {
        self.queue.iter().position(|p| p.held.id == id)
    }

    fn selected_id(&self) -> Option<u64> {
        self.queue.get(self.selected).map(|p| p.held.id)
    }

    /// The selected held action, if any.
    pub fn selected(&self) -> Option<&Held> {
        self.queue.get(self.selected).map(|p| &p.held)
    }

    /// Ids of the pending held actions, oldest first.
    pub fn queue_ids(&self) -> Vec<u64> {
        self.queue.iter().map(|p| p.held.id).collect()
    }

    /// The status line's text.
    pub fn status(&self) -> &str {
        &self.status
    }

    /// The agent's exit code once the session has ended.
    pub fn ended(&self) -> Option<i32> {
        self.ended
    }

    /// The applied feed filter (lower-cased; empty: none).
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// Whether a confirmation (`A`, `K`) is waiting for `y`.
    pub fn confirming(&self) -> bool {
        matches!(self.mode, Mode::Confirm(_))
    }

    /// Whether the help overlay is shown.
    pub fn help_shown(&self) -> bool {
        matches!(self.mode, Mode::Help)
    }

    /// Feed lines that pass the filter, oldest first.
    pub fn visible_feed(&self) -> impl DoubleEndedIterator<Item = &str> {
        self.feed
            .iter()
            .filter(|l| self.matches(&l.text))
            .map(|l| l.text.as_str())
    }

    fn matches(&self, text: &str) -> bool {
        self.filter.is_empty() || text.to_lowercase().contains(&self.filter)
    }

    /// Seconds left before held action `p` times out.
    fn seconds_left(&self, p: &Pending) -> u64 {
        p.held
            .timeout_secs
            .saturating_sub(self.now.saturating_duration_since(p.arrived).as_secs())
    }
}

fn decision_word(d: Decision) -> &'static str {
    match d {
        Decision::Allow => "allowed",
        Decision::AllowSession => "allowed for the session",
        Decision::Deny => "denied",
        Decision::Kill => "killed",
        Decision::Freeze => "frozen",
        Decision::Thaw => "thawed",
    }
}

fn approver_word(a: Approver) -> &'static str {
    match a {
        Approver::Tui => "the UI",
        Approver::Decide => "`decide`",
        Approver::Timeout => "timeout",
        Approver::Supervisor => "the supervisor",
    }
}

fn kind_word(k: HeldKind) -> &'static str {
    match k {
        HeldKind::Exec => "exec",
        HeldKind::Delete => "delete",
        HeldKind::Rename => "rename",
        HeldKind::Truncate => "truncate",
        HeldKind::MassDelete => "mass-delete",
    }
}

/// Escapes what must not reach the terminal or could disguise text: control characters (as
/// `\n`, `\t`, `\u{1b}`...) and invisible or direction-changing characters.
pub fn sanitize(s: &str) -> String {
    fn hidden(c: char) -> bool {
        c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{061c}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
    }
    if !s.chars().any(hidden) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if hidden(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Quotes one argument the way a shell would need it, so argument boundaries stay visible.
fn quote_arg(a: &str) -> String {
    let plain = !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c));
    if plain {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', "'\\''"))
    }
}

/// An argv as one shell-quoted, sanitized line.
pub fn command_line(argv: &[String]) -> String {
    sanitize(
        &argv
            .iter()
            .map(|a| quote_arg(a))
            .collect::<Vec<_>>()
            .join(" "),
    )
}

fn truncate_chars(s: &mut String, max: usize) {
    if let Some((i, _)) = s.char_indices().nth(max) {
        s.truncate(i);
        s.push('…');
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(a) if a.iter().all(|x| x.is_string() || x.is_number()) => {
            Some(a.iter().filter_map(scalar).collect::<Vec<_>>().join(" "))
        }
        _ => None,
    }
}

/// One event (the `--events` JSON object) as one feed line:
/// `time pid comm kind key-fields`.
pub fn event_line(ev: &Value) -> String {
    let s = |v: &Value, k: &str| v.get(k).and_then(scalar).unwrap_or_default();
    let time = ev
        .get("time")
        .and_then(Value::as_str)
        .map(|t| {
            // The wall-clock part, without date and zone: `07:42:09.123`.
            let clock = t.split_once('T').map_or(t, |(_, c)| c);
            clock
                .chars()
                .take_while(|c| c.is_ascii_digit() || matches!(c, ':' | '.'))
                .take(12)
                .collect::<String>()
        })
        .unwrap_or_default();
    let pid = ev
        .get("pid")
        .and_then(Value::as_u64)
        .map_or_else(|| "-".to_string(), |p| p.to_string());
    let mut comm = sanitize(&s(ev, "comm"));
    truncate_chars(&mut comm, 16);
    let kind = sanitize(
        &ev.get("kind")
            .and_then(Value::as_str)
            .map_or("?".into(), String::from),
    );
    let null = Value::Null;
    let f = ev.get("fields").unwrap_or(&null);
    let port = |f: &Value| match (f.get("address").and_then(Value::as_str), f.get("port")) {
        (Some(a), Some(p)) if a.contains(':') => format!("[{a}]:{p}"),
        (Some(a), Some(p)) => format!("{a}:{p}"),
        (Some(a), None) => a.to_string(),
        (None, _) => String::new(),
    };
    let detail = match kind.as_str() {
        "exec" => {
            let argv: Vec<String> = f
                .get("argv")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(|x| scalar(x).unwrap_or_default()).collect())
                .unwrap_or_default();
            let mut d = if argv.is_empty() {
                s(f, "filename")
            } else {
                argv.iter()
                    .map(|a| quote_arg(a))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            if let Some(ret) = f.get("ret").and_then(Value::as_i64).filter(|r| *r != 0) {
                d.push_str(&format!("  (failed: {ret})"));
            }
            d
        }
        "exec_result" => format!("ret={}", s(f, "ret")),
        "open" => format!("{} {}", s(f, "path"), s(f, "flags")),
        "connect" => port(f),
        "path_op" => {
            let mut d = format!("{} {}", s(f, "syscall"), s(f, "path"));
            if f.get("target").is_some() {
                d.push_str(&format!(" -> {}", s(f, "target")));
            }
            d
        }
        "fork" => format!("child {}", s(f, "child_pid")),
        "exit" => String::new(),
        "net_refused" => format!("rule {}: {}/{}", s(f, "rule"), port(f), s(f, "protocol")),
        "file_refused" => format!("rule {}: {}", s(f, "rule"), s(f, "path")),
        _ => {
            // Unknown kinds: their scalar fields (or top-level ones), key=value.
            let skip = [
                "time", "ktime_ns", "kind", "pid", "tid", "ppid", "uid", "comm", "ancestry",
                "fields",
            ];
            let obj = f.as_object().or_else(|| ev.as_object());
            obj.map(|m| {
                m.iter()
                    .filter(|(k, _)| f.is_object() || !skip.contains(&k.as_str()))
                    .filter_map(|(k, v)| scalar(v).map(|v| format!("{k}={v}")))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
        }
    };
    let mut line = format!(
        "{time:<12} {pid:>7} {comm:<16} {kind:<12} {}",
        sanitize(&detail)
    );
    truncate_chars(&mut line, LINE_CHARS);
    line.truncate(line.trim_end().len());
    line
}

/// The help overlay's lines.
pub const HELP: &[(&str, &str)] = &[
    ("Up/Down, j/k", "select a held action"),
    ("a", "allow the selected action once"),
    (
        "A",
        "allow its rule for the rest of the session (asks: y confirms)",
    ),
    ("d", "deny it: the call fails with EPERM"),
    ("K", "kill the whole process tree (asks: y confirms)"),
    ("f", "freeze the whole tree (works with nothing held)"),
    ("t", "thaw the tree"),
    ("/", "filter the event feed: type, Enter applies"),
    ("Esc", "clear the feed filter"),
    ("?", "this help (any key closes it)"),
    (
        "q, Ctrl-C",
        "quit this UI only: the session goes on and held",
    ),
    (
        "",
        "actions keep waiting; `agent-sandbox attach` comes back,",
    ),
    (
        "",
        "`agent-sandbox decide ID allow|deny|kill` answers from a script",
    ),
];

/// Draws the whole UI.
pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    let [top, middle, feed, bottom] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Fill(3),
        Constraint::Fill(2),
        Constraint::Length(1),
    ])
    .areas(area);
    let [queue, details] =
        Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(middle);
    draw_top(frame, app, top);
    draw_queue(frame, app, queue);
    draw_details(frame, app, details);
    draw_feed(frame, app, feed);
    draw_status(frame, app, bottom);
    match &app.mode {
        Mode::Help => {
            let lines: Vec<Line> = HELP
                .iter()
                .map(|(k, v)| {
                    Line::from(vec![
                        Span::styled(
                            format!("{k:<14}"),
                            Style::new().add_modifier(Modifier::BOLD),
                        ),
                        Span::raw(*v),
                    ])
                })
                .collect();
            popup(frame, area, " keys ", lines, Color::Cyan);
        }
        Mode::Confirm(c) => {
            let lines = c.lines.iter().map(|l| Line::from(l.as_str())).collect();
            popup(frame, area, " confirm ", lines, Color::Yellow);
        }
        Mode::Normal | Mode::Filter(_) => {}
    }
}

fn popup(frame: &mut Frame, area: Rect, title: &str, lines: Vec<Line>, color: Color) {
    let width = lines
        .iter()
        .map(Line::width)
        .max()
        .unwrap_or(0)
        .saturating_add(4)
        .min(usize::from(area.width)) as u16;
    let height = (lines.len().saturating_add(2)).min(usize::from(area.height)) as u16;
    let rect = Rect {
        x: area.x.saturating_add((area.width - width) / 2),
        y: area.y.saturating_add((area.height - height) / 2),
        width,
        height,
    }
    .intersection(area);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::bordered()
                .title(title)
                .border_style(Style::new().fg(color)),
        ),
        rect,
    );
}

fn draw_top(frame: &mut Frame, app: &App, area: Rect) {
    let mut first = Vec::new();
    if app.summary.frozen {
        first.push(Span::styled(
            " FROZEN ",
            Style::new()
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD),
        ));
        first.push(Span::raw(" "));
    }
    first.push(Span::styled(
        "agent-sandbox",
        Style::new().add_modifier(Modifier::BOLD),
    ));
    let session = if app.session.is_empty() {
        "(connecting…)".to_string()
    } else {
        sanitize(&app.session)
    };
    first.push(Span::raw(format!("  session {session}  agent: ")));
    first.push(Span::styled(
        command_line(&app.command),
        Style::new().fg(Color::Cyan),
    ));
    let s = &app.summary;
    let count = |label: &'static str, n: u64, color: Color| {
        let style = if n > 0 {
            Style::new().fg(color)
        } else {
            Style::new()
        };
        vec![
            Span::raw(format!("{label} ")),
            Span::styled(n.to_string(), style),
            Span::raw("  "),
        ]
    };
    let second: Vec<Span> = [
        count("held", s.held, Color::Yellow),
        count("allowed", s.allowed, Color::Green),
        count("denied", s.denied, Color::Red),
        count("connections refused", s.connections_refused, Color::Red),
        count("files refused", s.files_refused, Color::Red),
        count("events", s.events, Color::Reset),
    ]
    .into_iter()
    .flatten()
    .collect();
    frame.render_widget(
        Paragraph::new(vec![Line::from(first), Line::from(second)]),
        area,
    );
}

fn severity_style(sev: Option<&str>) -> Style {
    match sev {
        Some("critical") => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        Some("high") => Style::new().fg(Color::Red),
        Some("medium") => Style::new().fg(Color::Yellow),
        _ => Style::new(),
    }
}

fn draw_queue(frame: &mut Frame, app: &App, area: Rect) {
    let items: Vec<ListItem> = app
        .queue
        .iter()
        .map(|p| {
            let h = &p.held;
            let sev = h.severity.as_deref();
            ListItem::new(Line::from(vec![
                Span::raw(format!("#{:<4} {:<11} ", h.id, kind_word(h.kind))),
                Span::styled(
                    format!("{:>4}s ", app.seconds_left(p)),
                    Style::new().fg(Color::Yellow),
                ),
                Span::styled(
                    format!("{:<8} ", sanitize(sev.unwrap_or("-"))),
                    severity_style(sev),
                ),
                Span::styled(
                    format!("{} ", sanitize(&h.rule)),
                    Style::new().add_modifier(Modifier::BOLD),
                ),
                Span::raw(command_line(&h.command)),
            ]))
        })
        .collect();
    let title = format!(" held ({}) ", app.queue.len());
    let list = List::new(items)
        .block(Block::new().borders(Borders::ALL).title(title))
        .highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol("> ");
    let mut state = ListState::default();
    if !app.queue.is_empty() {
        state.select(Some(app.selected));
    }
    frame.render_stateful_widget(list, area, &mut state);
}

fn draw_details(frame: &mut Frame, app: &App, area: Rect) {
    let block = Block::new().borders(Borders::ALL).title(" details ");
    let Some(p) = app.queue.get(app.selected) else {
        let text = Text::from(vec![
            Line::from("Nothing is held."),
            Line::from("A held action shows here the moment the supervisor holds it."),
            Line::from("f freezes the whole tree, t thaws it, ? lists every key."),
        ]);
        frame.render_widget(
            Paragraph::new(text).block(block).wrap(Wrap { trim: false }),
            area,
        );
        return;
    };
    let h = &p.held;
    let label = |l: &'static str| {
        Span::styled(format!("{l:<9}"), Style::new().add_modifier(Modifier::BOLD))
    };
    let mut lines = vec![
        Line::from(vec![
            Span::styled(
                format!("#{} {} ", h.id, kind_word(h.kind)),
                Style::new().add_modifier(Modifier::BOLD),
            ),
            Span::raw(format!("by pid {}, ", h.pid)),
            Span::styled(
                format!("{} s left", app.seconds_left(p)),
                Style::new().fg(Color::Yellow),
            ),
            Span::raw(" before it is denied"),
        ]),
        Line::from(vec![
            label("command"),
            Span::styled(command_line(&h.command), Style::new().fg(Color::Cyan)),
        ]),
        Line::from(vec![label("cwd"), Span::raw(sanitize(&h.cwd))]),
    ];
    for (i, path) in h.paths.iter().enumerate() {
        lines.push(Line::from(vec![
            label(if i == 0 { "paths" } else { "" }),
            Span::raw(sanitize(path)),
        ]));
    }
    lines.push(Line::from(label("ancestry")));
    for a in &h.ancestry {
        lines.push(Line::from(format!(
            "  {:>7}  {}",
            a.pid,
            sanitize(&a.cmdline)
        )));
    }
    lines.push(Line::from(vec![
        label("rule"),
        Span::styled(sanitize(&h.rule), Style::new().add_modifier(Modifier::BOLD)),
    ]));
    lines.push(Line::from(vec![label("why"), Span::raw(sanitize(&h.why))]));
    lines.push(Line::from(vec![
        label("origin"),
        Span::raw(sanitize(&h.origin)),
    ]));
    let sev = h.severity.as_deref();
    lines.push(Line::from(vec![
        label("severity"),
        Span::styled(sanitize(sev.unwrap_or("-")), severity_style(sev)),
    ]));
    lines.push(Line::from(vec![
        label("since"),
        Span::raw(sanitize(&h.since)),
    ]));
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        area,
    );
}

fn draw_feed(frame: &mut Frame, app: &App, area: Rect) {
    let total = app.feed.len();
    let title = match (&app.mode, app.filter.is_empty()) {
        (Mode::Filter(typed), _) => format!(
            " events ({total}) filter: {}▏ (Enter applies, Esc clears) ",
            sanitize(typed)
        ),
        (_, true) => format!(" events ({total}) "),
        (_, false) => format!(" events ({total}) filter: {} (Esc clears) ", app.filter),
    };
    let block = Block::new().borders(Borders::ALL).title(title);
    let rows = usize::from(block.inner(area).height);
    // The newest matching lines, oldest of them at the top.
    let mut shown: Vec<&FeedLine> = app
        .feed
        .iter()
        .rev()
        .filter(|l| app.matches(&l.text))
        .take(rows)
        .collect();
    shown.reverse();
    let lines: Vec<Line> = shown
        .into_iter()
        .map(|l| {
            let style = match l.class {
                Class::Plain => Style::new(),
                Class::Refused => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
                Class::Held => Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
                Class::Decision => Style::new().fg(Color::Magenta),
            };
            Line::styled(l.text.as_str(), style)
        })
        .collect();
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn draw_status(frame: &mut Frame, app: &App, area: Rect) {
    let hint =
        "a allow  A allow rule  d deny  K kill  f freeze  t thaw  / filter  ? help  q quit UI";
    let line = if app.status.is_empty() {
        Line::styled(hint, Style::new().fg(Color::DarkGray))
    } else {
        let style = if app.status_error {
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
        } else {
            Style::new().fg(Color::Green)
        };
        Line::from(vec![
            Span::styled(app.status.as_str(), style),
            Span::styled(format!("   ({hint})"), Style::new().fg(Color::DarkGray)),
        ])
    };
    frame.render_widget(Paragraph::new(line), area);
}

/// How the event loop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The user quit (the session goes on).
    Quit,
    /// The session ended with the agent's exit code.
    Ended(i32),
    /// The stream closed without an end message.
    Closed,
}

/// Reads keys: waits at most the given time, `None` when nothing came. It may look at the
/// terminal (tests and the approval benchmark read the drawn screen through it).
pub type Input<'a, B> = dyn FnMut(&Terminal<B>, Duration) -> Result<Option<Event>, TuiError> + 'a;

/// Folds in updates, draws, and handles keys until the user quits or the stream ends: the
/// loop [`run`] drives with the real terminal and keyboard, public so that a benchmark can
/// drive it with ratatui's `TestBackend` and scripted keys.
pub fn event_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    sub: &mut Subscription,
    input: &mut Input<'_, B>,
) -> Result<End, TuiError> {
    let mut last_draw: Option<Instant> = None;
    loop {
        let mut dirty = false;
        let mut closed = false;
        for _ in 0..DRAIN_MAX {
            match sub.try_next() {
                Next::Item(Ok(u)) => {
                    app.apply(u);
                    dirty = true;
                }
                Next::Item(Err(e)) => {
                    app.show_error(&e);
                    dirty = true;
                }
                Next::Idle => break,
                Next::Closed => {
                    closed = true;
                    break;
                }
            }
        }
        let now = Instant::now();
        if dirty || last_draw.is_none_or(|t| now.saturating_duration_since(t) >= REDRAW) {
            app.tick(now);
            terminal
                .draw(|f| draw(f, app))
                .map_err(|e| TuiError::terminal("drawing", e))?;
            last_draw = Some(now);
        }
        if let Some(code) = app.ended() {
            return Ok(End::Ended(code));
        }
        if closed {
            return Ok(End::Closed);
        }
        match input(terminal, POLL)? {
            Some(Event::Key(key)) => {
                match app.on_key(key) {
                    Some(Action::Quit) => return Ok(End::Quit),
                    Some(Action::Send(req)) => {
                        if let Err(e) = sub.send(&req) {
                            app.show_error(&e);
                        }
                    }
                    None => {}
                }
                last_draw = None;
            }
            Some(Event::Resize(..)) => last_draw = None,
            _ => {}
        }
    }
}

type PanicHook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send + 'static>;

/// Raw mode and the alternate screen while alive; restored on drop and by a panic hook, so a
/// panic's message lands on a usable terminal.
struct TerminalGuard {
    previous_hook: Arc<PanicHook>,
}

impl TerminalGuard {
    fn enter() -> Result<TerminalGuard, TuiError> {
        let previous_hook: Arc<PanicHook> = Arc::new(std::panic::take_hook());
        let chained = previous_hook.clone();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            chained(info);
        }));
        // From here on, dropping the guard undoes whatever part succeeded.
        let guard = TerminalGuard { previous_hook };
        crossterm::terminal::enable_raw_mode()
            .map_err(|e| TuiError::terminal("entering raw mode", e))?;
        crossterm::execute!(
            io::stdout(),
            crossterm::terminal::EnterAlternateScreen,
            crossterm::cursor::Hide
        )
        .map_err(|e| TuiError::terminal("entering the alternate screen", e))?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
        // set_hook panics on a panicking thread; the hook then stays (it only restores the
        // terminal, which is harmless to repeat).
        if !std::thread::panicking() {
            let _ = std::panic::take_hook();
            let previous = self.previous_hook.clone();
            std::panic::set_hook(Box::new(move |info| previous(info)));
        }
    }
}

fn restore_terminal() {
    let _ = crossterm::terminal::disable_raw_mode();
    let _ = crossterm::execute!(
        io::stdout(),
        crossterm::terminal::LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

fn poll_key(timeout: Duration) -> Result<Option<Event>, TuiError> {
    if event::poll(timeout).map_err(|e| TuiError::terminal("reading keys", e))? {
        Ok(Some(
            event::read().map_err(|e| TuiError::terminal("reading keys", e))?,
        ))
    } else {
        Ok(None)
    }
}

/// Runs the approval UI on stdout against the session whose approval socket is `socket`,
/// until the user quits (the session goes on) or the session ends. Says which on stderr.
pub fn run(socket: &Path) -> Result<(), TuiError> {
    if !io::stdout().is_terminal() {
        return Err(TuiError::NotATerminal);
    }
    // Connect before touching the terminal, so a connect error prints on a normal screen.
    let mut sub = Client::connect(socket)?.subscribe()?;
    let guard = TerminalGuard::enter()?;
    let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout()))
        .map_err(|e| TuiError::terminal("opening the terminal", e))?;
    let mut app = App::new();
    let end = event_loop(&mut terminal, &mut app, &mut sub, &mut |_, t| poll_key(t));
    drop(terminal);
    drop(guard);
    match end? {
        End::Quit => eprintln!(
            "agent-sandbox: approval UI closed; the session goes on (`agent-sandbox attach` to \
             come back)"
        ),
        End::Ended(code) => eprintln!("agent-sandbox: the session ended (agent exit code {code})"),
        End::Closed => {
            if app.status_error {
                eprintln!("agent-sandbox: {}", app.status);
            }
            eprintln!(
                "agent-sandbox: the supervisor closed the approval stream; the session has ended"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Ancestor;
    use crate::testutil::{FakeSupervisor, held};
    use ratatui::backend::TestBackend;
    use serde_json::json;
    use std::sync::Mutex;

    fn key(c: char) -> KeyEvent {
        let m = if c.is_ascii_uppercase() {
            KeyModifiers::SHIFT
        } else {
            KeyModifiers::NONE
        };
        KeyEvent::new(KeyCode::Char(c), m)
    }

    fn code(k: KeyCode) -> KeyEvent {
        KeyEvent::new(k, KeyModifiers::NONE)
    }

    fn snapshot(held: Vec<Held>, summary: Summary) -> Update {
        Update::Snapshot {
            session: "agent-sandbox-1234".into(),
            command: vec!["claude".into(), "--model".into(), "x".into()],
            held,
            summary,
        }
    }

    fn app_with(ids: &[u64]) -> App {
        let mut app = App::new();
        app.apply(snapshot(
            ids.iter()
                .map(|&i| held(i, &format!("rm -rf /srv/{i}")))
                .collect(),
            Summary::default(),
        ));
        app
    }

    fn render(app: &App, w: u16, h: u16) -> String {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| draw(f, app)).unwrap();
        screen(&t)
    }

    fn screen(t: &Terminal<TestBackend>) -> String {
        let buf = t.backend().buffer();
        let mut s = String::new();
        for y in 0..buf.area.height {
            for x in 0..buf.area.width {
                s.push_str(buf[(x, y)].symbol());
            }
            s.push('\n');
        }
        s
    }

    fn decide(id: u64, decision: Decision) -> Option<Action> {
        Some(Action::Send(Request::Decide {
            id,
            decision,
            by: Approver::Tui,
        }))
    }

    fn exec_event(pid: u64, comm: &str, argv: &[&str]) -> Update {
        Update::Event {
            event: json!({"time": "2026-11-21T07:42:09.123456Z", "kind": "exec", "pid": pid,
                "comm": comm, "fields": {"syscall": "execve", "argv": argv, "ret": 0}}),
        }
    }

    #[test]
    fn a_held_exec_shows_everything_a_person_needs() {
        let mut h = held(3, "rm -rf /srv/data");
        let tail = "END-OF-A-VERY-LONG-ARGUMENT";
        h.command.push(format!("{}{tail}", "y".repeat(150)));
        h.paths.push("/srv/data/db".into());
        h.ancestry.push(Ancestor {
            pid: 1,
            cmdline: "agent-sandbox run -- claude".into(),
        });
        let mut app = App::new();
        app.apply(snapshot(vec![h], Summary::default()));
        let s = render(&app, 160, 50);
        for want in [
            "sh -c 'rm -rf /srv/data'",
            "/home/dev/repo",
            "/usr/bin/sh",
            "/srv/data/db",
            "4242  sh -c rm -rf /srv/data",
            "4000  node /usr/bin/claude",
            "1  agent-sandbox run -- claude",
            "destructive-rm",
            "recursive deletion outside the build directory",
            "policy.toml:12",
            "high",
            "session agent-sandbox-1234",
            "agent: claude --model x",
        ] {
            assert!(s.contains(want), "missing {want:?} in\n{s}");
        }
        // The long argument wraps in the details instead of being cut: the right pane's rows,
        // joined, hold all of it.
        let right: String = s
            .lines()
            .filter_map(|l| {
                l.split_once("││")
                    .map(|(_, r)| r.trim_end_matches('│').trim_end())
            })
            .collect();
        assert!(right.contains(&format!("{}{tail}", "y".repeat(150))), "{s}");
        // Each ancestor on its own line: pid first.
        let ancestry_rows = s
            .lines()
            .filter(|l| l.contains("4242  sh -c") || l.contains("4000  node"))
            .count();
        assert_eq!(ancestry_rows, 2, "{s}");
    }

    #[test]
    fn summary_counts_and_frozen_banner() {
        let mut app = App::new();
        let mut summary = Summary {
            held: 7,
            allowed: 3,
            denied: 2,
            connections_refused: 5,
            files_refused: 4,
            events: 1234,
            frozen: false,
        };
        app.apply(snapshot(vec![], summary.clone()));
        let s = render(&app, 140, 30);
        for want in [
            "held 7",
            "allowed 3",
            "denied 2",
            "connections refused 5",
            "files refused 4",
            "events 1234",
        ] {
            assert!(s.contains(want), "missing {want:?} in\n{s}");
        }
        assert!(!s.contains("FROZEN"), "{s}");
        summary.frozen = true;
        summary.events = 1300;
        app.apply(Update::Summary { summary });
        let s = render(&app, 140, 30);
        assert!(s.lines().next().unwrap().contains("FROZEN"), "{s}");
        assert!(s.contains("events 1300"), "{s}");
    }

    #[test]
    fn countdown_runs_from_arrival() {
        let t0 = Instant::now();
        let mut app = App::new();
        app.apply_at(snapshot(vec![held(1, "x")], Summary::default()), t0);
        app.tick(t0 + Duration::from_secs(30));
        let s = render(&app, 140, 30);
        assert!(s.contains("90 s left"), "{s}");
        assert!(s.contains("  90s "), "{s}");
        app.tick(t0 + Duration::from_secs(500));
        let s = render(&app, 140, 30);
        assert!(s.contains("0 s left"), "{s}");
    }

    #[test]
    fn help_overlay_lists_every_key() {
        let mut app = app_with(&[1]);
        assert!(!render(&app, 120, 40).contains("any key closes it"));
        assert_eq!(app.on_key(key('?')), None);
        assert!(app.help_shown());
        let s = render(&app, 120, 40);
        for (k, v) in HELP {
            let row = format!("{k:<14}{v}");
            assert!(s.contains(&row), "missing help row {row:?} in\n{s}");
        }
        assert!(s.contains("quit this UI only: the session goes on"), "{s}");
        // Any key closes it, and that key does nothing else (here: no allow sent).
        assert_eq!(app.on_key(key('a')), None);
        assert!(!app.help_shown());
    }

    #[test]
    fn filter_hides_non_matching_feed_lines() {
        let mut app = App::new();
        app.apply(snapshot(vec![], Summary::default()));
        app.apply(exec_event(10, "bash", &["ls", "-la"]));
        app.apply(exec_event(
            11,
            "bash",
            &["curl", "https://prod.example/api"],
        ));
        app.apply(Update::Event {
            event: json!({"kind": "net_refused", "pid": 11, "comm": "curl",
                "fields": {"rule": "prod-db", "address": "10.0.0.5", "port": 5432, "protocol": "tcp"}}),
        });
        let s = render(&app, 140, 30);
        assert!(s.contains("ls -la"), "{s}");
        assert!(s.contains("curl https://prod.example/api"), "{s}");
        assert!(s.contains("rule prod-db: 10.0.0.5:5432/tcp"), "{s}");

        for c in "/CURL".chars() {
            assert_eq!(app.on_key(key(c)), None);
        }
        // Typed but not applied yet.
        assert!(render(&app, 140, 30).contains("ls -la"));
        assert_eq!(app.on_key(code(KeyCode::Enter)), None);
        assert_eq!(app.filter(), "curl");
        let s = render(&app, 140, 30);
        assert!(!s.contains("ls -la"), "{s}");
        assert!(s.contains("curl https://prod.example/api"), "{s}");
        assert!(s.contains("rule prod-db"), "{s}");
        assert_eq!(app.visible_feed().count(), 2);

        assert_eq!(app.on_key(code(KeyCode::Esc)), None);
        assert!(render(&app, 140, 30).contains("ls -la"));

        // Backspace edits, Esc while typing clears.
        for c in "/lsx".chars() {
            app.on_key(key(c));
        }
        app.on_key(code(KeyCode::Backspace));
        app.on_key(code(KeyCode::Enter));
        assert_eq!(app.filter(), "ls");
        app.on_key(key('/'));
        app.on_key(key('z'));
        app.on_key(code(KeyCode::Esc));
        assert_eq!(app.filter(), "");
    }

    #[test]
    fn refused_lines_are_highlighted() {
        let mut app = App::new();
        app.apply(exec_event(10, "bash", &["ls"]));
        app.apply(Update::Event {
            event: json!({"kind": "file_refused", "pid": 12, "comm": "cat",
                "fields": {"rule": "aws-creds", "path": "/root/.aws/credentials"}}),
        });
        let mut t = Terminal::new(TestBackend::new(120, 30)).unwrap();
        t.draw(|f| draw(f, &app)).unwrap();
        let buf = t.backend().buffer().clone();
        let row_of = |needle: &str| {
            (0..buf.area.height)
                .find(|&y| {
                    (0..buf.area.width)
                        .map(|x| buf[(x, y)].symbol())
                        .collect::<String>()
                        .contains(needle)
                })
                .unwrap()
        };
        let refused = row_of("aws-creds");
        let plain = row_of("exec");
        assert_eq!(buf[(5, refused)].fg, Color::Red);
        assert_ne!(buf[(5, plain)].fg, Color::Red);
    }

    #[test]
    fn each_key_sends_the_right_request() {
        let mut app = app_with(&[5, 6]);
        assert_eq!(app.on_key(key('a')), decide(5, Decision::Allow));
        assert_eq!(app.on_key(key('d')), decide(5, Decision::Deny));
        assert_eq!(app.on_key(key('f')), decide(5, Decision::Freeze));
        assert_eq!(app.on_key(key('t')), decide(5, Decision::Thaw));
        assert_eq!(app.on_key(code(KeyCode::Down)), None);
        assert_eq!(app.on_key(key('a')), decide(6, Decision::Allow));

        // A and K only after y.
        assert_eq!(app.on_key(key('A')), None);
        assert!(app.confirming());
        let s = render(&app, 140, 40);
        assert!(
            s.contains("Allow rule `destructive-rm` for the rest of this session?"),
            "{s}"
        );
        assert_eq!(app.on_key(key('y')), decide(6, Decision::AllowSession));
        assert!(!app.confirming());

        assert_eq!(app.on_key(key('A')), None);
        assert_eq!(app.on_key(key('n')), None);
        assert!(app.status().contains("cancelled"), "{}", app.status());
        // The cancelling key does not act either: `a` after A cancels, no allow.
        assert_eq!(app.on_key(key('A')), None);
        assert_eq!(app.on_key(key('a')), None);

        assert_eq!(app.on_key(key('K')), None);
        assert!(render(&app, 140, 40).contains("Kill the whole process tree"));
        assert_eq!(app.on_key(key('Y')), None, "only a lower-case y confirms");
        assert_eq!(app.on_key(key('K')), None);
        assert_eq!(app.on_key(key('y')), decide(6, Decision::Kill));

        // Key releases are ignored.
        let mut release = key('a');
        release.kind = KeyEventKind::Release;
        assert_eq!(app.on_key(release), None);

        assert_eq!(app.on_key(key('q')), Some(Action::Quit));
        assert_eq!(
            app.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Action::Quit)
        );
        // While typing a filter, q is a letter.
        app.on_key(key('/'));
        assert_eq!(app.on_key(key('q')), None);
    }

    #[test]
    fn with_nothing_held_only_freeze_and_thaw_act() {
        let mut app = app_with(&[]);
        assert_eq!(app.on_key(key('a')), None);
        assert!(app.status().contains("nothing is held"), "{}", app.status());
        assert_eq!(app.on_key(key('d')), None);
        assert_eq!(app.on_key(key('A')), None);
        assert!(!app.confirming());
        assert_eq!(app.on_key(key('K')), None);
        assert!(!app.confirming());
        assert_eq!(app.on_key(key('f')), decide(0, Decision::Freeze));
        assert_eq!(app.on_key(key('t')), decide(0, Decision::Thaw));
    }

    #[test]
    fn selection_moves_and_survives_resolved_items() {
        let mut app = app_with(&[1, 2, 3]);
        assert_eq!(app.selected().map(|h| h.id), Some(1));
        app.on_key(key('j'));
        app.on_key(code(KeyCode::Down));
        app.on_key(key('j'));
        assert_eq!(app.selected().map(|h| h.id), Some(3));
        app.on_key(key('k'));
        assert_eq!(app.selected().map(|h| h.id), Some(2));
        app.on_key(code(KeyCode::Up));
        app.on_key(code(KeyCode::Up));
        assert_eq!(app.selected().map(|h| h.id), Some(1));
        app.on_key(key('j'));

        // One above the selection goes: the same item stays selected.
        app.apply(Update::Resolved {
            id: 1,
            decision: Decision::Deny,
            by: Approver::Timeout,
        });
        assert_eq!(app.queue_ids(), vec![2, 3]);
        assert_eq!(app.selected().map(|h| h.id), Some(2));
        assert!(
            app.status().contains("#1: denied by timeout"),
            "{}",
            app.status()
        );
        // The selected one goes: the next takes its place.
        app.apply(Update::Resolved {
            id: 2,
            decision: Decision::Allow,
            by: Approver::Decide,
        });
        assert_eq!(app.selected().map(|h| h.id), Some(3));
        // The last one goes: nothing selected, keys are safe.
        app.apply(Update::Resolved {
            id: 3,
            decision: Decision::Allow,
            by: Approver::Tui,
        });
        assert_eq!(app.selected(), None);
        app.on_key(key('j'));
        app.on_key(key('k'));
        assert_eq!(app.on_key(key('a')), None);
        render(&app, 100, 30);
        // A new hold is selected and decidable.
        app.apply(Update::Held { held: held(4, "x") });
        assert_eq!(app.on_key(key('d')), decide(4, Decision::Deny));
        // A snapshot keeps the selected id when it is still pending.
        app.apply(Update::Held { held: held(5, "y") });
        app.on_key(key('j'));
        app.apply(snapshot(
            vec![held(4, "x"), held(5, "y")],
            Summary::default(),
        ));
        assert_eq!(app.selected().map(|h| h.id), Some(5));
        // Resolving an unknown id changes nothing.
        app.apply(Update::Resolved {
            id: 99,
            decision: Decision::Deny,
            by: Approver::Tui,
        });
        assert_eq!(app.queue_ids(), vec![4, 5]);
    }

    #[test]
    fn a_confirmation_for_an_item_decided_meanwhile_is_dropped() {
        let mut app = app_with(&[7]);
        app.on_key(key('A'));
        assert!(app.confirming());
        app.apply(Update::Resolved {
            id: 7,
            decision: Decision::Deny,
            by: Approver::Timeout,
        });
        assert!(!app.confirming());
        assert!(
            app.status().contains("before you confirmed"),
            "{}",
            app.status()
        );
        assert_eq!(app.on_key(key('y')), None);
    }

    #[test]
    fn answers_and_end_show_in_the_status_line() {
        let mut app = app_with(&[1]);
        app.apply(Update::Answer {
            reply: Reply::Error {
                message: "no held action 9\x1b[2J".into(),
            },
        });
        let s = render(&app, 140, 30);
        assert!(s.contains("error: no held action 9\\u{1b}[2J"), "{s}");
        app.apply(Update::Answer {
            reply: Reply::Done {
                message: "#1 allowed".into(),
            },
        });
        assert!(render(&app, 140, 30).contains("#1 allowed"));
        assert_eq!(app.ended(), None);
        app.apply(Update::Ended { exit_code: 2 });
        assert_eq!(app.ended(), Some(2));
    }

    #[test]
    fn feed_keeps_the_last_2000_events() {
        let mut app = App::new();
        for i in 0..2500u64 {
            app.apply(exec_event(i, "bash", &["true"]));
        }
        let kept: Vec<&str> = app.visible_feed().collect();
        assert_eq!(kept.len(), FEED_CAP);
        assert!(kept[0].contains("    500 "), "{}", kept[0]);
        assert!(
            kept[FEED_CAP - 1].contains("   2499 "),
            "{}",
            kept[FEED_CAP - 1]
        );
        // The newest lines are the ones on screen.
        let s = render(&app, 120, 30);
        assert!(s.contains("   2499 "), "{s}");
        assert!(!s.contains("    500 "), "{s}");
    }

    #[test]
    fn hostile_strings_are_escaped() {
        assert_eq!(sanitize("a\x1b[31mb\nc\td"), "a\\u{1b}[31mb\\nc\\td");
        // Right-to-left override and zero-width space would disguise a command.
        assert_eq!(sanitize("rm \u{202e}fdp.x"), "rm \\u{202e}fdp.x");
        assert_eq!(sanitize("a\u{200b}b"), "a\\u{200b}b");
        assert_eq!(sanitize("héllo 日本"), "héllo 日本");
        assert_eq!(
            command_line(&[
                "rm".into(),
                "-rf".into(),
                "my dir".into(),
                "it's".into(),
                String::new()
            ]),
            "rm -rf 'my dir' 'it'\\''s' ''"
        );
        let mut h = held(1, "x");
        h.command = vec!["echo".into(), "\x1b]0;pwned\x07".into()];
        h.cwd = "/tmp/\x1b[2J".into();
        let mut app = App::new();
        app.apply(snapshot(vec![h], Summary::default()));
        let s = render(&app, 140, 30);
        assert!(!s.contains('\x1b') && !s.contains('\x07'), "{s:?}");
        assert!(s.contains("\\u{1b}]0;pwned\\u{7}"), "{s}");
    }

    #[test]
    fn tiny_and_empty_terminals_do_not_panic() {
        let mut app = app_with(&[1, 2]);
        app.apply(exec_event(1, "bash", &["ls"]));
        for (w, h) in [(0, 0), (1, 1), (3, 2), (10, 5), (20, 8), (400, 3)] {
            render(&app, w, h);
            app.on_key(key('?'));
            render(&app, w, h);
            app.on_key(key('x'));
            app.on_key(key('A'));
            render(&app, w, h);
            app.on_key(key('n'));
        }
    }

    /// The event loop against a fake supervisor: a new hold must be on screen within 50 ms of
    /// being sent, keys reach the supervisor, and the loop ends with the stream.
    #[test]
    fn event_loop_shows_holds_fast_and_ends_with_the_session() {
        const N: u64 = 20;
        let sent: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let sent_srv = sent.clone();
        let server = FakeSupervisor::start(move |req, out| match req {
            Request::Subscribe => {
                out.send_line(&snapshot(vec![], Summary::default()));
                let mut later = out.handle();
                let sent = sent_srv.clone();
                std::thread::spawn(move || {
                    for i in 1..=N {
                        std::thread::sleep(Duration::from_millis(60));
                        let mut h = held(i, "x");
                        h.rule = format!("latency-rule-{i:03}");
                        sent.lock().unwrap().push(Instant::now());
                        later.send_line(&Update::Held { held: h });
                    }
                });
            }
            Request::Decide { id, decision, .. } => {
                out.send_line(&Update::Answer {
                    reply: Reply::Done {
                        message: format!("#{id} {}", decision.as_str()),
                    },
                });
                out.send_line(&Update::Ended { exit_code: 0 });
            }
            Request::List => {}
        });
        let mut sub = Client::connect(server.path()).unwrap().subscribe().unwrap();
        let mut terminal = Terminal::new(TestBackend::new(140, 40)).unwrap();
        let mut app = App::new();
        let mut seen: Vec<Instant> = Vec::new();
        let mut input = |t: &Terminal<TestBackend>, timeout: Duration| {
            let s = screen(t);
            while seen.len() < N as usize
                && s.contains(&format!("latency-rule-{:03}", seen.len() + 1))
            {
                seen.push(Instant::now());
            }
            if seen.len() == N as usize {
                // All seen: allow the selected one, which makes the server end the session.
                return Ok(Some(Event::Key(key('a'))));
            }
            std::thread::sleep(timeout);
            Ok(None)
        };
        let end = event_loop(&mut terminal, &mut app, &mut sub, &mut input).unwrap();
        assert_eq!(end, End::Ended(0));
        let sent = sent.lock().unwrap().clone();
        assert_eq!(seen.len(), sent.len());
        let mut lat: Vec<Duration> = seen
            .iter()
            .zip(&sent)
            .map(|(s, t)| s.duration_since(*t))
            .collect();
        lat.sort();
        eprintln!(
            "hold-to-screen latency over {N}: median {:?}, max {:?}",
            lat[lat.len() / 2],
            lat[lat.len() - 1]
        );
        assert!(lat[lat.len() - 1] < Duration::from_millis(50), "{lat:?}");
        assert!(server.requests().contains(&Request::Decide {
            id: 1,
            decision: Decision::Allow,
            by: Approver::Tui
        }));
    }

    #[test]
    fn event_loop_quits_on_q_and_ends_when_the_stream_closes() {
        let server = FakeSupervisor::start(|req, out| {
            if req == Request::Subscribe {
                out.send_line(&snapshot(vec![], Summary::default()));
                out.send_raw(b"garbage\n");
            }
        });
        let mut sub = Client::connect(server.path()).unwrap().subscribe().unwrap();
        let mut terminal = Terminal::new(TestBackend::new(100, 30)).unwrap();
        let mut app = App::new();
        let mut input = |_: &Terminal<TestBackend>, _| Ok(Some(Event::Key(key('q'))));
        assert_eq!(
            event_loop(&mut terminal, &mut app, &mut sub, &mut input).unwrap(),
            End::Quit
        );

        let server = FakeSupervisor::start(|req, out| {
            if req == Request::Subscribe {
                out.send_line(&snapshot(vec![held(1, "x")], Summary::default()));
                out.send_raw(b"garbage\n");
                out.close();
            }
        });
        let mut sub = Client::connect(server.path()).unwrap().subscribe().unwrap();
        let mut app = App::new();
        let mut input = |_: &Terminal<TestBackend>, t| {
            std::thread::sleep(t);
            Ok(None)
        };
        assert_eq!(
            event_loop(&mut terminal, &mut app, &mut sub, &mut input).unwrap(),
            End::Closed
        );
        // The bad line was reported, and the state before it kept.
        assert!(app.status().contains("malformed"), "{}", app.status());
        assert_eq!(app.queue_ids(), vec![1]);
    }
}
