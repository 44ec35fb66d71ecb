//! Data-driven: each event of `data/events.jsonl` (one per kind the supervisor emits, plus
//! hostile and malformed ones) renders as the feed line on the same line of
//! `data/events.expected`, and the UI draws them without panicking.

use agent_sandbox_tui::proto::{Summary, Update};
use agent_sandbox_tui::tui::{App, draw, event_line};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const EVENTS: &str = include_str!("data/events.jsonl");
const EXPECTED: &str = include_str!("data/events.expected");

fn events() -> Vec<serde_json::Value> {
    EVENTS
        .lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("events.jsonl:{}: {e}", i + 1))
        })
        .collect()
}

#[test]
fn every_event_renders_as_its_expected_line() {
    let events = events();
    let expected: Vec<&str> = EXPECTED.lines().collect();
    assert_eq!(events.len(), expected.len(), "one expected line per event");
    let mut bad = Vec::new();
    for (i, (ev, want)) in events.iter().zip(&expected).enumerate() {
        let got = event_line(ev);
        if got != *want {
            bad.push(format!("line {}:\n  want {want:?}\n  got  {got:?}", i + 1));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn rendered_lines_never_carry_control_characters() {
    for ev in events() {
        let line = event_line(&ev);
        assert!(
            !line.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "{line:?}"
        );
    }
}

#[test]
fn the_ui_draws_the_whole_feed_and_filters_it() {
    let mut app = App::new();
    app.apply(Update::Snapshot {
        session: "s".into(),
        command: vec!["bash".into()],
        held: vec![],
        summary: Summary::default(),
    });
    for ev in events() {
        app.apply(Update::Event { event: ev });
    }
    let mut t = Terminal::new(TestBackend::new(150, 60)).unwrap();
    t.draw(|f| draw(f, &app)).unwrap();
    let buf = t.backend().buffer();
    let screen: String = (0..buf.area.height)
        .map(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n");
    for want in EXPECTED.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            screen.contains(want.trim()),
            "missing {want:?} in\n{screen}"
        );
    }
    assert_eq!(app.visible_feed().count(), EXPECTED.lines().count());
}

#[test]
fn odd_json_shapes_do_not_panic() {
    let shapes = [
        "null",
        "[]",
        "\"exec\"",
        "{\"kind\":\"exec\",\"fields\":{\"argv\":[1,null,{},[\"x\"]]}}",
        "{\"kind\":\"exec\",\"fields\":{\"argv\":\"ls\",\"ret\":\"bad\"}}",
        "{\"kind\":\"connect\",\"fields\":{\"address\":5,\"port\":\"x\"}}",
        "{\"kind\":\"net_refused\",\"fields\":null}",
        "{\"kind\":\"path_op\",\"fields\":{\"target\":null}}",
        "{\"time\":\"T\",\"kind\":\"open\"}",
        "{\"time\":\"\u{65e5}\u{672c}T\u{65e5}\u{672c}\u{65e5}\",\"pid\":-1,\"comm\":\"\u{1f600}\u{1f600}\u{1f600}\u{1f600}\u{1f600}\u{1f600}\u{1f600}\u{1f600}\u{1f600}\u{1f600}\u{1f600}\u{1f600}\u{1f600}\u{1f600}\u{1f600}\u{1f600}\u{1f600}\"}",
    ];
    for s in shapes {
        let v: serde_json::Value = serde_json::from_str(s).unwrap();
        let _ = event_line(&v);
    }
    // A very long argv is cut to a bounded line.
    let long = serde_json::json!({"kind": "exec", "fields": {"argv": ["a".repeat(100_000)]}});
    assert!(event_line(&long).chars().count() <= 2001);
}
