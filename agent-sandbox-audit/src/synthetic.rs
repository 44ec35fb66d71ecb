//! Deterministic records shaped like the supervisor's events, for benchmarks and tests.

use serde_json::{Map, Value, json};

const PROGRAMS: [(&str, &str, &[&str]); 6] = [
    ("git", "/usr/bin/git", &["status", "--porcelain"]),
    (
        "cargo",
        "/home/dev/.cargo/bin/cargo",
        &["build", "--release", "-p", "agent"],
    ),
    ("cat", "/usr/bin/cat", &["src/main.rs"]),
    ("rg", "/usr/bin/rg", &["-n", "fn main", "src/"]),
    (
        "python3",
        "/usr/bin/python3",
        &["-c", "import sys; print(sys.argv)"],
    ),
    ("ls", "/usr/bin/ls", &["-la", "target/debug"]),
];

const PATHS: [&str; 4] = [
    "/home/dev/project/src/main.rs",
    "/usr/lib/x86_64-linux-gnu/libc.so.6",
    "/home/dev/project/Cargo.toml",
    "/etc/ld.so.cache",
];

/// Record number `i` of a synthetic session: a rotation of `exec` (with argv), `open` and
/// `connect` events with the same fields and similar sizes as the supervisor's event stream
/// (see the README's "The event stream"). The same `i` always gives the same record.
pub fn synthetic_record(i: u64) -> Map<String, Value> {
    let pid = 20_000 + (i % 5_000);
    let ktime_ns = 842_012_306_852u64.wrapping_add(i.wrapping_mul(137_911));
    // A plausible wall clock: one record every ~0.14 ms from a fixed start.
    let micros = 240_941u64 + i.wrapping_mul(137);
    let secs = micros / 1_000_000;
    let time = format!(
        "2026-11-21T06:{:02}:{:02}.{:06}Z",
        26 + (secs / 60) % 30,
        secs % 60,
        micros % 1_000_000
    );
    let (kind, comm, fields) = match i % 3 {
        0 => {
            let idx = usize::try_from(i / 3 % 6).unwrap_or(0);
            let (prog, filename, args) = PROGRAMS.get(idx).copied().unwrap_or(PROGRAMS[0]);
            let mut argv = vec![Value::from(prog)];
            argv.extend(args.iter().map(|a| Value::from(*a)));
            (
                "exec",
                prog,
                json!({"argv": argv, "filename": filename, "ret": 0, "syscall": "execve"}),
            )
        }
        1 => {
            let idx = usize::try_from(i / 3 % 4).unwrap_or(0);
            let path = PATHS.get(idx).copied().unwrap_or(PATHS[0]);
            (
                "open",
                "cargo",
                json!({"dirfd": "AT_FDCWD", "flags": "O_RDONLY|O_CLOEXEC", "flags_raw": 524288,
                       "mode": "0", "path": path, "syscall": "openat"}),
            )
        }
        _ => (
            "connect",
            "curl",
            json!({"address": format!("10.0.{}.{}", (i / 256) % 256, i % 256),
                   "family": "inet", "fd": 5, "port": 443}),
        ),
    };
    let mut m = Map::new();
    m.insert("ancestry".into(), json!([pid - 1, 19_316]));
    m.insert("comm".into(), Value::from(comm));
    m.insert("fields".into(), fields);
    m.insert("kind".into(), Value::from(kind));
    m.insert("ktime_ns".into(), Value::from(ktime_ns));
    m.insert("pid".into(), Value::from(pid));
    m.insert("ppid".into(), Value::from(pid - 1));
    m.insert("tid".into(), Value::from(pid));
    m.insert("time".into(), Value::from(time));
    m.insert("uid".into(), Value::from(1000));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_kinds_and_is_deterministic() {
        let kinds: Vec<_> = (0..3)
            .map(|i| synthetic_record(i)["kind"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(kinds, ["exec", "open", "connect"]);
        assert_eq!(synthetic_record(42), synthetic_record(42));
        assert_ne!(synthetic_record(42), synthetic_record(45));
        let exec = synthetic_record(3);
        assert_eq!(exec["fields"]["argv"][0], "cargo");
        let len = serde_json::to_string(&exec).unwrap().len();
        assert!((200..600).contains(&len), "{len}");
    }
}
