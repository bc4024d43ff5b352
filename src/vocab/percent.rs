//! Strict percent-decoding and canonical percent-encoding, shared by the path and query stages.
//!
//! Decoding refuses what lenient decoders pass through (a `%` not followed by two hex digits,
//! bytes that are not UTF-8) instead of guessing. Encoding is canonical (RFC 3986): unreserved
//! characters as they are, every other byte as `%XX` with uppercase hex, so the upstream always
//! sees one spelling of a value, written by the gateway.

use std::borrow::Cow;

/// Why a component could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// `%` not followed by two hex digits.
    BadEscape,
    /// The decoded bytes are not UTF-8 (overlong forms such as `%C0%AF` included).
    InvalidUtf8,
}

/// Decodes `%XX` escapes; with `plus_is_space`, `+` means a space (the form-encoding rule used
/// for query strings). Borrowed when nothing needed decoding.
pub fn decode(input: &str, plus_is_space: bool) -> Result<Cow<'_, str>, DecodeError> {
    let bytes = input.as_bytes();
    if !bytes
        .iter()
        .any(|&b| b == b'%' || (plus_is_space && b == b'+'))
    {
        return Ok(Cow::Borrowed(input));
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|b| hex_value(*b));
                let lo = bytes.get(i + 2).and_then(|b| hex_value(*b));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => return Err(DecodeError::BadEscape),
                }
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| DecodeError::InvalidUtf8)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// True for RFC 3986 unreserved characters.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Appends the canonical encoding of `value` to `out`.
pub fn encode_into(value: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in value.as_bytes() {
        if is_unreserved(b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xF) as usize] as char);
        }
    }
}

/// The canonical encoding of `value`.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    encode_into(value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_strictly() {
        assert_eq!(decode("abc", false).unwrap(), "abc");
        assert_eq!(decode("a%20b", false).unwrap(), "a b");
        assert_eq!(decode("a+b", true).unwrap(), "a b");
        assert_eq!(decode("a+b", false).unwrap(), "a+b");
        assert_eq!(decode("%2B", true).unwrap(), "+");
        assert_eq!(decode("%e4%b8%ad", false).unwrap(), "中");
        assert_eq!(decode("%", false), Err(DecodeError::BadEscape));
        assert_eq!(decode("%4", false), Err(DecodeError::BadEscape));
        assert_eq!(decode("%zz", false), Err(DecodeError::BadEscape));
        assert_eq!(decode("%C0%AF", false), Err(DecodeError::InvalidUtf8));
        assert_eq!(decode("%FF", false), Err(DecodeError::InvalidUtf8));
    }

    #[test]
    fn encodes_canonically() {
        assert_eq!(encode("2024-01-31"), "2024-01-31");
        assert_eq!(encode("a b/c?d&e=f+g"), "a%20b%2Fc%3Fd%26e%3Df%2Bg");
        assert_eq!(encode("中"), "%E4%B8%AD");
        assert_eq!(encode("~._-"), "~._-");
    }

    proptest! {
        #[test]
        fn encoding_round_trips(value in ".*") {
            let encoded = encode(&value);
            prop_assert!(encoded.bytes().all(|b| b.is_ascii_graphic()));
            prop_assert_eq!(decode(&encoded, true).unwrap(), value.as_str());
        }

        #[test]
        fn decoding_never_panics(input in proptest::collection::vec(any::<u8>(), 0..64)) {
            let text = String::from_utf8_lossy(&input);
            let _ = decode(&text, true);
            let _ = decode(&text, false);
        }
    }
}
