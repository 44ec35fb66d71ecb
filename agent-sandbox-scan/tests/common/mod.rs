//! Helpers shared by the integration tests: a deterministic generator of fake secrets and the
//! template expander for `tests/data/positive`.
//!
//! Fake secrets are built at run time, never committed, so that this crate's own tree scans
//! clean (checked by `own_source_tree_scans_clean`).
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

pub const B62: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
pub const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
pub const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
pub const HEX: &[u8] = b"0123456789abcdef";
pub const UPPER_HEX: &[u8] = b"0123456789ABCDEF";
pub const UPNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
pub const DIGITS: &[u8] = b"0123456789";
pub const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// xorshift64*: deterministic, so a failure reproduces exactly.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// `n` characters drawn from `alphabet`.
    pub fn pick(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| alphabet[self.below(alphabet.len())] as char)
            .collect()
    }

    /// Like `pick`, but starting with a letter and containing upper, lower and digit, which
    /// real base62/base64 tokens of this length do with near certainty.
    pub fn mixed(&mut self, alphabet: &[u8], n: usize) -> String {
        loop {
            let s = self.pick(alphabet, n);
            let first_alpha = s.as_bytes()[0].is_ascii_alphabetic();
            let (u, l, d) = (
                s.bytes().any(|b| b.is_ascii_uppercase()),
                s.bytes().any(|b| b.is_ascii_lowercase()),
                s.bytes().any(|b| b.is_ascii_digit()),
            );
            if first_alpha && u && l && d {
                return s;
            }
        }
    }
}

/// Expands `{{kind:n}}` placeholders. Returns the text and every generated value (to check
/// that redaction never reveals them).
pub fn expand(template: &str, rng: &mut Rng) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut generated = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let j = after.find("}}").expect("unclosed placeholder in template");
        let spec = &after[..j];
        let (kind, n) = match spec.split_once(':') {
            Some((k, n)) => (k, n.parse::<usize>().expect("placeholder length")),
            None => (spec, 0),
        };
        let value = match kind {
            "b62" => rng.mixed(B62, n),
            "b64" => rng.mixed(B64, n),
            "b64url" => rng.mixed(B64URL, n),
            "hex" => rng.pick(HEX, n),
            "HEX" => rng.pick(UPPER_HEX, n),
            "upnum" => rng.pick(UPNUM, n),
            "digits" => format!("{}{}", 1 + rng.below(9), rng.pick(DIGITS, n - 1)),
            "alpha" => rng.mixed_letters(n),
            "awssecret" => rng.mixed(B64, 40),
            "b64lines" => (0..n)
                .map(|_| rng.mixed(B64, 64))
                .collect::<Vec<_>>()
                .join("\n"),
            "b64escaped" => (0..n).map(|_| rng.mixed(B64, 64) + "\\n").collect(),
            other => panic!("unknown placeholder kind {other}"),
        };
        out.push_str(&value);
        generated.push(value);
        rest = &after[j + 2..];
    }
    out.push_str(rest);
    (out, generated)
}

impl Rng {
    /// Mixed-case letters only (Hugging Face tokens).
    pub fn mixed_letters(&mut self, n: usize) -> String {
        loop {
            let s = self.pick(ALPHA, n);
            if s.bytes().any(|b| b.is_ascii_uppercase())
                && s.bytes().any(|b| b.is_ascii_lowercase())
            {
                return s;
            }
        }
    }
}

pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Copies the template tree `src` to `dest`, expanding placeholders in every file.
pub fn expand_tree(src: &Path, dest: &Path, rng: &mut Rng, generated: &mut Vec<String>) {
    for entry in fs::read_dir(src).expect("read template dir") {
        let entry = entry.expect("dir entry");
        let to = dest.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            fs::create_dir_all(&to).expect("mkdir");
            expand_tree(&entry.path(), &to, rng, generated);
        } else {
            let text = fs::read_to_string(entry.path()).expect("template is UTF-8");
            let (expanded, values) = expand(&text, rng);
            generated.extend(values);
            fs::write(&to, expanded).expect("write expanded file");
        }
    }
}

/// Writes `content` to `root/rel`, creating parent directories.
pub fn write(root: &Path, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
    let p = root.join(rel);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).expect("mkdir");
    }
    fs::write(&p, content).expect("write");
    p
}
