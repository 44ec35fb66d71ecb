//! Tracepoint record layouts, read from the kernel's own format files
//! (`/sys/kernel/tracing/events/<category>/<event>/format`).
//!
//! Rust eBPF has no CO-RE relocations, and the layout of non-syscall tracepoints changes between
//! kernels (`sched_process_fork` turned its comm arrays into `__data_loc` strings in 6.x, moving
//! `child_pid` from offset 44 to 20). So the supervisor reads the offsets here at start and hands
//! them to the programs through the `CONFIG` map.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Where tracefs is expected (and mounted by us when it is missing).
pub const TRACEFS: &str = "/sys/kernel/tracing";

/// Errors reading or interpreting format files.
#[derive(Debug, thiserror::Error)]
pub enum TracefsError {
    /// A format file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The format file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// tracefs is not mounted and mounting it failed.
    #[error(
        "tracefs is not mounted at {TRACEFS} and mounting it failed: {0}; mount it with \
         `mount -t tracefs nodev {TRACEFS}`"
    )]
    Mount(#[source] io::Error),
    /// A line of a format file did not parse.
    #[error("{event}: cannot parse format line {line:?}")]
    Syntax {
        /// Event name.
        event: String,
        /// The offending line.
        line: String,
    },
    /// A field the probes need is missing or has an unexpected size.
    #[error("{event}: field `{field}` {problem}; this kernel's tracepoint layout is not supported")]
    Layout {
        /// Event name.
        event: String,
        /// Field name.
        field: String,
        /// What is wrong.
        problem: String,
    },
}

/// One field of a tracepoint record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// C declaration without the name (e.g. `pid_t`, `__data_loc char[]`).
    pub c_type: String,
    /// Field name.
    pub name: String,
    /// Byte offset in the record.
    pub offset: u32,
    /// Size in bytes.
    pub size: u32,
    /// Whether the type is signed.
    pub signed: bool,
}

/// A parsed format file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    /// Event name (`name:` line).
    pub name: String,
    /// Event id (`ID:` line).
    pub id: u32,
    /// Fields in file order, common fields included.
    pub fields: Vec<Field>,
}

impl Format {
    /// Looks a field up by name.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Offset of a field that must exist with the given size.
    pub fn offset_of(&self, name: &str, size: u32) -> Result<u32, TracefsError> {
        let f = self.field(name).ok_or_else(|| TracefsError::Layout {
            event: self.name.clone(),
            field: name.to_string(),
            problem: "is missing".into(),
        })?;
        if f.size != size {
            return Err(TracefsError::Layout {
                event: self.name.clone(),
                field: name.to_string(),
                problem: format!("has size {} (expected {size})", f.size),
            });
        }
        Ok(f.offset)
    }
}

/// Parses the text of a format file.
pub fn parse_format(text: &str) -> Result<Format, TracefsError> {
    let mut name = String::new();
    let mut id = 0;
    let mut fields = Vec::new();
    for raw in text.lines() {
        let line = raw.trim();
        if let Some(v) = line.strip_prefix("name:") {
            name = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("ID:") {
            id = v.trim().parse().map_err(|_| syntax(&name, raw))?;
        } else if line.starts_with("field:") {
            fields.push(parse_field(line).ok_or_else(|| syntax(&name, raw))?);
        }
    }
    if name.is_empty() {
        return Err(syntax("<unnamed>", "missing `name:` line"));
    }
    Ok(Format { name, id, fields })
}

fn syntax(event: &str, line: &str) -> TracefsError {
    TracefsError::Syntax {
        event: event.to_string(),
        line: line.to_string(),
    }
}

/// `field:<decl>;\toffset:N;\tsize:N;\tsigned:N;`
fn parse_field(line: &str) -> Option<Field> {
    let mut decl = None;
    let (mut offset, mut size, mut signed) = (None, None, false);
    for part in line.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part.split_once(':')?;
        match key {
            "field" => decl = Some(value.trim()),
            "offset" => offset = value.trim().parse().ok(),
            "size" => size = value.trim().parse().ok(),
            "signed" => signed = value.trim() == "1",
            _ => {}
        }
    }
    let decl = decl?;
    // The name is the last identifier of the declaration, before any array suffix:
    // `char comm[16]`, `const char * filename`, `__data_loc char[] parent_comm`.
    let without_array = match decl.rfind('[') {
        Some(i) if decl.ends_with(']') && !decl[..i].ends_with(char::is_whitespace) => &decl[..i],
        _ => decl,
    };
    let split = without_array.rfind(|c: char| c.is_whitespace() || c == '*')?;
    let name = without_array[split + 1..].trim();
    if name.is_empty() {
        return None;
    }
    Some(Field {
        c_type: decl[..split + 1].trim().to_string(),
        name: name.to_string(),
        offset: offset?,
        size: size?,
        signed,
    })
}

/// Mounts tracefs at [`TRACEFS`] when it is not there yet.
pub fn ensure_mounted() -> Result<(), TracefsError> {
    if Path::new(TRACEFS).join("events").is_dir() {
        return Ok(());
    }
    nix::mount::mount(
        Some("nodev"),
        TRACEFS,
        Some("tracefs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| TracefsError::Mount(io::Error::from(e)))
}

/// Reads and parses `events/<category>/<event>/format`.
pub fn read_format(category: &str, event: &str) -> Result<Format, TracefsError> {
    let path = Path::new(TRACEFS)
        .join("events")
        .join(category)
        .join(event)
        .join("format");
    let text = fs::read_to_string(&path).map_err(|source| TracefsError::Read {
        path: path.clone(),
        source,
    })?;
    parse_format(&text)
}

/// Where `__syscall_nr` and the arguments sit in `syscalls/sys_enter_*` records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyscallEnterOffsets {
    /// Offset of `__syscall_nr` (4 bytes).
    pub nr: u32,
    /// Offset of the first argument; the others follow it, 8 bytes each.
    pub args: u32,
}

impl SyscallEnterOffsets {
    /// From one `sys_enter_*` format: `__syscall_nr`, then one to six arguments, each 8 bytes
    /// wide and right after the one before (the probes read all six in one go).
    pub fn from_format(f: &Format) -> Result<Self, TracefsError> {
        let nr = f.offset_of("__syscall_nr", 4)?;
        let layout = |field: &str, problem: String| TracefsError::Layout {
            event: f.name.clone(),
            field: field.to_string(),
            problem,
        };
        let args: Vec<&Field> = f
            .fields
            .iter()
            .filter(|x| !x.name.starts_with("common_") && x.name != "__syscall_nr")
            .collect();
        let first = args
            .first()
            .ok_or_else(|| layout("__syscall_nr", "is followed by no argument".into()))?
            .offset;
        if args.len() > 6 {
            return Err(layout(&args[6].name, "is a seventh argument".into()));
        }
        for (i, a) in args.iter().enumerate() {
            let want = first + 8 * i as u32;
            if a.size != 8 || a.offset != want {
                return Err(layout(
                    &a.name,
                    format!(
                        "is at offset {} with size {} (expected offset {want}, size 8)",
                        a.offset, a.size
                    ),
                ));
            }
        }
        Ok(Self { nr, args: first })
    }

    /// Reads the formats of the `syscalls/<event>` tracepoints named in `events`, which must
    /// all have the same layout (one program reads them all).
    pub fn read(events: &[&str]) -> Result<Self, TracefsError> {
        let mut agreed: Option<(Self, &str)> = None;
        for event in events {
            let o = Self::from_format(&read_format("syscalls", event)?)?;
            match agreed {
                None => agreed = Some((o, event)),
                Some((a, _)) if a == o => {}
                Some((a, other)) => {
                    return Err(TracefsError::Layout {
                        event: (*event).to_string(),
                        field: "__syscall_nr".into(),
                        problem: format!(
                            "and the arguments sit at {}/{}, where {other} has them at {}/{}",
                            o.nr, o.args, a.nr, a.args
                        ),
                    });
                }
            }
        }
        agreed.map(|(a, _)| a).ok_or_else(|| TracefsError::Layout {
            event: "syscalls".into(),
            field: "__syscall_nr".into(),
            problem: "was asked of no tracepoint".into(),
        })
    }
}

/// Offsets the probes need from non-syscall tracepoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedOffsets {
    /// `sched_process_fork.parent_pid`.
    pub fork_parent_pid: u32,
    /// `sched_process_fork.child_pid`.
    pub fork_child_pid: u32,
    /// `sched_process_exit.group_dead`, absent before Linux 6.x.
    pub exit_group_dead: Option<u32>,
}

impl SchedOffsets {
    /// Extracts the offsets from the two formats.
    pub fn from_formats(fork: &Format, exit: &Format) -> Result<Self, TracefsError> {
        Ok(Self {
            fork_parent_pid: fork.offset_of("parent_pid", 4)?,
            fork_child_pid: fork.offset_of("child_pid", 4)?,
            exit_group_dead: exit
                .field("group_dead")
                .filter(|f| f.size == 1)
                .map(|f| f.offset),
        })
    }

    /// Reads them from the running kernel.
    pub fn read() -> Result<Self, TracefsError> {
        let fork = read_format("sched", "sched_process_fork")?;
        let exit = read_format("sched", "sched_process_exit")?;
        Self::from_formats(&fork, &exit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fixture {
        ($kernel:literal, $event:literal) => {
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/fixtures/tracefs/",
                $kernel,
                "/",
                $event
            ))
        };
    }

    #[test]
    fn fork_offsets_6_18_data_loc_comm() {
        let fork = parse_format(fixture!("6.18", "sched_process_fork")).expect("parse");
        let exit = parse_format(fixture!("6.18", "sched_process_exit")).expect("parse");
        assert_eq!(fork.name, "sched_process_fork");
        let comm = fork.field("parent_comm").expect("parent_comm");
        assert_eq!(comm.c_type, "__data_loc char[]");
        assert_eq!((comm.offset, comm.size), (8, 4));
        let o = SchedOffsets::from_formats(&fork, &exit).expect("offsets");
        assert_eq!(
            o,
            SchedOffsets {
                fork_parent_pid: 12,
                fork_child_pid: 20,
                exit_group_dead: Some(32)
            }
        );
    }

    #[test]
    fn syscall_enter_offsets_6_18() {
        for (event, text) in [
            ("unlinkat", fixture!("6.18", "sys_enter_unlinkat")),
            ("execve", fixture!("6.18", "sys_enter_execve")),
        ] {
            let f = parse_format(text).expect(event);
            assert_eq!(
                SyscallEnterOffsets::from_format(&f).expect(event),
                SyscallEnterOffsets { nr: 8, args: 16 },
                "{event}"
            );
        }
    }

    #[test]
    fn syscall_enter_layout_errors_name_the_field() {
        let text = fixture!("6.18", "sys_enter_unlinkat");
        // An argument that is not 8 bytes wide.
        let narrow = text.replace(
            "field:const char * pathname;\toffset:24;\tsize:8;",
            "field:const char * pathname;\toffset:24;\tsize:4;",
        );
        assert_ne!(narrow, text, "the fixture has the line replaced");
        let e = SyscallEnterOffsets::from_format(&parse_format(&narrow).unwrap()).unwrap_err();
        assert!(
            matches!(&e, TracefsError::Layout { event, field, .. }
                if event == "sys_enter_unlinkat" && field == "pathname"),
            "{e}"
        );
        // No __syscall_nr at all.
        let no_nr = text.replace("__syscall_nr", "nr");
        let e = SyscallEnterOffsets::from_format(&parse_format(&no_nr).unwrap()).unwrap_err();
        assert!(e.to_string().contains("`__syscall_nr` is missing"), "{e}");
    }

    #[test]
    fn fork_offsets_5_15_array_comm() {
        let fork = parse_format(fixture!("5.15", "sched_process_fork")).expect("parse");
        let exit = parse_format(fixture!("5.15", "sched_process_exit")).expect("parse");
        let comm = fork.field("child_comm").expect("child_comm");
        assert_eq!(
            (comm.c_type.as_str(), comm.offset, comm.size),
            ("char", 28, 16)
        );
        let o = SchedOffsets::from_formats(&fork, &exit).expect("offsets");
        assert_eq!(
            o,
            SchedOffsets {
                fork_parent_pid: 24,
                fork_child_pid: 44,
                exit_group_dead: None
            }
        );
    }

    #[test]
    fn syscall_records_of_both_kernels() {
        for text in [
            fixture!("6.18", "sys_enter_renameat2"),
            fixture!("5.15", "sys_enter_renameat2"),
        ] {
            let f = parse_format(text).expect("parse");
            assert_eq!(
                f.field("__syscall_nr").map(|f| (f.offset, f.size)),
                Some((8, 4))
            );
            assert_eq!(f.field("newname").map(|f| f.offset), Some(40));
            assert_eq!(
                f.field("oldname").map(|f| f.c_type.as_str()),
                Some("const char *")
            );
        }
    }

    #[test]
    fn missing_field_is_an_error_naming_it() {
        let fork = parse_format(
            &fixture!("6.18", "sched_process_fork").replace("pid_t child_pid", "pid_t kid"),
        )
        .expect("parse");
        let exit = parse_format(fixture!("6.18", "sched_process_exit")).expect("parse");
        let err = SchedOffsets::from_formats(&fork, &exit).unwrap_err();
        assert!(err.to_string().contains("child_pid"), "{err}");
    }

    #[test]
    fn garbage_is_a_syntax_error() {
        assert!(parse_format("name: x\nID: 1\n\tfield:int;\toffset:zz;\n").is_err());
        assert!(parse_format("").is_err());
    }
}
