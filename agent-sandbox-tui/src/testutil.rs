//! Test helpers: a small in-process supervisor that speaks the protocol on a real unix socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;

use crate::proto::{self, Ancestor, Held, HeldKind, Request};

/// The write side of one accepted connection.
pub struct Out(UnixStream);

impl Out {
    pub fn send_line<T: serde::Serialize>(&mut self, msg: &T) {
        let _ = self.0.write_all(&proto::encode(msg));
    }
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.0.write_all(bytes);
    }
    pub fn close(&mut self) {
        let _ = self.0.shutdown(std::net::Shutdown::Both);
    }
    /// Another handle on the same connection, to write from another thread later.
    pub fn handle(&self) -> Out {
        Out(self.0.try_clone().unwrap())
    }
}

type Handler = dyn Fn(Request, &mut Out) + Send + Sync;

pub struct FakeSupervisor {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl FakeSupervisor {
    /// Serves every connection: each request line is recorded and handed to `handler`.
    pub fn start(handler: impl Fn(Request, &mut Out) + Send + Sync + 'static) -> FakeSupervisor {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("approval.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let reqs = requests.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let handler = handler.clone();
                let reqs = reqs.clone();
                thread::spawn(move || {
                    let mut out = Out(conn.try_clone().unwrap());
                    for line in BufReader::new(conn).lines() {
                        let Ok(line) = line else { return };
                        let req: Request = proto::decode(line.as_bytes()).unwrap();
                        reqs.lock().unwrap().push(req.clone());
                        handler(req, &mut out);
                    }
                });
            }
        });
        FakeSupervisor {
            _dir: dir,
            path,
            requests,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

/// A held exec of `sh -c SCRIPT`.
pub fn held(id: u64, script: &str) -> Held {
    Held {
        id,
        kind: HeldKind::Exec,
        pid: 4242,
        command: vec!["sh".into(), "-c".into(), script.into()],
        cwd: "/home/dev/repo".into(),
        paths: vec!["/usr/bin/sh".into()],
        ancestry: vec![
            Ancestor {
                pid: 4242,
                cmdline: format!("sh -c {script}"),
            },
            Ancestor {
                pid: 4000,
                cmdline: "node /usr/bin/claude".into(),
            },
        ],
        rule: "destructive-rm".into(),
        why: "recursive deletion outside the build directory".into(),
        severity: Some("high".into()),
        origin: "policy.toml:12".into(),
        since: "2026-11-21T07:42:09.123Z".into(),
        timeout_secs: 120,
    }
}
