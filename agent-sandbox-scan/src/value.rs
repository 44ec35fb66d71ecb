//! Tests on candidate secret values: does it look random, is it a placeholder?
//!
//! Every detector ends here, because the difference between a leaked token and the same shape in
//! documentation (`ghp_xxxx…`, `your-api-key-here`, `${TOKEN}`) is in the value, not the prefix.

use aho_corasick::AhoCorasick;
use std::sync::LazyLock;

/// Shannon entropy of the bytes of `v`, in bits per byte.
pub(crate) fn entropy(v: &[u8]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in v {
        counts[usize::from(b)] += 1;
    }
    let n = v.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Which character classes occur in a value.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Classes {
    pub lower: bool,
    pub upper: bool,
    pub digit: bool,
    pub symbol: bool,
}

impl Classes {
    pub(crate) fn of(v: &[u8]) -> Classes {
        let mut c = Classes::default();
        for &b in v {
            match b {
                b'a'..=b'z' => c.lower = true,
                b'A'..=b'Z' => c.upper = true,
                b'0'..=b'9' => c.digit = true,
                _ => c.symbol = true,
            }
        }
        c
    }

    pub(crate) fn count(self) -> usize {
        usize::from(self.lower)
            + usize::from(self.upper)
            + usize::from(self.digit)
            + usize::from(self.symbol)
    }

    fn letter(self) -> bool {
        self.lower || self.upper
    }
}

/// Words that mark documentation, examples and fixtures rather than a live credential.
/// Matched anywhere in the value in lower, upper or capitalised spelling; a random token
/// contains one of these by chance with a probability in the order of 1e-5.
const PLACEHOLDER_WORDS: &[&str] = &[
    "example",
    "dummy",
    "test",
    "changeme",
    "change_me",
    "change-me",
    "placeholder",
    "your",
    "xxxx",
    "redacted",
    "sample",
    "fake",
    "insert",
    "replace",
    "secret_here",
    "token_here",
    "key_here",
    "here-",
    "-here",
    "notreal",
    "not_real",
    "not-real",
    "foobar",
    "lorem",
];

/// Fragments of template and shell syntax: the value refers to a secret stored elsewhere.
const TEMPLATE_MARKERS: &[&str] = &[
    "${", "{{", "}}", "$(", "<", ">", "%s", "%(", "%{", "***", "...", "…",
];

/// `needle` (written in lower case) occurs as `word`, `WORD` or `Word`. Mixed spellings such
/// as `FAkE` are what random mixed-case tokens contain by chance, not what people type.
fn contains_word(hay: &[u8], needle: &str) -> bool {
    let lower = needle.as_bytes();
    let upper = needle.to_ascii_uppercase();
    let mut capital = lower.to_vec();
    if let Some(c) = capital.first_mut() {
        c.make_ascii_uppercase();
    }
    [lower, upper.as_bytes(), capital.as_slice()]
        .iter()
        .any(|n| memchr::memmem::find(hay, n).is_some())
}

fn contains_ci(hay: &[u8], needle: &str) -> bool {
    let n = needle.as_bytes();
    if n.is_empty() || hay.len() < n.len() {
        return false;
    }
    hay.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

/// Longest run of one repeated byte, and longest run of bytes counting up or down by one
/// (`abcdef`, `654321`): both are typical of hand-written placeholders.
fn longest_runs(v: &[u8]) -> (usize, usize) {
    let (mut same, mut best_same) = (1usize, 1usize);
    let (mut up, mut down, mut best_seq) = (1usize, 1usize, 1usize);
    for w in v.windows(2) {
        let &[a, b] = w else { continue };
        same = if a == b { same + 1 } else { 1 };
        up = if b == a.wrapping_add(1) { up + 1 } else { 1 };
        down = if b == a.wrapping_sub(1) { down + 1 } else { 1 };
        best_same = best_same.max(same);
        best_seq = best_seq.max(up).max(down);
    }
    if v.is_empty() {
        (0, 0)
    } else {
        (best_same, best_seq)
    }
}

/// Every accepted spelling of every placeholder word, in one automaton: this check runs for
/// every candidate, so it must not cost one substring search per spelling.
static PLACEHOLDER_MATCHER: LazyLock<Option<AhoCorasick>> = LazyLock::new(|| {
    let spellings = PLACEHOLDER_WORDS.iter().flat_map(|w| {
        let mut capital = w.to_string();
        if let Some(first) = capital.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        [w.to_string(), w.to_ascii_uppercase(), capital]
    });
    AhoCorasick::new(spellings).ok()
});

fn has_placeholder_word(v: &[u8]) -> bool {
    match PLACEHOLDER_MATCHER.as_ref() {
        Some(ac) => ac.is_match(v),
        None => PLACEHOLDER_WORDS.iter().any(|w| contains_word(v, w)),
    }
}

/// True when the value is a placeholder, a template reference or hand-typed filler.
pub(crate) fn is_placeholder(v: &[u8]) -> bool {
    if has_placeholder_word(v) {
        return true;
    }
    if TEMPLATE_MARKERS
        .iter()
        .any(|m| memchr::memmem::find(v, m.as_bytes()).is_some())
    {
        return true;
    }
    if v.first() == Some(&b'$') {
        return true;
    }
    let (same, seq) = longest_runs(v);
    same >= 6 || seq >= 6 || is_periodic(v)
}

/// A short unit repeated over the whole value (`abc123abc123abc123`).
fn is_periodic(v: &[u8]) -> bool {
    (1..=8).any(|p| v.len() >= 3 * p && v.iter().zip(v.iter().skip(p)).all(|(a, b)| a == b))
}

/// True when a private key block's body is elided or templated (`MIIE...`, `<key>`).
/// Runs of one letter are normal in OpenSSH key bodies, so only explicit markers count.
pub(crate) fn is_placeholder_body(body: &[u8]) -> bool {
    ["...", "…", "<", ">", "{{", "${"]
        .iter()
        .any(|m| memchr::memmem::find(body, m.as_bytes()).is_some())
        || contains_ci(body, "xxxxxxxx")
}

/// The random part of a token whose prefix already identifies its format (`ghp_`, `AKIA`…):
/// it must not be filler and must carry some entropy.
pub(crate) fn random_body(body: &[u8]) -> bool {
    if is_placeholder(body) {
        return false;
    }
    let c = Classes::of(body);
    // Random bodies of 16+ characters over 16+ symbols stay above 2.5 bits (hex, the
    // smallest alphabet, averages 3.2 at 16 characters); filler falls far below.
    c.count() >= 2 && entropy(body) >= 2.5
}

/// True for `8-4-4-4-12` hex UUIDs, which are identifiers far more often than secrets.
pub(crate) fn is_uuid(v: &[u8]) -> bool {
    if v.len() != 36 {
        return false;
    }
    v.iter().enumerate().all(|(i, &b)| match i {
        8 | 13 | 18 | 23 => b == b'-',
        _ => b.is_ascii_hexdigit(),
    })
}

/// How strongly a variable name says "secret".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NameStrength {
    /// `*_KEY`: often a secret, but also cache keys, sort keys, key ids.
    Key,
    /// `*_TOKEN`, `*_SECRET`, `*PASSWORD`: a value here is a credential.
    Strong,
}

/// A value assigned to a secret-sounding name in a file: it must look random, not like code.
pub(crate) fn random_value(v: &[u8], strength: NameStrength) -> bool {
    if v.len() < 16 || v.len() > 1024 {
        return false;
    }
    if v.iter()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return false;
    }
    if is_placeholder(v) || looks_like_code_or_path(v) || is_known_example(v) {
        return false;
    }
    // `secret%3Dpassword`, `MySecretToken1`: a value that names what it stands for.
    if ["password", "passwd", "secret", "token"]
        .iter()
        .any(|w| contains_ci(v, w))
    {
        return false;
    }
    if is_uuid(v) {
        return strength == NameStrength::Strong;
    }
    let c = Classes::of(v);
    if !(c.letter() && c.digit) {
        return false;
    }
    // Random base62 strings of 16 characters average 3.8 bits, hex ones 3.2 (the alphabet
    // caps them at 4); words and padded values stay below. Bars chosen so that fewer than
    // 1 in 500 random values fail (measured by simulation).
    let hex = v.iter().all(u8::is_ascii_hexdigit);
    let bar = if hex {
        2.5
    } else {
        (0.8 * (v.len() as f64).log2()).min(3.3)
    };
    entropy(v) >= bar
}

/// Values that are expressions, identifiers, paths or integrity hashes rather than secrets.
fn looks_like_code_or_path(v: &[u8]) -> bool {
    let starts = |p: &str| v.starts_with(p.as_bytes());
    if starts("/")
        || starts("./")
        || starts("../")
        || starts("~/")
        || starts("http:")
        || starts("https:")
        || starts("file:")
        || starts("sha1-")
        || starts("sha256-")
        || starts("sha384-")
        || starts("sha512-")
        || starts("sha256:")
        || starts("sha512:")
    {
        return true;
    }
    // Paths in code (`super::Foundation::HANDLE`, `a->b`) and constant names (`MSV1_0_KEY`).
    if memchr::memmem::find(v, b"::").is_some() || memchr::memmem::find(v, b"->").is_some() {
        return true;
    }
    if v.contains(&b'_')
        && v.iter()
            .all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    {
        return true;
    }
    // Dotted member access (`process.env.API_KEY`, `win32api.RegEnumKey`): every part is an
    // identifier. (Base64 has no dots; JWTs, which do, start with `eyJ`.)
    if v.contains(&b'.') && !v.starts_with(b"eyJ") {
        let parts: Vec<&[u8]> = v.split(|&b| b == b'.').collect();
        let all_ident = parts.iter().all(|p| {
            p.first()
                .is_some_and(|&b| b.is_ascii_alphabetic() || b == b'_' || b == b'$')
                && p.iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
        });
        if all_ident {
            return true;
        }
    }
    // `SOME_CONSTANT_NAME`, `some_function_name`, `my-service-name`: separators between
    // segments that are all letters or all digits. Random tokens mix both inside a segment.
    // Phrases (`s3cr3t-value-do-not-leak`): at least three segments, two thirds of them
    // plain words.
    // (Not split at `/`: base64 contains it.)
    let segments = v.split(|&b| matches!(b, b'_' | b'-' | b'.' | b':'));
    let (mut n, mut plain, mut words) = (0usize, 0usize, 0usize);
    for s in segments {
        n += 1;
        let letters = !s.is_empty() && s.iter().all(|b| b.is_ascii_alphabetic());
        let digits = s.iter().all(|b| b.is_ascii_digit());
        plain += usize::from(letters || digits);
        words += usize::from(letters);
    }
    (n >= 2 && plain == n) || (n >= 3 && 3 * words >= 2 * n)
}

/// Credentials published as examples in specifications and widely copied documentation.
const KNOWN_EXAMPLES: &[&str] = &[
    // RFC 6749 (OAuth 2.0) sample access and refresh tokens.
    "2YotnFZFEjr1zCsicMWpAA",
    "tGzv3JOkF0XG5Qx2TlKWIA",
    // RFC 5849 (OAuth 1.0) sample consumer key and token.
    "0685bd9184jfhq22",
    "ad180jjd733klru7",
    // The Cargo book's sample registry token.
    "854DvwSlUwEHtIo3kWy6x7UCPKHfzCmy",
];

/// True for a credential known to be a published example.
pub(crate) fn is_known_example(v: &[u8]) -> bool {
    KNOWN_EXAMPLES.iter().any(|e| v == e.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_automaton_agrees_with_the_slow_path() {
        assert!(PLACEHOLDER_MATCHER.is_some());
        for v in [
            "abcEXAMPLEdef",
            "xFAkEy",
            "my-Dummy",
            "q8Zr2LmW0pXv7TkB",
            "TeSt",
            "test",
        ] {
            let slow = PLACEHOLDER_WORDS
                .iter()
                .any(|w| contains_word(v.as_bytes(), w));
            assert_eq!(has_placeholder_word(v.as_bytes()), slow, "{v}");
        }
        assert!(has_placeholder_word(b"abcEXAMPLEdef"));
        assert!(!has_placeholder_word(b"xFAkEy"));
    }

    #[test]
    fn entropy_of_known_strings() {
        assert_eq!(entropy(b""), 0.0);
        assert_eq!(entropy(b"aaaa"), 0.0);
        assert!((entropy(b"abcd") - 2.0).abs() < 1e-9);
        assert!((entropy(b"0123456789abcdef") - 4.0).abs() < 1e-9);
    }

    #[test]
    fn placeholders_are_recognised() {
        for p in [
            "your-api-key-here",
            "ghp_xxxxxxxxxxxxxxxxxxxxxxxx",
            "${GITHUB_TOKEN}",
            "<token>",
            "changeme",
            "EXAMPLEKEY",
            "dummy-value",
            "test1234",
            "abcdefgh",
            "000000000",
            "$API_KEY",
            "{{ secrets.TOKEN }}",
            "sk-...",
            "abc123abc123abc123",
        ] {
            assert!(is_placeholder(p.as_bytes()), "{p} should be a placeholder");
        }
        for v in ["q8Zr2LmW0pXv7TkB", "9f86d081884c7d65"] {
            assert!(!is_placeholder(v.as_bytes()), "{v} is not a placeholder");
        }
    }

    #[test]
    fn random_values_pass_and_code_does_not() {
        let strong = NameStrength::Strong;
        assert!(random_value(b"q8Zr2LmW0pXv7TkBn4Hs", strong));
        assert!(random_value(b"9f86d081884c7d659a2feaa0c55ad015", strong));
        for v in [
            "process.env.OPENAI_API_KEY",
            "self.config.token_value",
            "MY_APPLICATION_SECRET_NAME",
            "MSV1_0_CREDENTIAL_KEY_TYPE",
            "super::super::Win32::Foundation::HANDLE",
            "this-is-my-secret-password",
            "/home/user/.ssh/id_ed25519",
            "sha512-AbCdEf0123456789AbCdEf0123456789==",
            "passwordpassword",
            "short1",
            "with space 1234567890abc",
            "win32api.RegEnumKey",
            "s3cr3t-value-do-not-leak",
            "2YotnFZFEjr1zCsicMWpAA",
        ] {
            assert!(!random_value(v.as_bytes(), strong), "{v} should not pass");
        }
    }

    #[test]
    fn uuids_only_count_for_strong_names() {
        let u = b"3f2b8c1e-9d4a-4e7b-a1c2-7d9e0f1a2b3c";
        assert!(is_uuid(u));
        assert!(random_value(u, NameStrength::Strong));
        assert!(!random_value(u, NameStrength::Key));
    }
}
