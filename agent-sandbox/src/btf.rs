//! The few facts the probes need from the kernel's BTF (`/sys/kernel/btf/vmlinux`).
//!
//! The syscall probes are BTF-typed raw tracepoints (tp_btf): the kernel needs the BTF id of
//! each tracepoint's `btf_trace_<name>` typedef when the program is loaded, and in return lets
//! the program read `struct pt_regs` with plain loads instead of a helper call per syscall.
//!
//! aya finds that id by parsing the whole BTF (~5 MB, ~150 000 types): about 20 ms of CPU and
//! 20 MB of memory at every session's start, for two numbers. This module streams the file
//! instead (a 64 KiB buffer, a few ms), finds the typedefs' ids, and gives aya a stand-in BTF
//! ([`stand_in`]) in which those typedefs sit at the kernel's ids and every other type is a
//! placeholder. aya looks the id up by name in it and passes it to the kernel, which checks the
//! program against its own, real BTF.
//!
//! The same pass finds the offsets of the few `task_struct` (and related) fields that the
//! probes load directly (see `agent_sandbox_common::TaskOffsets`).

use std::fs::File;
use std::io::{BufRead as _, BufReader, Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

/// Where the running kernel exposes its BTF (CONFIG_DEBUG_INFO_BTF).
pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

/// `BTF_MAGIC` (include/uapi/linux/btf.h), little-endian as the file stores it on x86_64.
const MAGIC: u16 = 0xeb9f;
/// `BTF_KIND_*` values used here.
const KIND_PTR: u32 = 2;
const KIND_STRUCT: u32 = 4;
const KIND_TYPEDEF: u32 = 8;
/// Size of `struct btf_type` (name_off, info, size/type).
const TYPE_HEADER: usize = 12;

/// Why the kernel's BTF could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    /// The file could not be read.
    #[error(
        "reading {path}: {source} (the kernel needs CONFIG_DEBUG_INFO_BTF=y for the syscall probes)"
    )]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not BTF as this module understands it.
    #[error("{path}: {what}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What did not make sense.
        what: String,
    },
    /// A wanted typedef or struct is not in the kernel's BTF (for a `btf_trace_*` typedef:
    /// the kernel has no tracepoint of that name).
    #[error("{path}: no type named {name} (a kernel without it cannot run the probes)")]
    Missing {
        /// The file.
        path: PathBuf,
        /// The type's name.
        name: String,
    },
    /// A kernel structure the probes read lacks a field, or has it somewhere they cannot
    /// read it from (inside an anonymous struct or union).
    #[error(
        "{path}: struct {structure} has no direct member {member}: this kernel's layout is one \
         agent-sandbox's probes cannot read"
    )]
    MissingMember {
        /// The file.
        path: PathBuf,
        /// The struct.
        structure: String,
        /// The member.
        member: String,
    },
    /// aya refused the stand-in BTF.
    #[error("building the stand-in BTF: {0}")]
    StandIn(#[source] aya::BtfError),
}

/// The fields of `struct btf_header` this module uses (offsets relative to the header's end).
struct Header {
    hdr_len: u64,
    type_off: u64,
    type_len: u64,
    str_off: u64,
    str_len: u64,
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Bytes that follow the 12-byte `struct btf_type` of a type of this kind with `vlen` members
/// (include/uapi/linux/btf.h); `None` for a kind this module does not know, since skipping it
/// by a wrong size would misnumber every type after it.
fn trailing_bytes(kind: u32, vlen: u32) -> Option<u64> {
    let vlen = u64::from(vlen);
    Some(match kind {
        // INT (u32 encoding), VAR (u32 linkage), DECL_TAG (u32 component_idx)
        1 | 14 | 17 => 4,
        // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG
        2 | 7 | 8 | 9 | 10 | 11 | 12 | 16 | 18 => 0,
        // ARRAY (struct btf_array)
        3 => 12,
        // STRUCT, UNION (struct btf_member), DATASEC (struct btf_var_secinfo), ENUM64
        4 | 5 | 15 | 19 => 12 * vlen,
        // ENUM (struct btf_enum), FUNC_PROTO (struct btf_param)
        6 | 13 => 8 * vlen,
        _ => return None,
    })
}

/// What [`scan`] found, in the order it was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The type ids of the typedefs asked for.
    pub typedef_ids: Vec<u32>,
    /// The byte offsets of the `(struct, member)` pairs asked for.
    pub member_offsets: Vec<u32>,
}

/// The BTF type ids of the typedefs named `names`, in that order, read from `path`.
#[cfg(test)]
fn typedef_ids(path: &Path, names: &[&str]) -> Result<Vec<u32>, BtfError> {
    Ok(scan(path, names, &[])?.typedef_ids)
}

/// One pass over the BTF at `path`: the type ids of the typedefs named `typedefs` and the byte
/// offsets of the `members`, each a `(struct, member)` pair naming a direct member of a named
/// struct (not one inside an anonymous struct or union, and not a bitfield).
pub fn scan(path: &Path, typedefs: &[&str], members: &[(&str, &str)]) -> Result<Found, BtfError> {
    let io = |source| BtfError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bad = |what: String| BtfError::Malformed {
        path: path.to_path_buf(),
        what,
    };
    let missing = |name: String| BtfError::Missing {
        path: path.to_path_buf(),
        name,
    };
    let mut file = File::open(path).map_err(io)?;
    let mut raw = [0u8; 24];
    file.read_exact(&mut raw).map_err(io)?;
    if u16::from_le_bytes([raw[0], raw[1]]) != MAGIC {
        return Err(bad("not BTF (bad magic, or not little-endian)".into()));
    }
    let h = Header {
        hdr_len: u64::from(u32_at(&raw, 4)),
        type_off: u64::from(u32_at(&raw, 8)),
        type_len: u64::from(u32_at(&raw, 12)),
        str_off: u64::from(u32_at(&raw, 16)),
        str_len: u64::from(u32_at(&raw, 20)),
    };

    // 1. The string offsets of every wanted name (the section is deduplicated: one each).
    let mut names: Vec<&str> = typedefs.to_vec();
    for &(st, m) in members {
        names.extend([st, m]);
    }
    names.sort_unstable();
    names.dedup();
    let mut offsets: Vec<Option<u32>> = vec![None; names.len()];
    file.seek(SeekFrom::Start(h.hdr_len + h.str_off))
        .map_err(io)?;
    let mut strings = BufReader::with_capacity(1 << 16, (&mut file).take(h.str_len));
    let mut at: u64 = 0;
    let mut s = Vec::new();
    loop {
        s.clear();
        let n = strings.read_until(0, &mut s).map_err(io)?;
        if n == 0 {
            break;
        }
        let name = s.strip_suffix(&[0]).unwrap_or(&s);
        if let Ok(i) = names.binary_search_by(|w| w.as_bytes().cmp(name))
            && offsets[i].is_none()
        {
            offsets[i] = u32::try_from(at).ok();
        }
        at += n as u64;
        if offsets.iter().all(Option::is_some) {
            break;
        }
    }
    drop(strings);
    let off_of = |name: &str| -> Result<u32, BtfError> {
        names
            .binary_search(&name)
            .ok()
            .and_then(|i| offsets[i])
            .ok_or_else(|| missing(name.to_string()))
    };
    let typedef_offs = typedefs
        .iter()
        .map(|n| off_of(n))
        .collect::<Result<Vec<_>, _>>()?;
    // A member name that is no string at all is reported as that member missing, below.
    let member_offs: Vec<(u32, Option<u32>)> = members
        .iter()
        .map(|&(st, m)| Ok((off_of(st)?, off_of(m).ok())))
        .collect::<Result<_, BtfError>>()?;

    // 2. The typedefs' ids (type ids start at 1; 0 is void) and the wanted structs' members.
    let mut ids: Vec<Option<u32>> = vec![None; typedefs.len()];
    let mut found: Vec<Option<u32>> = vec![None; members.len()];
    let mut structs_seen: Vec<u32> = Vec::new();
    file.seek(SeekFrom::Start(h.hdr_len + h.type_off))
        .map_err(io)?;
    // The whole type section at once (~5 MB, freed on return): walking ~150 000 types through
    // a reader, 12 bytes at a time, cost ~30 ms of the session's start.
    // A kernel's is ~5 MB; a header claiming more than 256 MiB is not one.
    let type_len = usize::try_from(h.type_len)
        .ok()
        .filter(|&n| n <= 256 << 20)
        .ok_or_else(|| bad(format!("a type section of {} bytes", h.type_len)))?;
    let mut types = vec![0u8; type_len];
    file.read_exact(&mut types).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            bad("the type section is cut short".into())
        } else {
            io(e)
        }
    })?;
    let mut at = 0usize;
    let mut id: u32 = 0;
    let wanted_struct = |name_off: u32| member_offs.iter().any(|&(st, _)| st == name_off);
    while ids.iter().any(Option::is_none)
        || member_offs
            .iter()
            .any(|&(st, _)| !structs_seen.contains(&st))
    {
        let Some(t) = types.get(at..at + TYPE_HEADER) else {
            break;
        };
        at += TYPE_HEADER;
        id += 1;
        let (name_off, info) = (u32_at(t, 0), u32_at(t, 4));
        let kind = (info >> 24) & 0x1f;
        let vlen = info & 0xffff;
        if kind == KIND_TYPEDEF {
            for (i, o) in typedef_offs.iter().enumerate() {
                if *o == name_off && ids[i].is_none() {
                    ids[i] = Some(id);
                }
            }
        }
        let skip = trailing_bytes(kind, vlen).ok_or_else(|| {
            bad(format!(
                "type {id} has kind {kind}, unknown to agent-sandbox"
            ))
        })?;
        if kind == KIND_STRUCT && wanted_struct(name_off) && !structs_seen.contains(&name_off) {
            structs_seen.push(name_off);
            let m = types
                .get(at..at + skip as usize)
                .ok_or_else(|| bad(format!("type {id} is cut short")))?;
            at += skip as usize;
            // struct btf_member { name_off, type, offset }; with kind_flag set, `offset`
            // holds the bitfield size in its top 8 bits and the bit offset below.
            let kind_flag = info >> 31 == 1;
            for member in m.chunks_exact(12) {
                let (m_name, m_off) = (u32_at(member, 0), u32_at(member, 8));
                let (bits, bitfield) = if kind_flag {
                    (m_off & 0x00ff_ffff, m_off >> 24 != 0)
                } else {
                    (m_off, false)
                };
                for (i, &(st, name)) in member_offs.iter().enumerate() {
                    if st == name_off && name == Some(m_name) {
                        if bitfield || bits % 8 != 0 {
                            return Err(bad(format!(
                                "{}.{} is a bitfield",
                                members[i].0, members[i].1
                            )));
                        }
                        found[i] = Some(bits / 8);
                    }
                }
            }
            continue;
        }
        at += skip as usize;
        if at > types.len() {
            return Err(bad(format!("type {id} is cut short")));
        }
    }
    let typedef_ids = typedefs
        .iter()
        .zip(ids)
        .map(|(name, id)| id.ok_or_else(|| missing((*name).to_string())))
        .collect::<Result<_, _>>()?;
    let member_offsets = members
        .iter()
        .zip(found)
        .map(|(&(st, m), off)| {
            off.ok_or_else(|| BtfError::MissingMember {
                path: path.to_path_buf(),
                structure: st.to_string(),
                member: m.to_string(),
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Found {
        typedef_ids,
        member_offsets,
    })
}

/// A BTF in which each `(name, id)` is a typedef at type id `id` and every other id up to the
/// largest is a placeholder (`void *`): enough for aya to find the ids by name, and small
/// (12 bytes per type).
pub fn stand_in(typedefs: &[(&str, u32)]) -> Result<aya::Btf, BtfError> {
    let last = typedefs.iter().map(|&(_, id)| id).max().unwrap_or(0);
    let mut strings = vec![0u8];
    let mut name_offs = Vec::with_capacity(typedefs.len());
    for (name, _) in typedefs {
        name_offs.push(strings.len() as u32);
        strings.extend_from_slice(name.as_bytes());
        strings.push(0);
    }
    let type_len = last as usize * TYPE_HEADER;
    let mut blob = Vec::with_capacity(24 + type_len + strings.len());
    blob.extend_from_slice(&MAGIC.to_le_bytes());
    blob.extend_from_slice(&[1, 0]); // version 1, no flags
    for v in [
        24,
        0,
        type_len as u32,
        type_len as u32,
        strings.len() as u32,
    ] {
        blob.extend_from_slice(&v.to_le_bytes());
    }
    for id in 1..=last {
        let (kind, name_off) = match typedefs.iter().position(|&(_, i)| i == id) {
            Some(i) => (KIND_TYPEDEF, name_offs[i]),
            None => (KIND_PTR, 0),
        };
        // name_off, info (kind << 24), type: 0 (void) for both.
        for v in [name_off, kind << 24, 0] {
            blob.extend_from_slice(&v.to_le_bytes());
        }
    }
    blob.extend_from_slice(&strings);
    aya::Btf::parse(&blob, aya::Endianness::Little).map_err(BtfError::StandIn)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small BTF file with one type of most kinds, members included, so that a wrong skip
    /// size for any of them would misnumber the typedefs after it.
    fn sample() -> Vec<u8> {
        let strings = b"\0int\0s\0a\0b\0f\0btf_trace_x\0btf_trace_y\0";
        let off = |name: &str| -> u32 {
            let pat = format!("\0{name}\0");
            let at = strings
                .windows(pat.len())
                .position(|w| w == pat.as_bytes())
                .unwrap();
            (at + 1) as u32
        };
        let mut types = Vec::new();
        let mut ty = |name_off: u32, kind: u32, vlen: u32, size_type: u32, extra: &[u32]| {
            for v in [name_off, (kind << 24) | vlen, size_type] {
                types.extend_from_slice(&v.to_le_bytes());
            }
            for v in extra {
                types.extend_from_slice(&v.to_le_bytes());
            }
        };
        ty(off("int"), 1, 0, 4, &[32]); // 1: INT
        ty(0, 2, 0, 1, &[]); // 2: PTR -> int
        ty(0, 3, 0, 0, &[1, 1, 4]); // 3: ARRAY of 4 int
        ty(off("s"), 4, 2, 8, &[off("a"), 1, 0, off("b"), 1, 32]); // 4: STRUCT, 2 members
        ty(off("btf_trace_y"), 8, 0, 2, &[]); // 5: TYPEDEF
        ty(0, 13, 2, 1, &[0, 1, 0, 2]); // 6: FUNC_PROTO, 2 params
        ty(off("f"), 12, 0, 6, &[]); // 7: FUNC
        ty(0, 6, 3, 4, &[off("a"), 0, off("b"), 1, off("f"), 2]); // 8: ENUM, 3 values
        ty(0, 19, 1, 8, &[off("a"), 0, 0]); // 9: ENUM64, 1 value
        ty(off("b"), 14, 0, 1, &[1]); // 10: VAR
        ty(0, 15, 1, 4, &[10, 0, 4]); // 11: DATASEC, 1 var
        ty(0, 17, 0, 1, &[0]); // 12: DECL_TAG
        ty(off("btf_trace_x"), 8, 0, 2, &[]); // 13: TYPEDEF
        // 14: STRUCT with kind_flag: a is a 3-bit bitfield at bit 8, b a plain member at bit 64.
        ty(
            off("f"),
            4 | 1 << 7,
            2,
            16,
            &[off("a"), 1, 3 << 24 | 8, off("b"), 1, 64],
        );
        let mut blob = MAGIC.to_le_bytes().to_vec();
        blob.extend_from_slice(&[1, 0]);
        let tl = types.len() as u32;
        for v in [24, 0, tl, tl, strings.len() as u32] {
            blob.extend_from_slice(&v.to_le_bytes());
        }
        blob.extend_from_slice(&types);
        blob.extend_from_slice(strings);
        blob
    }

    fn write_temp(name: &str, bytes: &[u8]) -> PathBuf {
        let p =
            std::env::temp_dir().join(format!("agent-sandbox-btf-{}-{name}", std::process::id()));
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn finds_typedefs_after_every_kind_of_type() {
        let p = write_temp("sample", &sample());
        let ids = typedef_ids(&p, &["btf_trace_x", "btf_trace_y"]);
        let _ = std::fs::remove_file(&p);
        assert_eq!(ids.unwrap(), vec![13, 5]);
    }

    #[test]
    fn a_missing_name_or_unknown_kind_is_an_error_naming_the_file() {
        let p = write_temp("missing", &sample());
        let e = typedef_ids(&p, &["btf_trace_nope"]).unwrap_err();
        assert!(matches!(&e, BtfError::Missing { name, .. } if name == "btf_trace_nope"));
        assert!(e.to_string().contains(&*p.to_string_lossy()), "{e}");
        // "s" is a string but the struct named s is no typedef.
        assert!(matches!(
            typedef_ids(&p, &["s"]),
            Err(BtfError::Missing { .. })
        ));
        let mut odd = sample();
        // Type 1's kind byte (offset 24 + 7) -> 31, a kind that does not exist.
        odd[31] = 31;
        std::fs::write(&p, &odd).unwrap();
        let e = typedef_ids(&p, &["btf_trace_x"]).unwrap_err();
        let _ = std::fs::remove_file(&p);
        assert!(
            matches!(&e, BtfError::Malformed { what, .. } if what.contains("kind 31")),
            "{e}"
        );
        let e = typedef_ids(Path::new("/nonexistent/vmlinux"), &["x"]).unwrap_err();
        assert!(e.to_string().contains("CONFIG_DEBUG_INFO_BTF"), "{e}");
    }

    #[test]
    fn finds_struct_members_in_the_same_pass() {
        let p = write_temp("members", &sample());
        let found = scan(&p, &["btf_trace_x"], &[("s", "b"), ("s", "a"), ("f", "b")]);
        let bitfield = scan(&p, &[], &[("f", "a")]);
        let no_member = scan(&p, &[], &[("s", "f")]);
        let no_struct = scan(&p, &[], &[("int", "a")]);
        let no_name = scan(&p, &[], &[("nostruct", "a")]);
        let _ = std::fs::remove_file(&p);
        assert_eq!(
            found.unwrap(),
            Found {
                typedef_ids: vec![13],
                member_offsets: vec![4, 0, 8],
            }
        );
        let e = bitfield.unwrap_err();
        assert!(
            matches!(&e, BtfError::Malformed { what, .. } if what == "f.a is a bitfield"),
            "{e}"
        );
        let e = no_member.unwrap_err();
        assert!(
            matches!(&e, BtfError::MissingMember { structure, member, .. }
                if structure == "s" && member == "f"),
            "{e}"
        );
        assert!(
            e.to_string().contains("struct s has no direct member f"),
            "{e}"
        );
        // "int" names a type, but not a struct.
        assert!(matches!(no_struct, Err(BtfError::MissingMember { .. })));
        assert!(matches!(no_name, Err(BtfError::Missing { name, .. }) if name == "nostruct"));
    }

    /// Every field the probes load is a direct member of its struct in the running kernel.
    #[test]
    fn the_kernels_btf_has_every_task_field() {
        let fields = agent_sandbox_common::TaskOffsets::FIELDS;
        let found = scan(Path::new(VMLINUX), &[], &fields).expect("the kernel's BTF");
        let o = agent_sandbox_common::TaskOffsets::from_array(
            found.member_offsets.try_into().expect("nine offsets"),
        );
        // tgid follows pid, both pid_t; comm is far into task_struct; the rest are pointers
        // and ids at 8-byte alignment.
        assert_eq!(o.task_tgid, o.task_pid + 4, "{o:?}");
        assert!(o.task_comm > o.task_tgid, "{o:?}");
        for off in [
            o.task_cred,
            o.task_cgroups,
            o.css_set_dfl_cgrp,
            o.cgroup_kn,
            o.kernfs_node_id,
        ] {
            assert_eq!(off % 8, 0, "{o:?}");
        }
    }

    /// The stand-in gives aya's lookup the same ids as the kernel's whole BTF does.
    #[test]
    fn stand_in_agrees_with_the_kernels_btf() {
        let names = ["btf_trace_sys_enter", "btf_trace_sys_exit"];
        let ids = typedef_ids(Path::new(VMLINUX), &names).expect("the kernel's BTF");
        let full = aya::Btf::from_sys_fs().expect("aya parses the kernel's BTF");
        let stand_in = stand_in(&[(names[0], ids[0]), (names[1], ids[1])]).unwrap();
        for (name, id) in names.iter().zip(&ids) {
            let kind = aya_obj::btf::BtfKind::Typedef;
            assert_eq!(
                full.id_by_type_name_kind(name, kind).unwrap(),
                *id,
                "{name}"
            );
            assert_eq!(
                stand_in.id_by_type_name_kind(name, kind).unwrap(),
                *id,
                "{name}"
            );
        }
    }
}
