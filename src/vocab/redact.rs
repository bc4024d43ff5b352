//! Redaction shared by audit records and operational logs: whatever looks like personal data is
//! masked wherever it appears, with the same maskers as response views.
//!
//! Detectors: mainland-China mobile numbers (11 digits, `1[3-9]…`), E.164 numbers (`+` and 8–15
//! digits), emails, resident ID numbers (18 characters with a valid check digit) and bank card
//! numbers (13–19 digits passing Luhn). A number counts only as a whole token — not glued to
//! letters or digits — so order ids such as `O2024010100001234` stay readable in the audit trail.
//! Credentials are not redacted here: they never reach a record or a log line in the first place.

use std::borrow::Cow;
use std::io::Write;
use std::sync::LazyLock;

use regex::Regex;

use crate::stage::views::{Masker, mask_email};

// Constant patterns, compiled on first use and covered by tests: they cannot fail at run time.
#[allow(clippy::expect_used)]
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
        .expect("static regex")
});

/// Masks personal data in `text`; borrowed when there is none.
pub fn redact(text: &str) -> Cow<'_, str> {
    let numbers = mask_numbers(text);
    if !numbers.contains('@') {
        return numbers;
    }
    match EMAIL.replace_all(&numbers, |c: &regex::Captures<'_>| mask_email(&c[0])) {
        Cow::Borrowed(_) => numbers,
        Cow::Owned(s) => Cow::Owned(s),
    }
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

fn mask_numbers(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let plus = bytes[i] == b'+' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
        let starts = (bytes[i].is_ascii_digit() || plus)
            && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric());
        if !starts {
            i += 1;
            continue;
        }
        let digits_start = if plus { i + 1 } else { i };
        let mut end = digits_start;
        while end < bytes.len() && bytes[end].is_ascii_digit() {
            end += 1;
        }
        let digits = &text[digits_start..end];
        let mut token_end = end;
        if !plus && digits.len() == 17 && matches!(bytes.get(end), Some(b'X' | b'x')) {
            token_end += 1;
        }
        let glued = bytes.get(token_end).is_some_and(u8::is_ascii_alphanumeric);
        let replacement = if glued {
            None
        } else {
            classify(&text[i..token_end], plus)
        };
        if let Some(masked) = replacement {
            let s = out.get_or_insert_with(|| String::with_capacity(text.len()));
            s.push_str(&text[copied..i]);
            s.push_str(&masked);
            copied = token_end;
        }
        i = token_end.max(i + 1);
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut s) => {
            s.push_str(&text[copied..]);
            Cow::Owned(s)
        }
    }
}

fn classify(token: &str, plus: bool) -> Option<String> {
    let n = token.len();
    if plus {
        return (9..=16)
            .contains(&n)
            .then(|| format!("+{}", Masker::Phone.mask(token)));
    }
    let b = token.as_bytes();
    if n == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]) {
        return Some(Masker::Phone.mask(token));
    }
    if n == 18 && resident_id_check(token) {
        return Some(Masker::IdNumber.mask(token));
    }
    if (13..=19).contains(&n) && b.iter().all(u8::is_ascii_digit) && luhn(token) {
        return Some(Masker::BankCard.mask(token));
    }
    None
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

fn resident_id_check(id: &str) -> bool {
    id.len() == 18
        && id.is_char_boundary(17)
        && resident_id_check_char(&id[..17])
            .is_some_and(|c| id[17..].eq_ignore_ascii_case(&c.to_string()))
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

impl Drop for RedactingWriter {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buffer);
        // A log line that cannot be written is lost; there is nowhere else to report it.
        let _ = std::io::stderr().write_all(redact(&text).as_bytes());
    }
}

/// The `MakeWriter` for `tracing-subscriber`.
pub fn make_writer() -> RedactingWriter {
    RedactingWriter::default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn masks_personal_data_in_text() {
        assert_eq!(redact("call 13812345678 now"), "call 138****5678 now");
        assert_eq!(
            redact("/v1/customers/13812345678/orders"),
            "/v1/customers/138****5678/orders"
        );
        assert_eq!(redact("intl +8613812345678"), "intl +861****5678");
        assert_eq!(
            redact("mail alice.b@example.com."),
            "mail a***@example.com."
        );
        assert_eq!(
            redact("id 11010519491231002X ok"),
            "id 110105********002X ok"
        );
        assert_eq!(redact("card 4111111111111111"), "card ************1111");
        assert_eq!(
            redact("order O2024010100001234 C1234567"),
            "order O2024010100001234 C1234567"
        );
        assert_eq!(
            redact("id 110105194912310021 bad check"),
            "id 110105194912310021 bad check"
        );
        assert_eq!(
            redact("4111111111111112 fails luhn"),
            "4111111111111112 fails luhn"
        );
        assert!(matches!(redact("nothing here 12345"), Cow::Borrowed(_)));
    }

    #[test]
    fn check_digits() {
        assert_eq!(resident_id_check_char("11010519491231002"), Some('X'));
        assert_eq!(resident_id_check_char("1101051949123100"), None);
        assert_eq!(luhn_check_digit("411111111111111"), 1);
        assert!(luhn(&format!(
            "622202123456789012{}",
            luhn_check_digit("622202123456789012")
        )));
    }

    #[test]
    fn sensitive_params_choose_their_masker() {
        assert_eq!(mask_param("phone", "13812345678"), "138****5678");
        assert_eq!(mask_param("email", "bob@example.com"), "b***@example.com");
        assert_eq!(
            mask_param("id_number", "11010519491231002X"),
            "110105********002X"
        );
        assert_eq!(mask_param("secret_code", "hunter2"), "***");
    }

    proptest! {
        #[test]
        fn never_panics_and_never_leaks_a_mobile(prefix in "[ -~]{0,20}", n in 3u8..=9, rest in "[0-9]{9}", suffix in "[ -~]{0,20}") {
            let phone = format!("1{n}{rest}");
            let text = format!("{prefix} {phone} {suffix}");
            let out = redact(&text);
            prop_assert!(!out.contains(&phone));
        }
    }
}
