//! Redaction shared by audit records and operational logs: whatever looks like personal data is
//! masked wherever it appears, with the same maskers as response views.
//!
//! Detectors: mainland-China mobile numbers (11 digits, `1[3-9]…`), E.164 numbers (`+` and 8–15
//! digits), emails, resident ID numbers (18 characters with a valid check digit) and bank card
//! numbers (13–19 digits passing Luhn). They look at what a value means, not how it is spelled:
//! full-width digits count as digits, separators inside a number are skipped
//! (`+86 138-1234 5678`), and a percent-encoded path is decoded for the check
//! (`b%40example.com`); the whole matched span is masked ([`numbers`] has the rules). A number
//! counts only as a whole run of digits, so order ids such as `O2024010100001234` stay readable.
//! Credentials are not redacted here: they never reach a record or a log line in the first place.

use std::borrow::Cow;
use std::io::Write;
use std::sync::LazyLock;

use regex::Regex;

use crate::vocab::mask::{Masker, mask_email};

mod numbers;
mod path;

pub use path::redact_path;

/// The longest text a client-shaped field (path, request id, principal id, tenant, client
/// subject, query value) keeps in a record, in bytes of UTF-8.
pub const FIELD_MAX_BYTES: usize = 1024;

/// Ends a field that was cut to [`FIELD_MAX_BYTES`].
pub const CUT_MARK: char = '…';

/// `text`, or its longest prefix that fits in [`FIELD_MAX_BYTES`] with [`CUT_MARK`] after it,
/// cut on a character boundary so the line stays valid UTF-8.
pub fn bounded(text: Cow<'_, str>) -> Cow<'_, str> {
    if text.len() <= FIELD_MAX_BYTES {
        return text;
    }
    let mut end = FIELD_MAX_BYTES - CUT_MARK.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut cut = String::with_capacity(end + CUT_MARK.len_utf8());
    cut.push_str(&text[..end]);
    cut.push(CUT_MARK);
    Cow::Owned(cut)
}

/// The request path as records and log lines show it: redacted (decoded for the check), then
/// bounded.
pub fn recorded_path(path: &str) -> Cow<'_, str> {
    bounded(redact_path(path))
}

// Constant patterns, compiled on first use and covered by tests: they cannot fail at run time.
// The `@` may be full-width or percent-encoded: it means the same to a reader.
#[allow(clippy::expect_used)]
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+-]+(?:@|＠|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
        .expect("static regex")
});

/// Masks personal data in `text`; borrowed when there is none.
pub fn redact(text: &str) -> Cow<'_, str> {
    let numbers = numbers::mask_numbers(text);
    if !numbers.contains(['@', '＠']) && !numbers.contains("%40") {
        return numbers;
    }
    match EMAIL.replace_all(&numbers, |c: &regex::Captures<'_>| {
        mask_email(&c[0].replace(['＠'], "@").replacen("%40", "@", 1))
    }) {
        Cow::Borrowed(_) => numbers,
        Cow::Owned(s) => Cow::Owned(s),
    }
}

/// The text to record for a number outside `sensitive_params`: `None` when it is not personal
/// data and may stay a number, otherwise its masked text (a phone number sent as an integer is
/// still a phone number).
pub fn redact_number(number: &serde_json::Number) -> Option<String> {
    // An integer of at most seven digits cannot hold a number the detectors look for (they need
    // at least eight): the common case (page sizes, counts), answered without writing it out.
    let magnitude = number
        .as_u64()
        .or_else(|| number.as_i64().map(i64::unsigned_abs));
    if magnitude.is_some_and(|m| m < 10_000_000) {
        return None;
    }
    let text = number.to_string();
    if let Cow::Owned(masked) = redact(&text) {
        return Some(masked);
    }
    // A float prints as `1.3812345678e10` or `13812345678.0`; its whole-number digits are what
    // a reader would see.
    let f = number.as_f64()?;
    let whole = f.is_finite() && f.fract() == 0.0 && f.abs() < 1e20;
    match whole.then(|| format!("{f:.0}")) {
        Some(digits) => match redact(&digits) {
            Cow::Owned(masked) => Some(masked),
            Cow::Borrowed(_) => None,
        },
        None => None,
    }
}

/// The request method as recorded: one of the standard methods, or `OTHER` — an extension
/// method is any token a client likes, so its text never reaches a record.
pub fn recorded_method(method: &http::Method) -> &'static str {
    const STANDARD: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
    ];
    STANDARD
        .into_iter()
        .find(|m| *m == method.as_str())
        .unwrap_or("OTHER")
}

/// The masker for a `sensitive_params` value, chosen by the parameter's name.
pub fn masker_for_param(name: &str) -> Masker {
    let n = name.to_ascii_lowercase();
    if n.contains("phone") || n.contains("mobile") || n.contains("tel") {
        Masker::Phone
    } else if n.contains("mail") {
        Masker::Email
    } else if n.contains("id_number") || n.contains("id_card") || n.contains("idcard") {
        Masker::IdNumber
    } else if n.contains("card") || n.contains("bank") || n.contains("account") {
        Masker::BankCard
    } else if n.contains("name") {
        Masker::Name
    } else {
        Masker::Hide
    }
}

/// Masks a sensitive parameter's value (`hide` becomes `***` so the record shows a value was sent).
pub fn mask_param(name: &str, value: &str) -> String {
    match masker_for_param(name) {
        Masker::Hide => "***".to_owned(),
        m => m.mask(value),
    }
}

/// The GB 11643 check character for the first 17 digits of a resident ID.
pub fn resident_id_check_char(first17: &str) -> Option<char> {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let b = first17.as_bytes();
    if b.len() != 17 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let sum: u32 = b
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    Some(b"10X98765432"[(sum % 11) as usize] as char)
}

/// The Luhn sum of `digits` (ASCII digits), doubling every second digit from the right when
/// `double_last` is false — i.e. as a complete number; `true` treats it as a payload awaiting
/// its check digit.
fn luhn_sum(digits: &str, double_last: bool) -> u32 {
    digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            if (i % 2 == 1) != double_last {
                let dd = d * 2;
                if dd > 9 { dd - 9 } else { dd }
            } else {
                d
            }
        })
        .sum()
}

fn luhn(digits: &str) -> bool {
    luhn_sum(digits, false).is_multiple_of(10)
}

/// The Luhn check digit that makes `payload` (ASCII digits) a valid card number.
pub fn luhn_check_digit(payload: &str) -> u32 {
    (10 - luhn_sum(payload, true) % 10) % 10
}

/// A log writer that redacts each event before it reaches stderr. `tracing-subscriber` asks for
/// one writer per event, so buffering until drop redacts whole lines.
#[derive(Default)]
pub struct RedactingWriter {
    buffer: Vec<u8>,
}

impl Write for RedactingWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl RedactingWriter {
    /// Writes the buffered event, redacted, to `sink`.
    fn write_redacted(&self, sink: &mut impl Write) -> std::io::Result<()> {
        let text = String::from_utf8_lossy(&self.buffer);
        sink.write_all(redact(&text).as_bytes())
    }
}

impl Drop for RedactingWriter {
    fn drop(&mut self) {
        // A log line that cannot be written is lost; there is nowhere else to report it.
        let _ = self.write_redacted(&mut std::io::stderr());
    }
}

/// The `MakeWriter` for `tracing-subscriber`.
pub fn make_writer() -> RedactingWriter {
    RedactingWriter::default()
}

#[cfg(test)]
mod tests;
