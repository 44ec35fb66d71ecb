//! Diagnostics: a located message about a policy file, printed as
//! `file:line:column: error: message`.

use std::fmt;

/// How serious a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// The policy cannot be used.
    Error,
    /// The policy can be used, but probably does not say what its author meant.
    Warning,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Error => "error",
            Level::Warning => "warning",
        })
    }
}

/// One problem found in a policy file, with its position.
///
/// `line` and `column` are 1-based; column counts characters, not bytes. A
/// diagnostic about the file as a whole (it cannot be read) has line 0 and is
/// printed without a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as the user named it (or `<embedded default>`).
    pub file: String,
    /// 1-based line, or 0 when the diagnostic concerns the whole file.
    pub line: usize,
    /// 1-based column in characters, or 0 with `line` 0.
    pub column: usize,
    /// Error or warning.
    pub level: Level,
    /// What is wrong, in one sentence.
    pub message: String,
    /// A replacement the author probably meant (printed as `did you mean "…"?`).
    pub suggestion: Option<String>,
}

impl Diagnostic {
    /// True for [`Level::Error`].
    pub fn is_error(&self) -> bool {
        self.level == Level::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}: {}", self.file, self.level, self.message)?;
        } else {
            write!(
                f,
                "{}:{}:{}: {}: {}",
                self.file, self.line, self.column, self.level, self.message
            )?;
        }
        if let Some(s) = &self.suggestion {
            write!(f, "; did you mean \"{s}\"?")?;
        }
        Ok(())
    }
}

/// Maps byte offsets of a text to 1-based line and character column.
///
/// Both lookups take constant time (plus a binary search for the line), whatever the length of
/// the line: counting the characters from the line start for each value would make a hostile
/// one-line file with many values quadratic to parse (a 1 MB `disable = [...]` took seconds).
#[derive(Debug, Clone)]
pub(crate) struct LineIndex {
    starts: Vec<usize>,
    /// `chars_before[k]`: characters in the first `k * CHAR_BLOCK` bytes of the text.
    chars_before: Vec<usize>,
}

/// Bytes per entry of [`LineIndex::chars_before`]: memory is 1/8 of the text's size.
const CHAR_BLOCK: usize = 64;

/// Whether `b` starts a UTF-8 character (is not a continuation byte).
fn starts_char(b: &u8) -> bool {
    (b & 0xc0) != 0x80
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        let mut chars_before = Vec::with_capacity(text.len() / CHAR_BLOCK + 2);
        let mut n = 0;
        chars_before.push(0);
        for block in text.as_bytes().chunks(CHAR_BLOCK) {
            n += block.iter().filter(|b| starts_char(b)).count();
            chars_before.push(n);
        }
        LineIndex {
            starts,
            chars_before,
        }
    }

    /// Characters in `text[..offset]` (`offset <= text.len()`).
    fn chars_to(&self, text: &str, offset: usize) -> usize {
        let block = offset / CHAR_BLOCK;
        let base = self.chars_before.get(block).copied().unwrap_or(0);
        let rest = text
            .as_bytes()
            .get(block * CHAR_BLOCK..offset)
            .map_or(0, |b| b.iter().filter(|b| starts_char(b)).count());
        base + rest
    }

    /// (line, column), both 1-based. Offsets past the end clamp to the end.
    pub(crate) fn locate(&self, text: &str, offset: usize) -> (usize, usize) {
        let offset = offset.min(text.len());
        // `starts` is sorted and starts with 0, so the partition point is >= 1.
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        let column = if text.is_char_boundary(offset) {
            self.chars_to(text, offset)
                .saturating_sub(self.chars_to(text, start))
                + 1
        } else {
            // Not on a char boundary (should not happen with toml spans): count bytes.
            offset.saturating_sub(start) + 1
        };
        (line, column)
    }
}

/// The closest candidate to `word`, if it is close enough to be a likely typo.
pub(crate) fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let mut best: Option<(&str, f64)> = None;
    for c in candidates {
        let score = strsim::normalized_damerau_levenshtein(word, c);
        if score >= 0.6 && best.is_none_or(|(_, b)| score > b) {
            best = Some((c, score));
        }
    }
    best.map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_lines_and_char_columns() {
        let text = "ab\nçd = 1\n\nx";
        let idx = LineIndex::new(text);
        assert_eq!(idx.locate(text, 0), (1, 1));
        assert_eq!(idx.locate(text, 1), (1, 2));
        assert_eq!(idx.locate(text, 3), (2, 1));
        // 'ç' is two bytes: byte 5 is the third character of line 2.
        assert_eq!(idx.locate(text, 6), (2, 3));
        assert_eq!(idx.locate(text, 11), (3, 1));
        assert_eq!(idx.locate(text, 12), (4, 1));
        assert_eq!(idx.locate(text, 13), (4, 2));
        assert_eq!(idx.locate(text, 999), (4, 2));
        // Inside 'ç': bytes are counted.
        assert_eq!(idx.locate(text, 4), (2, 2));
    }

    #[test]
    fn columns_are_exact_across_blocks() {
        // Multi-byte characters straddling the block boundaries, on several lines.
        let text = "é€😀a\n".repeat(40) + &"ü".repeat(300);
        let idx = LineIndex::new(&text);
        for (offset, _) in text.char_indices().chain([(text.len(), ' ')]) {
            let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
            let expected = (
                text[..offset].matches('\n').count() + 1,
                text[start..offset].chars().count() + 1,
            );
            assert_eq!(idx.locate(&text, offset), expected, "offset {offset}");
        }
    }

    #[test]
    fn locating_many_values_on_one_long_line_is_linear() {
        // Regression (found while fuzzing the policy parser for `cargo xtask fuzz`): every
        // lookup counted the characters from the line start, so a 1 MB one-line file with a
        // hundred thousand values took seconds to parse. Here, quadratic lookups would count
        // 10^12 characters; linear ones finish in about a second even unoptimized.
        let text = "x".repeat(4 << 20);
        let idx = LineIndex::new(&text);
        let start = std::time::Instant::now();
        let budget = std::time::Duration::from_secs(10);
        for (i, offset) in (0..text.len()).step_by(8).enumerate() {
            assert_eq!(idx.locate(&text, offset), (1, offset + 1));
            if i % 4096 == 0 {
                assert!(
                    start.elapsed() < budget,
                    "{i} lookups took {:?}",
                    start.elapsed()
                );
            }
        }
    }

    #[test]
    fn display_forms() {
        let mut d = Diagnostic {
            file: "policy.toml".into(),
            line: 12,
            column: 7,
            level: Level::Error,
            message: "unknown key \"deny_reed\" in [files]".into(),
            suggestion: Some("deny_read".into()),
        };
        assert_eq!(
            d.to_string(),
            "policy.toml:12:7: error: unknown key \"deny_reed\" in [files]; did you mean \"deny_read\"?"
        );
        d.line = 0;
        d.suggestion = None;
        assert_eq!(
            d.to_string(),
            "policy.toml: error: unknown key \"deny_reed\" in [files]"
        );
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            suggest("deny_reed", &["deny_read", "protect"]),
            Some("deny_read")
        );
        assert_eq!(suggest("netwrok", &["network", "files"]), Some("network"));
        assert_eq!(suggest("zzzz", &["network", "files"]), None);
    }
}
