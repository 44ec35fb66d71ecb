//! The line format shared by the writer, the checkpoint and the verifier.
//!
//! A sealed line is a JSON object whose last member is `"mac":"<64 hex>"`. The MAC covers every
//! byte of the line before `,"mac":"`, so the verifier checks the exact bytes on disk without
//! re-serialising anything.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// HMAC-SHA256, the MAC of every line and of the checkpoint.
pub(crate) type HmacSha256 = Hmac<Sha256>;

/// The bytes between the MAC'd prefix and the hex MAC.
pub(crate) const MAC_INFIX: &[u8] = b",\"mac\":\"";
/// The bytes after the hex MAC.
pub(crate) const MAC_SUFFIX: &[u8] = b"\"}";
/// Length of `,"mac":"<64 hex>"}`.
pub(crate) const SEAL_LEN: usize = MAC_INFIX.len() + 64 + MAC_SUFFIX.len();

/// Longest line the writer produces and the verifier reads whole; longer lines are reported,
/// not buffered, so memory stays bounded whatever the file holds.
pub const MAX_LINE: usize = 1 << 20;

/// Domain separation for the hash that stands in for the "previous line" of record 0.
const GENESIS_DOMAIN: &[u8] = b"agent-sandbox-audit/v1 genesis\0";

/// Builds a MAC state from key bytes. HMAC accepts keys of any length, so this cannot fail in
/// practice; the error is still propagated rather than unwrapped.
pub(crate) fn mac_state(key: &[u8; 32]) -> Result<HmacSha256, crate::AuditError> {
    <HmacSha256 as KeyInit>::new_from_slice(key).map_err(|_| crate::AuditError::KeyLength)
}

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// The `prev` value of record 0: binds the chain to its session id.
pub(crate) fn genesis_hash(session_id: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(GENESIS_DOMAIN);
    h.update(session_id.as_bytes());
    h.finalize().into()
}

/// Lowercase hex of 32 bytes, without allocating.
pub(crate) fn hex32(bytes: &[u8; 32]) -> [u8; 64] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes.iter()) {
        if let [hi, lo] = pair {
            *hi = DIGITS[usize::from(b >> 4)];
            *lo = DIGITS[usize::from(b & 0x0f)];
        }
    }
    out
}

/// Lowercase hex of 32 bytes as a `String`.
pub(crate) fn hex32_string(bytes: &[u8; 32]) -> String {
    hex32(bytes).iter().map(|&c| char::from(c)).collect()
}

/// Parses 64 lowercase or uppercase hex digits; `None` for anything else.
pub(crate) fn unhex32(text: &[u8]) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let hi = hex_digit(*pair.first()?)?;
        let lo = hex_digit(*pair.get(1)?)?;
        *o = (hi << 4) | lo;
    }
    Some(out)
}

/// Hex digit values, 0xff for bytes that are not hex digits: one table load per digit on the
/// verifier's hot path.
const HEX_VALUE: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

fn hex_digit(c: u8) -> Option<u8> {
    let v = HEX_VALUE[usize::from(c)];
    (v != 0xff).then_some(v)
}

/// Appends `,"mac":"<hex>"}` to `buf`, which holds an unterminated JSON object: the MAC covers
/// exactly the bytes already in `buf`.
pub(crate) fn seal(mac: &HmacSha256, buf: &mut Vec<u8>) {
    let mut m = mac.clone();
    m.update(buf);
    let tag: [u8; 32] = m.finalize().into_bytes().into();
    buf.extend_from_slice(MAC_INFIX);
    buf.extend_from_slice(&hex32(&tag));
    buf.extend_from_slice(MAC_SUFFIX);
}

/// Outcome of checking the seal of one line (without its newline).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SealCheck {
    /// The line ends with a well-formed seal and the MAC matches.
    Valid,
    /// The line ends with a well-formed seal but the MAC does not match.
    BadMac,
    /// The line does not end with `,"mac":"<64 hex>"}`.
    NoSeal,
}

/// Checks the seal of `line` (no trailing newline) in constant time over the tag.
pub(crate) fn check_seal(mac: &HmacSha256, line: &[u8]) -> SealCheck {
    let Some(body_len) = line.len().checked_sub(SEAL_LEN) else {
        return SealCheck::NoSeal;
    };
    let (body, seal) = line.split_at(body_len);
    let (infix, rest) = seal.split_at(MAC_INFIX.len());
    let (hex, suffix) = rest.split_at(64);
    if infix != MAC_INFIX || suffix != MAC_SUFFIX {
        return SealCheck::NoSeal;
    }
    let Some(tag) = unhex32(hex) else {
        return SealCheck::NoSeal;
    };
    let mut m = mac.clone();
    m.update(body);
    match m.verify_slice(&tag) {
        Ok(()) => SealCheck::Valid,
        Err(_) => SealCheck::BadMac,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let mut b = [0u8; 32];
        for (i, x) in b.iter_mut().enumerate() {
            *x = (i as u8).wrapping_mul(37);
        }
        let h = hex32(&b);
        assert_eq!(unhex32(&h), Some(b));
        assert_eq!(&hex32_string(&[0xab; 32])[..4], "abab");
        assert_eq!(unhex32(b"zz"), None);
        assert_eq!(unhex32(&[b'g'; 64]), None);
    }

    #[test]
    fn seal_then_check() {
        let mac = mac_state(&[7u8; 32]).unwrap();
        let mut buf = b"{\"a\":1".to_vec();
        seal(&mac, &mut buf);
        assert!(buf.ends_with(b"\"}"));
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["a"], 1);
        assert_eq!(check_seal(&mac, &buf), SealCheck::Valid);
        let other = mac_state(&[8u8; 32]).unwrap();
        assert_eq!(check_seal(&other, &buf), SealCheck::BadMac);
        buf[2] = b'b';
        assert_eq!(check_seal(&mac, &buf), SealCheck::BadMac);
        assert_eq!(check_seal(&mac, b"{}"), SealCheck::NoSeal);
        assert_eq!(check_seal(&mac, &buf[..buf.len() - 1]), SealCheck::NoSeal);
    }

    #[test]
    fn genesis_depends_on_session() {
        assert_ne!(genesis_hash("a"), genesis_hash("b"));
        assert_eq!(genesis_hash("a"), genesis_hash("a"));
    }
}
