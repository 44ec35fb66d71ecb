//! Finding secrets in one buffer.
//!
//! One Aho-Corasick pass finds anchor literals (`ghp_`, `AKIA`, `PRIVATE KEY`, `://`, `TOKEN`…);
//! only around a hit does a small hand-written validator for that anchor's family look at the
//! bytes. Most of a source tree contains no anchor at all, so the cost is the automaton's scan.
//! Validators never index out of bounds: every access goes through `get`.

use crate::value::{self, Classes, NameStrength};
use aho_corasick::{AhoCorasick, MatchKind};
use std::fmt;
use std::sync::LazyLock;

/// The format of a detected secret. `Display` names it for people; [`SecretKind::id`] gives a
/// stable short identifier for logs and configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecretKind {
    /// A PEM/OpenSSH/PGP private key block (`-----BEGIN … PRIVATE KEY-----` with a body).
    PrivateKey,
    /// An AWS access key id (`AKIA…`, `ASIA…`).
    AwsAccessKeyId,
    /// An AWS secret access key, found next to an access key id or assigned to a
    /// `*secret_access_key` name.
    AwsSecretAccessKey,
    /// A GitHub token (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`).
    GitHubToken,
    /// A GitLab personal access token (`glpat-`).
    GitLabToken,
    /// A Slack token (`xoxa-`, `xoxb-`, `xoxp-`, `xoxr-`, `xoxs-`).
    SlackToken,
    /// A Slack incoming-webhook or workflow URL.
    SlackWebhook,
    /// A Stripe live secret or restricted key (`sk_live_`, `rk_live_`).
    StripeKey,
    /// An OpenAI API key (`sk-proj-`, `sk-svcacct-`, `sk-admin-`, legacy `sk-…`).
    OpenAiKey,
    /// An Anthropic API key (`sk-ant-`).
    AnthropicKey,
    /// A Google API key (`AIza…`).
    GoogleApiKey,
    /// An npm access token (`npm_`).
    NpmToken,
    /// A PyPI upload token (`pypi-AgE…`).
    PyPiToken,
    /// A Hugging Face access token (`hf_`).
    HuggingFaceToken,
    /// A SendGrid API key (`SG.….…`).
    SendGridKey,
    /// A Twilio API key (`SK` + 32 hex digits).
    TwilioApiKey,
    /// A DigitalOcean token (`dop_v1_`, `doo_v1_`, `dor_v1_`).
    DigitalOceanToken,
    /// A Fly.io token (`fo1_`, `FlyV1 fm2_`).
    FlyToken,
    /// A password embedded in a URL (`postgres://user:password@host`).
    UrlPassword,
    /// A random-looking value assigned to a `*_TOKEN`, `*_SECRET`, `*_KEY` or `*PASSWORD` name
    /// in a file (env files, YAML, JSON, TOML, shell, source).
    Assignment,
    /// An environment variable whose name says it holds a credential (`*_TOKEN`, `*PASSWORD`…).
    EnvVariable,
}

/// Priority of the formats recognised by their own prefix or structure.
const SPECIFIC: u8 = 3;

impl SecretKind {
    /// A stable, lower-case, hyphenated identifier such as `github-token`.
    pub fn id(self) -> &'static str {
        match self {
            SecretKind::PrivateKey => "private-key",
            SecretKind::AwsAccessKeyId => "aws-access-key-id",
            SecretKind::AwsSecretAccessKey => "aws-secret-access-key",
            SecretKind::GitHubToken => "github-token",
            SecretKind::GitLabToken => "gitlab-token",
            SecretKind::SlackToken => "slack-token",
            SecretKind::SlackWebhook => "slack-webhook",
            SecretKind::StripeKey => "stripe-key",
            SecretKind::OpenAiKey => "openai-key",
            SecretKind::AnthropicKey => "anthropic-key",
            SecretKind::GoogleApiKey => "google-api-key",
            SecretKind::NpmToken => "npm-token",
            SecretKind::PyPiToken => "pypi-token",
            SecretKind::HuggingFaceToken => "huggingface-token",
            SecretKind::SendGridKey => "sendgrid-key",
            SecretKind::TwilioApiKey => "twilio-api-key",
            SecretKind::DigitalOceanToken => "digitalocean-token",
            SecretKind::FlyToken => "fly-token",
            SecretKind::UrlPassword => "url-password",
            SecretKind::Assignment => "assignment",
            SecretKind::EnvVariable => "env-variable",
        }
    }

    /// Every kind, in declaration order (for documentation, tests and configuration checks).
    pub const ALL: [SecretKind; 21] = [
        SecretKind::PrivateKey,
        SecretKind::AwsAccessKeyId,
        SecretKind::AwsSecretAccessKey,
        SecretKind::GitHubToken,
        SecretKind::GitLabToken,
        SecretKind::SlackToken,
        SecretKind::SlackWebhook,
        SecretKind::StripeKey,
        SecretKind::OpenAiKey,
        SecretKind::AnthropicKey,
        SecretKind::GoogleApiKey,
        SecretKind::NpmToken,
        SecretKind::PyPiToken,
        SecretKind::HuggingFaceToken,
        SecretKind::SendGridKey,
        SecretKind::TwilioApiKey,
        SecretKind::DigitalOceanToken,
        SecretKind::FlyToken,
        SecretKind::UrlPassword,
        SecretKind::Assignment,
        SecretKind::EnvVariable,
    ];

    /// When two findings overlap, the more specific one is kept.
    /// Token formats are [`SPECIFIC`]; URL passwords and assignments rank below.
    fn priority(self) -> u8 {
        match self {
            SecretKind::Assignment | SecretKind::EnvVariable => 1,
            SecretKind::UrlPassword => 2,
            _ => SPECIFIC,
        }
    }
}

impl fmt::Display for SecretKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            SecretKind::PrivateKey => "private key",
            SecretKind::AwsAccessKeyId => "AWS access key id",
            SecretKind::AwsSecretAccessKey => "AWS secret access key",
            SecretKind::GitHubToken => "GitHub token",
            SecretKind::GitLabToken => "GitLab token",
            SecretKind::SlackToken => "Slack token",
            SecretKind::SlackWebhook => "Slack webhook URL",
            SecretKind::StripeKey => "Stripe live key",
            SecretKind::OpenAiKey => "OpenAI API key",
            SecretKind::AnthropicKey => "Anthropic API key",
            SecretKind::GoogleApiKey => "Google API key",
            SecretKind::NpmToken => "npm token",
            SecretKind::PyPiToken => "PyPI token",
            SecretKind::HuggingFaceToken => "Hugging Face token",
            SecretKind::SendGridKey => "SendGrid API key",
            SecretKind::TwilioApiKey => "Twilio API key",
            SecretKind::DigitalOceanToken => "DigitalOcean token",
            SecretKind::FlyToken => "Fly.io token",
            SecretKind::UrlPassword => "password in a URL",
            SecretKind::Assignment => "secret assigned to a token/key/password name",
            SecretKind::EnvVariable => "environment variable named as a credential",
        };
        f.write_str(s)
    }
}

/// One detection before line numbers are computed: a byte range and what it is.
#[derive(Clone, Debug)]
pub(crate) struct Raw {
    pub start: usize,
    pub end: usize,
    pub kind: SecretKind,
    pub redacted: String,
}

/// Which validator an anchor hands its hit to.
#[derive(Clone, Copy, Debug)]
enum Family {
    PrivateKey,
    Aws,
    GitHub,
    GitHubPat,
    GitLab,
    Slack,
    SlackWebhook,
    Stripe,
    SkDash,
    Google,
    Npm,
    PyPi,
    HuggingFace,
    SendGrid,
    DigitalOcean,
    FlyOrg,
    FlyMacaroon,
    Url,
    Keyword,
}

/// Anchor literals, matched case-sensitively. There are at most 32 and none is shorter than 3
/// bytes, so the automaton's SIMD prefilter (Teddy) runs in its fastest configuration; that is
/// why some anchors are a token's distinctive middle (`k_live_`, `_v1_`) and keywords are
/// word stems (`oken` for `token`/`Token`, `ass` for `pass`/`password`). Each validator
/// checks the full prefix and looks at the whole identifier around a keyword. Twilio's
/// two-byte `SK` is searched separately (see [`TWILIO_ANCHOR`]).
const ANCHORS: &[(&str, Family)] = &[
    ("PRIVATE KEY", Family::PrivateKey),
    ("AKIA", Family::Aws),
    ("ASIA", Family::Aws),
    ("ghp_", Family::GitHub),
    ("gho_", Family::GitHub),
    ("ghu_", Family::GitHub),
    ("ghs_", Family::GitHub),
    ("ghr_", Family::GitHub),
    ("github_pat_", Family::GitHubPat),
    ("glpat-", Family::GitLab),
    ("xox", Family::Slack),
    ("hooks.slack.com/", Family::SlackWebhook),
    ("k_live_", Family::Stripe),
    ("sk-", Family::SkDash),
    ("AIza", Family::Google),
    ("npm_", Family::Npm),
    ("pypi-AgE", Family::PyPi),
    ("hf_", Family::HuggingFace),
    ("SG.", Family::SendGrid),
    ("_v1_", Family::DigitalOcean),
    ("fo1_", Family::FlyOrg),
    ("fm2_", Family::FlyMacaroon),
    ("://", Family::Url),
    ("oken", Family::Keyword),
    ("OKEN", Family::Keyword),
    ("ecret", Family::Keyword),
    ("ECRET", Family::Keyword),
    ("ass", Family::Keyword),
    ("ASS", Family::Keyword),
    ("key", Family::Keyword),
    ("Key", Family::Keyword),
    ("KEY", Family::Keyword),
];

/// Twilio API key ids (`SK` + 32 hex digits). Two bytes would weaken the main prefilter, so
/// they get their own `memmem` pass.
const TWILIO_ANCHOR: &[u8] = b"SK";

/// The automaton. Building it from these constants cannot fail in practice; if it ever did,
/// [`for_each_hit`] falls back to one `memmem` pass per anchor rather than panicking.
static MATCHER: LazyLock<Option<AhoCorasick>> = LazyLock::new(|| {
    AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostFirst)
        .build(ANCHORS.iter().map(|(a, _)| a))
        .ok()
});

/// Calls `f(start, end, anchor_index)` for every non-overlapping anchor hit, left to right.
fn for_each_hit(data: &[u8], mut f: impl FnMut(usize, usize, usize)) {
    if let Some(ac) = MATCHER.as_ref()
        && let Ok(iter) = ac.try_find_iter(data)
    {
        for m in iter {
            f(m.start(), m.end(), m.pattern().as_usize());
        }
        return;
    }
    let mut hits: Vec<(usize, usize, usize)> = Vec::new();
    for (i, (a, _)) in ANCHORS.iter().enumerate() {
        for s in memchr::memmem::find_iter(data, a.as_bytes()) {
            hits.push((s, s + a.len(), i));
        }
    }
    hits.sort_unstable();
    let mut next = 0;
    for (s, e, i) in hits {
        if s >= next {
            f(s, e, i);
            next = e;
        }
    }
}

/// Finds all secrets in `data` and puts them in `out` (cleared first), sorted by position,
/// overlapping detections reduced to the most specific one.
pub(crate) fn find(data: &[u8], out: &mut Vec<Raw>) {
    out.clear();
    // Hits inside a secret already reported, a token-like run already examined, or an
    // assignment already examined add nothing but cost time; skipping them also keeps the
    // work linear in the input, whatever it contains.
    let mut skip_until = 0usize;
    let mut token_horizon = 0usize;
    let mut ident_done = 0usize;
    let mut pem_end = EndCache::default();
    let mut aws_ids = 0usize;
    for_each_hit(data, |s, e, idx| {
        if s < skip_until {
            return;
        }
        let Some(&(_, family)) = ANCHORS.get(idx) else {
            return;
        };
        let token_family = !matches!(
            family,
            Family::PrivateKey | Family::Url | Family::Keyword | Family::SlackWebhook
        );
        if token_family && s < token_horizon {
            return;
        }
        let found = match family {
            Family::PrivateKey => private_key(data, s, e, &mut pem_end),
            Family::Aws => {
                aws_ids += 1;
                aws(data, s, aws_ids <= MAX_AWS_PAIRINGS, out)
            }
            Family::GitHub => simple(data, s, 4, 36, 251, alnum, SecretKind::GitHubToken),
            Family::GitHubPat => simple(data, s, 11, 60, 255, alnum_us, SecretKind::GitHubToken),
            Family::GitLab => gitlab(data, s),
            Family::Slack => slack(data, s),
            Family::SlackWebhook => slack_webhook(data, s, e),
            Family::Stripe => s
                .checked_sub(1)
                .filter(|&p| matches!(byte(data, p), Some(b's' | b'r')))
                .and_then(|p| simple(data, p, 8, 20, 247, alnum, SecretKind::StripeKey)),
            Family::SkDash => sk_dash(data, s),
            Family::Google => simple(data, s, 4, 35, 35, b64url, SecretKind::GoogleApiKey),
            Family::Npm => no_underscore_before(data, s)
                .then(|| simple(data, s, 4, 36, 36, alnum, SecretKind::NpmToken))
                .flatten(),
            Family::PyPi => simple(data, s, 8, 50, 4096, b64url, SecretKind::PyPiToken),
            Family::HuggingFace => hugging_face(data, s),
            Family::SendGrid => sendgrid(data, s),
            Family::DigitalOcean => s
                .checked_sub(3)
                .filter(|&p| matches!(slice(data, p, s), b"dop" | b"doo" | b"dor"))
                .and_then(|p| simple(data, p, 7, 64, 64, lower_hex, SecretKind::DigitalOceanToken)),
            Family::FlyOrg => simple(data, s, 4, 43, 43, b64url, SecretKind::FlyToken),
            Family::FlyMacaroon => {
                let plen = e.saturating_sub(s);
                simple(data, s, plen, 40, 8192, macaroon, SecretKind::FlyToken)
            }
            Family::Url => url_password(data, s, e),
            Family::Keyword => {
                if s < ident_done {
                    return;
                }
                let (found, examined_end) = keyword(data, s, e);
                ident_done = examined_end;
                found
            }
        };
        if token_family {
            // The rest of a token-like run cannot start another token at a word boundary.
            // (Keywords inside it still count: `TASK_TOKEN=` holds both `SK` and `TOKEN`.)
            token_horizon = e + run(data, e, usize::MAX, token_byte);
        }
        if let Some(raw) = found {
            // An assignment's value or a URL's password may itself be a known token, whose
            // own anchor comes next and gives the more specific kind.
            if raw.kind.priority() == SPECIFIC {
                skip_until = raw.end;
            }
            out.push(raw);
        }
    });
    for s in memchr::memmem::find_iter(data, TWILIO_ANCHOR) {
        if let Some(r) = simple(data, s, 2, 32, 32, lower_hex, SecretKind::TwilioApiKey) {
            out.push(r);
        }
    }
    dedupe(out);
}

/// Sorts by position and keeps, among overlapping detections, the most specific one.
fn dedupe(out: &mut Vec<Raw>) {
    out.sort_by(|a, b| {
        a.start
            .cmp(&b.start)
            .then(b.kind.priority().cmp(&a.kind.priority()))
    });
    let mut kept: Vec<Raw> = Vec::with_capacity(out.len());
    for r in out.drain(..) {
        match kept.last_mut() {
            Some(last) if r.start < last.end => {
                if r.kind.priority() > last.kind.priority() {
                    *last = r;
                }
            }
            _ => kept.push(r),
        }
    }
    *out = kept;
}

// ---- byte classes and small helpers ----

fn alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}
fn alnum_us(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}
fn b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}
fn b64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}
fn lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}
fn token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+' | b'/' | b'.')
}
fn macaroon(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+' | b'/' | b'=' | b',')
}

fn byte(data: &[u8], i: usize) -> Option<u8> {
    data.get(i).copied()
}

fn byte_before(data: &[u8], i: usize) -> Option<u8> {
    i.checked_sub(1).and_then(|j| data.get(j).copied())
}

fn slice(data: &[u8], a: usize, b: usize) -> &[u8] {
    data.get(a..b).unwrap_or(&[])
}

/// Length of the run of bytes satisfying `pred` starting at `from`, stopping after `max`.
fn run(data: &[u8], from: usize, max: usize, pred: impl Fn(u8) -> bool) -> usize {
    data.get(from..)
        .unwrap_or(&[])
        .iter()
        .take(max)
        .take_while(|&&b| pred(b))
        .count()
}

/// A token starts at a word boundary: the byte before is not a letter or digit.
fn left_boundary(data: &[u8], s: usize) -> bool {
    !byte_before(data, s).is_some_and(|b| b.is_ascii_alphanumeric())
}

fn no_underscore_before(data: &[u8], s: usize) -> bool {
    byte_before(data, s) != Some(b'_')
}

/// `shown…  (N chars)`: enough to recognise which secret it is, never enough to use it.
fn redact(shown: &[u8], len: usize) -> String {
    format!("{}… ({len} chars)", String::from_utf8_lossy(shown))
}

fn raw(data: &[u8], start: usize, end: usize, shown_len: usize, kind: SecretKind) -> Raw {
    let shown = slice(data, start, (start + shown_len).min(end));
    Raw {
        start,
        end,
        kind,
        redacted: redact(shown, end.saturating_sub(start)),
    }
}

/// A fixed prefix of `plen` bytes at `s`, then `min..=max` body bytes satisfying `pred`, at word
/// boundaries on both sides, with a body that looks random.
fn simple(
    data: &[u8],
    s: usize,
    plen: usize,
    min: usize,
    max: usize,
    pred: fn(u8) -> bool,
    kind: SecretKind,
) -> Option<Raw> {
    let (bs, be) = body(data, s, plen, min, max, pred)?;
    value::random_body(slice(data, bs, be)).then(|| raw(data, s, be, plen, kind))
}

fn body(
    data: &[u8],
    s: usize,
    plen: usize,
    min: usize,
    max: usize,
    pred: fn(u8) -> bool,
) -> Option<(usize, usize)> {
    if !left_boundary(data, s) {
        return None;
    }
    let bs = s + plen;
    let n = run(data, bs, max + 1, pred);
    if n < min || n > max {
        return None;
    }
    let be = bs + n;
    if byte(data, be).is_some_and(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    Some((bs, be))
}

// ---- validators ----

/// `-----BEGIN [RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP ]PRIVATE KEY[ BLOCK]-----`, an END line
/// within 64 KiB, and a body of real base64 in between (documentation shows the header alone,
/// or `...` in place of the body).
/// Where the next `-----END` is, remembered across the hits of one buffer so that a file full
/// of BEGIN lines is not searched again and again for an END that is not there.
#[derive(Default)]
struct EndCache {
    /// The buffer was searched from `from` to its end ...
    from: Option<usize>,
    /// ... and the first END there starts here.
    at: Option<usize>,
}

impl EndCache {
    fn next_end(&mut self, data: &[u8], from: usize) -> Option<usize> {
        let valid = match (self.from, self.at) {
            (Some(f), Some(a)) => f <= from && a >= from,
            (Some(f), None) => f <= from,
            _ => false,
        };
        if !valid {
            self.from = Some(from);
            self.at =
                memchr::memmem::find(slice(data, from, data.len()), b"-----END").map(|i| from + i);
        }
        self.at
    }
}

/// AWS key ids whose neighbourhood is searched for a secret key, per buffer: bounds the work
/// on a file made of key ids.
const MAX_AWS_PAIRINGS: usize = 256;

fn private_key(data: &[u8], s: usize, e: usize, ends: &mut EndCache) -> Option<Raw> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    let window_start = s.saturating_sub(40);
    let before = slice(data, window_start, s);
    let b = window_start + memchr::memmem::rfind(before, BEGIN)?;
    let label = slice(data, b + BEGIN.len(), s);
    if !label
        .iter()
        .all(|&c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b' ')
    {
        return None;
    }
    let mut h = e;
    if slice(data, h, h + 6) == b" BLOCK" {
        h += 6;
    }
    if slice(data, h, h + 5) != b"-----" {
        return None;
    }
    let header_end = h + 5;
    let end_pos = ends.next_end(data, header_end)?;
    if end_pos.saturating_sub(header_end) > 64 * 1024 {
        return None;
    }
    let body = slice(data, header_end, end_pos);
    if value::is_placeholder_body(body) {
        return None;
    }
    if !pem_body_like(body) {
        return None;
    }
    let b64_chars: Vec<u8> = body
        .iter()
        .copied()
        .filter(|&c| b64(c))
        .take(4096)
        .collect();
    if value::entropy(&b64_chars) < 4.0 {
        return None;
    }
    // The block ends after the END line's closing dashes.
    let tail = run(data, end_pos + 8, 64, |c| c != b'\n' && c != b'\\');
    let end = end_pos + 8 + tail;
    let header_len = header_end.saturating_sub(b);
    Some(raw(data, b, end, header_len, SecretKind::PrivateKey))
}

/// A key body is base64 with at most a little punctuation around it (string quotes and `\n`
/// escapes when embedded in JSON or code); `Header: value` lines are ignored. Source code that
/// merely mentions a BEGIN and an END marker is mostly other punctuation.
fn pem_body_like(body: &[u8]) -> bool {
    let (mut base, mut other) = (0usize, 0usize);
    for line in body.split(|&c| c == b'\n') {
        if line.contains(&b':') {
            continue;
        }
        for &c in line {
            if b64(c) || c == b'=' {
                base += 1;
            } else if !c.is_ascii_whitespace() {
                other += 1;
            }
        }
    }
    base >= 60 && other * 100 <= (base + other) * 15
}

/// `AKIA`/`ASIA` + 16 upper-case letters or digits; then a 40-character secret access key
/// within three lines either side, which AWS credential files and CSV exports put there.
fn aws(data: &[u8], s: usize, pair: bool, out: &mut Vec<Raw>) -> Option<Raw> {
    let (bs, be) = body(data, s, 4, 16, 16, |b| {
        b.is_ascii_uppercase() || b.is_ascii_digit()
    })?;
    let id_body = slice(data, bs, be);
    if value::is_placeholder(id_body) || value::entropy(id_body) < 2.2 {
        return None;
    }
    let id = raw(data, s, be, 4, SecretKind::AwsAccessKeyId);
    if !pair {
        return Some(id);
    }
    let lo = nth_line_start_before(data, s, 3);
    let hi = nth_line_end_after(data, be, 3);
    let mut i = lo;
    while i < hi {
        let n = run(data, i, hi - i, b64);
        if n == 0 {
            i += 1;
            continue;
        }
        let cand = slice(data, i, i + n);
        let after = byte(data, i + n);
        if n == 40 && left_boundary_b64(data, i) && after != Some(b'=') && aws_secret_like(cand) {
            out.push(raw(data, i, i + n, 0, SecretKind::AwsSecretAccessKey));
        }
        i += n;
    }
    Some(id)
}

/// `=` may precede a base64 value (`key=value`) but not follow it inside a longer blob.
fn left_boundary_b64(data: &[u8], i: usize) -> bool {
    !byte_before(data, i).is_some_and(b64)
}

fn aws_secret_like(v: &[u8]) -> bool {
    let c = Classes::of(v);
    c.upper
        && c.lower
        && (c.digit || c.symbol)
        && !value::is_placeholder(v)
        && value::entropy(v) >= 4.0
}

fn nth_line_start_before(data: &[u8], pos: usize, n: usize) -> usize {
    let floor = pos.saturating_sub(1024);
    let mut p = pos;
    for _ in 0..=n {
        match memchr::memrchr(b'\n', slice(data, floor, p)) {
            Some(i) => p = floor + i,
            None => return floor,
        }
    }
    p + 1
}

fn nth_line_end_after(data: &[u8], pos: usize, n: usize) -> usize {
    let ceil = (pos + 1024).min(data.len());
    let mut p = pos;
    for _ in 0..=n {
        match memchr::memchr(b'\n', slice(data, p, ceil)) {
            Some(i) => p = p + i + 1,
            None => return ceil,
        }
    }
    p
}

/// `glpat-` + 20 or more URL-safe base64 characters (newer tokens add `.01.xxxxxxxxx`).
fn gitlab(data: &[u8], s: usize) -> Option<Raw> {
    let (bs, mut be) = body(data, s, 6, 20, 255, |b| b64url(b) || b == b'.')?;
    while be > bs && matches!(byte(data, be - 1), Some(b'.' | b'-')) {
        be -= 1;
    }
    let b = slice(data, bs, be);
    (b.len() >= 20 && value::random_body(b)).then(|| raw(data, s, be, 6, SecretKind::GitLabToken))
}

/// `xox?-` + digits, dash-separated numeric segments, and a random final segment.
fn slack(data: &[u8], s: usize) -> Option<Raw> {
    if !matches!(byte(data, s + 3), Some(b'a' | b'b' | b'p' | b'r' | b's'))
        || byte(data, s + 4) != Some(b'-')
    {
        return None;
    }
    let (bs, be) = body(data, s, 5, 20, 255, |b| alnum(b) || b == b'-')?;
    let b = slice(data, bs, be);
    if !b.first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let last = b.rsplit(|&c| c == b'-').next()?;
    if b.len() == last.len() || last.len() < 16 || !value::random_body(last) {
        return None;
    }
    Some(raw(data, s, be, 5, SecretKind::SlackToken))
}

/// `hooks.slack.com/services/T…/B…/<random>` (also `workflows/`, `triggers/`).
fn slack_webhook(data: &[u8], s: usize, e: usize) -> Option<Raw> {
    let kinds: [&[u8]; 3] = [b"services/", b"workflows/", b"triggers/"];
    let rest = slice(data, e, (e + 16).min(data.len()));
    let k = kinds.iter().find(|k| rest.starts_with(k))?;
    let ps = e + k.len();
    let n = run(data, ps, 256, |b| alnum(b) || b == b'/');
    let path = slice(data, ps, ps + n);
    let path = path.strip_suffix(b"/").unwrap_or(path);
    let slashes = path.iter().filter(|&&b| b == b'/').count();
    let last = path.rsplit(|&c| c == b'/').next()?;
    if slashes < 2 || last.len() < 16 || !value::random_body(last) {
        return None;
    }
    let start = s.saturating_sub(8);
    let start = if slice(data, start, s) == b"https://" {
        start
    } else {
        s
    };
    let end = ps + path.len();
    let shown = (e + k.len()).saturating_sub(start);
    Some(raw(data, start, end, shown, SecretKind::SlackWebhook))
}

/// `sk-…`: Anthropic (`sk-ant-`), OpenAI project/service/admin keys, and legacy OpenAI keys
/// (48 base62 characters, or containing `T3BlbkFJ`, the base64 of "OpenAI").
fn sk_dash(data: &[u8], s: usize) -> Option<Raw> {
    if byte_before(data, s).is_some_and(|b| alnum(b) || b == b'-' || b == b'_') {
        return None;
    }
    let rest = slice(data, s, (s + 16).min(data.len()));
    let prefixed: [(&[u8], SecretKind); 5] = [
        (b"sk-ant-", SecretKind::AnthropicKey),
        (b"sk-proj-", SecretKind::OpenAiKey),
        (b"sk-svcacct-", SecretKind::OpenAiKey),
        (b"sk-admin-", SecretKind::OpenAiKey),
        (b"sk-None-", SecretKind::OpenAiKey),
    ];
    for (p, kind) in prefixed {
        if rest.starts_with(p) {
            return simple(data, s, p.len(), 40, 400, b64url, kind);
        }
    }
    let n = run(data, s + 3, 401, b64url);
    let b = slice(data, s + 3, s + 3 + n);
    if n > 400 || byte(data, s + 3 + n).is_some_and(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let legacy_len = n == 48 && b.iter().all(|c| c.is_ascii_alphanumeric()) && {
        let c = Classes::of(b);
        c.upper && c.lower && c.digit
    };
    let marked = n >= 40 && memchr::memmem::find(b, b"T3BlbkFJ").is_some();
    ((legacy_len || marked) && value::random_body(b))
        .then(|| raw(data, s, s + 3 + n, 3, SecretKind::OpenAiKey))
}

/// `hf_` + 34 to 40 letters/digits in mixed case, not part of a longer identifier.
fn hugging_face(data: &[u8], s: usize) -> Option<Raw> {
    if !no_underscore_before(data, s) {
        return None;
    }
    let (bs, be) = body(data, s, 3, 34, 40, alnum)?;
    let b = slice(data, bs, be);
    let c = Classes::of(b);
    (c.upper && c.lower && value::random_body(b))
        .then(|| raw(data, s, be, 3, SecretKind::HuggingFaceToken))
}

/// `SG.` + 22 + `.` + 43 URL-safe base64 characters.
fn sendgrid(data: &[u8], s: usize) -> Option<Raw> {
    if !left_boundary(data, s) {
        return None;
    }
    let a = run(data, s + 3, 23, b64url);
    if a != 22 || byte(data, s + 3 + a) != Some(b'.') {
        return None;
    }
    let bs = s + 3 + a + 1;
    let b = run(data, bs, 44, b64url);
    let end = bs + b;
    if b != 43 || byte(data, end).is_some_and(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let body = slice(data, s + 3, end);
    value::random_body(body).then(|| raw(data, s, end, 3, SecretKind::SendGridKey))
}

/// `scheme://user:password@host` with a password that is neither a placeholder nor a stock
/// default.
fn url_password(data: &[u8], s: usize, e: usize) -> Option<Raw> {
    let scheme_len = {
        let mut n = 0;
        while n < 32
            && byte_before(data, s.saturating_sub(n))
                .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'-'))
        {
            n += 1;
        }
        n
    };
    let ss = s.saturating_sub(scheme_len);
    if scheme_len < 2 || !byte(data, ss).is_some_and(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let ui_len = run(data, e, 256, |b| {
        !(b.is_ascii_whitespace()
            || b.is_ascii_control()
            || matches!(
                b,
                b'/' | b'?'
                    | b'#'
                    | b'"'
                    | b'\''
                    | b'`'
                    | b'<'
                    | b'>'
                    | b'\\'
                    | b'('
                    | b')'
                    | b'['
                    | b']'
                    | b'{'
                    | b'}'
                    | b','
                    | b';'
                    | b'|'
            ))
    });
    let ui_all = slice(data, e, e + ui_len);
    let at = memchr::memrchr(b'@', ui_all)?;
    let userinfo = slice(ui_all, 0, at);
    let colon = memchr::memchr(b':', userinfo)?;
    let user = slice(userinfo, 0, colon);
    let pass = slice(userinfo, colon + 1, userinfo.len());
    let host = slice(ui_all, at + 1, ui_all.len());
    if host.is_empty() || value::is_placeholder(host) {
        return None;
    }
    if !url_password_plausible(user, pass) {
        return None;
    }
    let ps = e + colon + 1;
    let user_shown = slice(user, 0, user.len().min(32));
    Some(Raw {
        start: ps,
        end: ps + pass.len(),
        kind: SecretKind::UrlPassword,
        redacted: format!(
            "{}://{}:{}",
            String::from_utf8_lossy(slice(data, ss, s)),
            String::from_utf8_lossy(user_shown),
            redact(b"", pass.len())
        ),
    })
}

/// Documentation lines (`http://example.com/cb#access_token=…`) show made-up credentials.
fn on_example_line(data: &[u8], pos: usize) -> bool {
    let lo = pos.saturating_sub(4096);
    let start = memchr::memrchr(b'\n', slice(data, lo, pos)).map_or(lo, |i| lo + i + 1);
    let hi = (pos + 4096).min(data.len());
    let end = memchr::memchr(b'\n', slice(data, pos, hi)).map_or(hi, |i| pos + i);
    let line = slice(data, start, end);
    [&b"example.com"[..], b"example.org", b"example.net"]
        .iter()
        .any(|d| memchr::memmem::find(line, d).is_some())
}

/// Generic user names of documentation (`https://user:pass@host`).
const EXAMPLE_USERS: &[&str] = &[
    "user", "username", "login", "name", "foo", "someone", "myuser", "me", "jdoe", "john",
];

/// Stock passwords of database images and tutorials: credentials, but never a leak.
const STOCK_PASSWORDS: &[&str] = &[
    "password",
    "passw0rd",
    "password1",
    "password123",
    "postgres",
    "postgresql",
    "mysecretpassword",
    "secretpassword",
    "supersecret",
    "supersecretpassword",
    "rootpassword",
    "adminpassword",
    "defaultpassword",
    "12345678",
    "123456789",
    "qwertyuiop",
];

fn url_password_plausible(user: &[u8], pass: &[u8]) -> bool {
    if pass.len() < 8 || pass.len() > 256 || pass.eq_ignore_ascii_case(user) {
        return false;
    }
    // `cvs://:pserver:anoncvs@host`: a protocol field, not a password.
    if pass.contains(&b':') || value::is_known_example(pass) {
        return false;
    }
    if EXAMPLE_USERS
        .iter()
        .any(|u| user.eq_ignore_ascii_case(u.as_bytes()))
    {
        return false;
    }
    if value::is_placeholder(pass)
        || STOCK_PASSWORDS
            .iter()
            .any(|p| pass.eq_ignore_ascii_case(p.as_bytes()))
    {
        return false;
    }
    Classes::of(pass).count() >= 2 && value::entropy(pass) >= 2.5
}

fn ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// Name suffixes that make an assignment interesting, longest first, with their strength.
const NAME_SUFFIXES: &[(&str, NameStrength)] = &[
    ("passphrase", NameStrength::Strong),
    ("password", NameStrength::Strong),
    ("passwd", NameStrength::Strong),
    ("secret", NameStrength::Strong),
    ("token", NameStrength::Strong),
    ("apikey", NameStrength::Strong),
    ("pass", NameStrength::Strong),
    ("key", NameStrength::Key),
];

/// `*_KEY` names that nearly always hold a credential.
const STRONG_KEY_NAMES: &[&str] = &[
    "api_key",
    "api-key",
    "access_key",
    "secret_key",
    "private_key",
    "auth_key",
    "master_key",
    "signing_key",
    "encryption_key",
    "license_key",
];

/// Names containing these are keys of another sort (public keys, cache and database keys).
const NON_SECRET_NAME_PARTS: &[&str] = &[
    "public",
    "publishable",
    "pubkey",
    "cache",
    "idempot",
    "sort",
    "partition",
    "primary",
    "foreign",
    "object",
    "i18n",
    "translation",
];

/// Classifies an identifier by how it ends: `FOO_TOKEN`, `fooToken`, `foo-token`, `password`.
/// Bare `key` and `pass` say too little.
pub(crate) fn name_strength(name: &[u8]) -> Option<NameStrength> {
    let lower = name.to_ascii_lowercase();
    let (suffix, strength) = NAME_SUFFIXES
        .iter()
        .find(|(s, _)| lower.ends_with(s.as_bytes()))?;
    let cut = name.len() - suffix.len();
    let boundary = match cut.checked_sub(1).and_then(|i| name.get(i)) {
        None => !matches!(*suffix, "key" | "pass"),
        Some(b'_' | b'-' | b'.') => true,
        Some(&p) => {
            // camelCase: `apiKey`, `accessToken`
            name.get(cut).is_some_and(u8::is_ascii_uppercase)
                && (p.is_ascii_lowercase() || p.is_ascii_digit())
        }
    };
    if !boundary {
        return None;
    }
    if NON_SECRET_NAME_PARTS
        .iter()
        .any(|p| memchr::memmem::find(&lower, p.as_bytes()).is_some())
    {
        return None;
    }
    let canonical: Vec<u8> = lower
        .iter()
        .map(|&b| if b == b'-' || b == b'.' { b'_' } else { b })
        .collect();
    let strong_key = STRONG_KEY_NAMES
        .iter()
        .any(|k| canonical.ends_with(k.as_bytes()));
    Some(if strong_key {
        NameStrength::Strong
    } else {
        *strength
    })
}

/// An assignment `NAME = value`, `NAME: value`, `"name": "value"`, `name := value`,
/// `'name' => 'value'`, `--name=value` whose name ends in a secret word and whose value looks
/// random. Returns the detection and the end of the identifier examined.
fn keyword(data: &[u8], s: usize, e: usize) -> (Option<Raw>, usize) {
    let mut ns = s;
    while s - ns < 128 && byte_before(data, ns).is_some_and(ident_byte) {
        ns -= 1;
    }
    let ne = e + run(data, e, 128, ident_byte);
    match assignment_value(data, ns, ne) {
        Some((vs, ve, strength)) => (
            judge_assignment(data, slice(data, ns, ne), vs, ve, strength),
            ve,
        ),
        None => (None, ne),
    }
}

/// Only blanks, then a line end, a `#` comment or the end of the data, follow `pos`.
fn line_ends(data: &[u8], pos: usize) -> bool {
    let p = pos + run(data, pos, 64, |b| b == b' ' || b == b'\t');
    matches!(byte(data, p), None | Some(b'\n' | b'\r' | b'#'))
}

/// Finds the value of `name <op> value` for an identifier at `ns..ne` that ends in a secret
/// word: its byte range and how strongly the name says "secret".
fn assignment_value(data: &[u8], ns: usize, ne: usize) -> Option<(usize, usize, NameStrength)> {
    let name = slice(data, ns, ne);
    let strength = name_strength(name)?;
    let mut p = ne;
    if matches!(byte(data, p), Some(b'"' | b'\'')) {
        p += 1;
    }
    p += run(data, p, 16, |b| b == b' ' || b == b'\t');
    let two = slice(data, p, p + 2);
    let mut colon = false;
    match byte(data, p)? {
        _ if two == b":=" || two == b"=>" || two == b"?=" => p += 2,
        b'=' if !matches!(byte(data, p + 1), Some(b'=' | b'~')) => p += 1,
        b':' if byte(data, p + 1) != Some(b':') => {
            colon = true;
            p += 1;
        }
        _ => return None,
    }
    p += run(data, p, 16, |b| b == b' ' || b == b'\t');
    let (vs, ve) = match byte(data, p)? {
        q @ (b'"' | b'\'' | b'`') => {
            let n = run(data, p + 1, 1025, |b| b != q && b != b'\n');
            if byte(data, p + 1 + n) != Some(q) {
                return None;
            }
            (p + 1, p + 1 + n)
        }
        _ => {
            let n = run(data, p, 1025, |b| {
                !(b.is_ascii_whitespace()
                    || b.is_ascii_control()
                    || matches!(
                        b,
                        b'"' | b'\''
                            | b'`'
                            | b','
                            | b';'
                            | b'&'
                            | b')'
                            | b']'
                            | b'}'
                            | b'('
                            | b'['
                            | b'{'
                    ))
            });
            // `token = compute(…)`, `key = table[…]`: an expression, not a literal.
            if matches!(byte(data, p + n), Some(b'(' | b'[' | b'{')) {
                return None;
            }
            // An unquoted value after `:` is YAML only when the line ends there; otherwise
            // it is a type annotation (`key: KeyType = …`, `field: Type,`).
            if colon && !line_ends(data, p + n) {
                return None;
            }
            (p, p + n)
        }
    };
    Some((vs, ve, strength))
}

/// Reports the value at `vs..ve` assigned to `name` if it looks like a secret.
fn judge_assignment(
    data: &[u8],
    name: &[u8],
    vs: usize,
    ve: usize,
    strength: NameStrength,
) -> Option<Raw> {
    let v = slice(data, vs, ve);
    if !value::random_value(v, strength) || on_example_line(data, vs) {
        return None;
    }
    let lower = name.to_ascii_lowercase();
    let aws = [
        &b"secret_access_key"[..],
        b"secretaccesskey",
        b"secret-access-key",
    ]
    .iter()
    .any(|k| lower.ends_with(k));
    let kind = if aws && v.len() == 40 && v.iter().all(|&b| b64(b)) {
        SecretKind::AwsSecretAccessKey
    } else {
        SecretKind::Assignment
    };
    Some(raw(data, vs, ve, (v.len() / 8).min(3), kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(data: &str) -> Vec<SecretKind> {
        let mut out = Vec::new();
        find(data.as_bytes(), &mut out);
        out.iter().map(|r| r.kind).collect()
    }

    #[test]
    fn automaton_builds() {
        assert!(MATCHER.is_some());
    }

    #[test]
    fn anchors_fit_the_fast_prefilter() {
        // Teddy's slim variant takes up to 32 patterns; its fingerprint is as long as the
        // shortest pattern (up to 4 bytes), and 2-byte fingerprints match far too often.
        assert!(ANCHORS.len() <= 32, "{} anchors", ANCHORS.len());
        assert!(ANCHORS.iter().all(|(a, _)| a.len() >= 3));
    }

    #[test]
    fn name_strength_rules() {
        use NameStrength::*;
        assert_eq!(name_strength(b"GITHUB_TOKEN"), Some(Strong));
        assert_eq!(name_strength(b"accessToken"), Some(Strong));
        assert_eq!(name_strength(b"db-password"), Some(Strong));
        assert_eq!(name_strength(b"PGPASSWORD"), None);
        assert_eq!(name_strength(b"password"), Some(Strong));
        assert_eq!(name_strength(b"OPENAI_API_KEY"), Some(Strong));
        assert_eq!(name_strength(b"apiKey"), Some(Strong));
        assert_eq!(name_strength(b"SIGNING_KEY"), Some(Strong));
        assert_eq!(name_strength(b"SOME_KEY"), Some(Key));
        assert_eq!(name_strength(b"key"), None);
        assert_eq!(name_strength(b"monkey"), None);
        assert_eq!(name_strength(b"TOKEN_URL"), None);
        assert_eq!(name_strength(b"PUBLIC_KEY"), None);
        assert_eq!(name_strength(b"cache_key"), None);
        assert_eq!(name_strength(b"ASKPASS"), None);
    }

    #[test]
    fn fallback_search_agrees_with_the_automaton() {
        let text = "a TOKEN x://y sk-1 KEYghp_ PRIVATE KEY";
        let mut ac_hits = Vec::new();
        for_each_hit(text.as_bytes(), |s, e, i| ac_hits.push((s, e, i)));
        assert!(!ac_hits.is_empty());
        // The fallback path: same hits, found by memmem.
        let mut naive = Vec::new();
        for (i, (a, _)) in ANCHORS.iter().enumerate() {
            for s in memchr::memmem::find_iter(text.as_bytes(), a.as_bytes()) {
                naive.push((s, s + a.len(), i));
            }
        }
        naive.sort_unstable();
        let mut next = 0;
        naive.retain(|&(s, e, _)| {
            let keep = s >= next;
            if keep {
                next = e;
            }
            keep
        });
        assert_eq!(ac_hits, naive);
    }

    #[test]
    fn expressions_are_not_assignments() {
        assert!(kinds("let token = compute_the_token_now(x);").is_empty());
        assert!(kinds("api_key: String,").is_empty());
        assert!(kinds("if token == \"q8Zr2LmW0pXv7TkBn4Hs\" {}").is_empty());
        assert!(kinds("SECRET_KEY = os.environ[\"SECRET_KEY\"]").is_empty());
        assert!(kinds("pub const CredKey: MSV1_0_CREDENTIAL_KEY_TYPE = 1i32;").is_empty());
        assert!(kinds("pub const DefaultKey: X509RequestInheritOptions = 1i32;").is_empty());
        assert!(kinds("fn f(token : super::super::Foundation:: HANDLE)").is_empty());
    }
}
