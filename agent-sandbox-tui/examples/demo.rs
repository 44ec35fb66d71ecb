//! A stand-in supervisor to try the approval UI by hand (no root, no sandbox):
//!
//!     cargo run -p agent-sandbox-tui --example demo -- serve /tmp/demo.sock   # fake session
//!     cargo run -p agent-sandbox-tui --example demo -- attach /tmp/demo.sock  # the UI
//!     cargo run -p agent-sandbox-tui --example demo -- decide /tmp/demo.sock 2 deny
//!
//! `serve` holds a new action every 3 s and streams a few events a second; decisions are
//! applied to its small state and answered as the real supervisor would.

use std::error::Error;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use agent_sandbox_tui::proto::{
    self, Ancestor, Approver, Decision, Held, HeldKind, Reply, Request, Summary, Update,
};
use agent_sandbox_tui::{Client, tui};

type Res<T> = Result<T, Box<dyn Error>>;

#[derive(Default)]
struct State {
    next_id: u64,
    held: Vec<Held>,
    summary: Summary,
    subscribers: Vec<UnixStream>,
}

impl State {
    fn broadcast(&mut self, u: &Update) {
        let line = proto::encode(u);
        self.subscribers.retain_mut(|s| s.write_all(&line).is_ok());
    }

    fn hold(&mut self, script: &str, rule: &str, why: &str) {
        self.next_id += 1;
        self.summary.held += 1;
        let h = Held {
            id: self.next_id,
            kind: HeldKind::Exec,
            pid: 4000 + self.next_id as u32,
            command: vec!["bash".into(), "-c".into(), script.into()],
            cwd: "/home/dev/shop".into(),
            paths: vec!["/usr/bin/bash".into()],
            ancestry: vec![
                Ancestor {
                    pid: 4000 + self.next_id as u32,
                    cmdline: format!("bash -c {script}"),
                },
                Ancestor {
                    pid: 3990,
                    cmdline: "node /usr/local/bin/claude".into(),
                },
                Ancestor {
                    pid: 3980,
                    cmdline: "agent-sandbox run -- claude".into(),
                },
            ],
            rule: rule.into(),
            why: why.into(),
            severity: Some("high".into()),
            origin: "policy.toml:42".into(),
            since: "2026-11-21T07:42:09Z".into(),
            timeout_secs: 120,
        };
        self.held.push(h.clone());
        self.broadcast(&Update::Held { held: h });
        let summary = self.summary.clone();
        self.broadcast(&Update::Summary { summary });
    }

    fn decide(&mut self, id: u64, decision: Decision, by: Approver) -> Reply {
        match decision {
            Decision::Freeze | Decision::Thaw => {
                self.summary.frozen = decision == Decision::Freeze;
                let summary = self.summary.clone();
                self.broadcast(&Update::Summary { summary });
                return Reply::Done {
                    message: format!(
                        "tree {}",
                        if self.summary.frozen {
                            "frozen"
                        } else {
                            "thawed"
                        }
                    ),
                };
            }
            _ => {}
        }
        let Some(i) = self.held.iter().position(|h| h.id == id) else {
            return Reply::Error {
                message: format!(
                    "no held action #{id}; `agent-sandbox decide` lists none pending with that id"
                ),
            };
        };
        self.held.remove(i);
        match decision {
            Decision::Allow | Decision::AllowSession => self.summary.allowed += 1,
            _ => self.summary.denied += 1,
        }
        self.broadcast(&Update::Resolved { id, decision, by });
        let summary = self.summary.clone();
        self.broadcast(&Update::Summary { summary });
        Reply::Done {
            message: format!("#{id}: {}", decision.as_str()),
        }
    }
}

fn serve(path: &Path) -> Res<()> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    let state = Arc::new(Mutex::new(State::default()));
    {
        let mut s = state.lock().map_err(|_| "poisoned")?;
        s.hold(
            "rm -rf ./migrations",
            "destructive-rm",
            "recursive deletion in the repository",
        );
        s.hold(
            "psql \"$PROD_URL\" -c 'DROP TABLE orders'",
            "sql-drop",
            "DROP statements against a database",
        );
    }
    let feeder = state.clone();
    thread::spawn(move || {
        let cmds = [
            ("bash", vec!["ls", "-la"]),
            ("node", vec!["npm", "test"]),
            ("bash", vec!["git", "status"]),
            ("curl", vec!["curl", "https://api.example.com/v1/items"]),
        ];
        for n in 0u64.. {
            thread::sleep(Duration::from_millis(300));
            let Ok(mut s) = feeder.lock() else { return };
            let (comm, argv) = &cmds[(n % 4) as usize];
            let event = if n % 7 == 6 {
                s.summary.connections_refused += 1;
                serde_json::json!({"time": "2026-11-21T07:42:09.5Z", "kind": "net_refused", "pid": 5000 + n,
                    "comm": "psql", "fields": {"rule": "prod-db", "address": "10.0.0.5", "port": 5432, "protocol": "tcp"}})
            } else {
                serde_json::json!({"time": "2026-11-21T07:42:09.5Z", "kind": "exec", "pid": 5000 + n,
                    "comm": comm, "fields": {"argv": argv, "ret": 0}})
            };
            s.summary.events += 1;
            s.broadcast(&Update::Event { event });
            if n % 10 == 9 {
                s.hold(
                    "terraform destroy -auto-approve",
                    "terraform-destroy",
                    "destroys infrastructure",
                );
            }
        }
    });
    for conn in listener.incoming() {
        let conn = conn?;
        let state = state.clone();
        thread::spawn(move || {
            let Ok(mut out) = conn.try_clone() else {
                return;
            };
            let mut subscribed = false;
            for line in BufReader::new(conn).lines() {
                let Ok(line) = line else { return };
                let Ok(mut s) = state.lock() else { return };
                let msg = match proto::decode::<Request>(line.as_bytes()) {
                    Err(e) => proto::encode(&Reply::Error {
                        message: e.to_string(),
                    }),
                    Ok(Request::List) => proto::encode(&Reply::Held {
                        session: "demo".into(),
                        held: s.held.clone(),
                        summary: s.summary.clone(),
                    }),
                    Ok(Request::Subscribe) => {
                        let snap = Update::Snapshot {
                            session: "demo".into(),
                            command: vec!["claude".into(), "--dangerously-skip-permissions".into()],
                            held: s.held.clone(),
                            summary: s.summary.clone(),
                        };
                        if let Ok(w) = out.try_clone() {
                            s.subscribers.push(w);
                        }
                        subscribed = true;
                        proto::encode(&snap)
                    }
                    Ok(Request::Decide { id, decision, by }) => {
                        let reply = s.decide(id, decision, by);
                        if subscribed {
                            proto::encode(&Update::Answer { reply })
                        } else {
                            proto::encode(&reply)
                        }
                    }
                };
                if out.write_all(&msg).is_err() {
                    return;
                }
            }
        });
    }
    Ok(())
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("demo: {e}");
        std::process::exit(1);
    }
}

fn real_main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = PathBuf::from(
        args.get(1)
            .map_or("/tmp/agent-sandbox-demo.sock", String::as_str),
    );
    match args.first().map(String::as_str) {
        Some("serve") => serve(&path),
        Some("attach") => Ok(tui::run(&path)?),
        Some("decide") => {
            let id: u64 = args.get(2).ok_or("decide needs an ID")?.parse()?;
            let word = args.get(3).ok_or("decide needs allow|deny|kill")?;
            let decision = Decision::parse(word).ok_or("unknown decision word")?;
            let reply = Client::connect(&path)?.decide(id, decision, Approver::Decide)?;
            println!("{reply:?}");
            Ok(())
        }
        _ => Err("usage: demo serve|attach|decide SOCKET [ID WORD]".into()),
    }
}
