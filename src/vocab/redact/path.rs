//! The request path as recorded: redacted for what it means once decoded.
//!
//! A client can percent-encode personal data (`/v1/customers/b%40example.com/orders`,
//! `%31%33%38…`, or twice: `%2540`) so that the raw text hides it from the detectors. The check
//! therefore runs on the decoded path — decoded leniently (a bad escape stays as written, bytes
//! that are not UTF-8 become U+FFFD) and repeatedly, up to [`MAX_DECODES`] times. When it finds
//! something, the record holds the redacted decoded path, re-encoded where a path needs it
//! (`%2F` inside a segment then shows as `/`: the form is for reading, not for replay);
//! otherwise the path as sent.

use std::borrow::Cow;

use super::redact;

/// Layers of percent-encoding undone for the check; an upstream that decodes more often than
/// this is not one the gateway fronts.
const MAX_DECODES: usize = 3;

/// The path to record: as sent, or redacted when it (decoded) holds personal data.
pub fn redact_path(path: &str) -> Cow<'_, str> {
    if !path.contains('%') {
        return redact(path);
    }
    let mut decoded = Cow::Borrowed(path);
    for _ in 0..MAX_DECODES {
        match decode_lenient(&decoded) {
            Some(next) => decoded = Cow::Owned(next),
            None => break,
        }
    }
    match redact(&decoded) {
        Cow::Owned(masked) => Cow::Owned(encode_path(&masked)),
        Cow::Borrowed(_) => match redact(path) {
            Cow::Owned(masked) => Cow::Owned(masked),
            Cow::Borrowed(_) => Cow::Borrowed(path),
        },
    }
}

/// One layer of `%XX` decoding; `None` when there is nothing to decode.
fn decode_lenient(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut changed = false;
    let mut i = 0;
    while i < bytes.len() {
        let escape = (bytes[i] == b'%')
            .then(|| Some((hex(*bytes.get(i + 1)?)?, hex(*bytes.get(i + 2)?)?)))
            .flatten();
        match escape {
            Some((hi, lo)) => {
                out.push(hi << 4 | lo);
                changed = true;
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    changed.then(|| String::from_utf8_lossy(&out).into_owned())
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes what may not stand in a path (RFC 3986 `pchar` and `/` stay as they are, so
/// masks such as `b***@example.com` read plainly).
fn encode_path(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        let plain = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b);
        if plain {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xF)]));
        }
    }
    out
}
