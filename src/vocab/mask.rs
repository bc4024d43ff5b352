//! The maskers of CONTRACT.md §2.11 (`phone`, `email`, `id_number`, `bank_card`, `name`,
//! `hide`): used by response views on answers and by the redactor on records and logs.

use serde_json::Value;

/// A masker (CONTRACT.md §2.11). No masker shows more than about half of a value: the contract's
/// forms apply from the usual length on (11 phone digits, 18 ID characters, 8 card digits, a
/// 3-character email local part, a 2-character name); a shorter value shows at most half of its
/// characters, rounded down, the trailing ones first, and a value too short for that shows none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Masker {
    /// 138****5678: first 3 and last 4 digits from 11 digits on; 7–10 digits keep at most half
    /// (`13****78` for 8); fewer than 7 are fully hidden. Always four stars, so the length stays
    /// hidden.
    Phone,
    /// a***@example.com; a local part shorter than 3 characters shows none of itself.
    Email,
    /// First 6 and last 4 characters from 18 on; 8–17 keep at most half; shorter are hidden.
    IdNumber,
    /// Last 4 digits from 8 digits on; fewer are fully hidden.
    BankCard,
    /// First character; a one-character name is fully hidden.
    Name,
    /// The value becomes null; the key stays.
    Hide,
}

impl Masker {
    /// Parses a masker name.
    pub fn parse(name: &str) -> Result<Self, String> {
        Ok(match name {
            "phone" => Masker::Phone,
            "email" => Masker::Email,
            "id_number" => Masker::IdNumber,
            "bank_card" => Masker::BankCard,
            "name" => Masker::Name,
            "hide" => Masker::Hide,
            other => {
                return Err(format!(
                    "unknown masker `{other}` (use phone, email, id_number, bank_card, name, hide)"
                ));
            }
        })
    }

    /// The masker's name, as a policy writes it.
    pub fn name(self) -> &'static str {
        match self {
            Masker::Phone => "phone",
            Masker::Email => "email",
            Masker::IdNumber => "id_number",
            Masker::BankCard => "bank_card",
            Masker::Name => "name",
            Masker::Hide => "hide",
        }
    }

    /// Masks a text value.
    pub fn mask(self, text: &str) -> String {
        match self {
            Masker::Phone => mask_phone(text),
            Masker::Email => mask_email(text),
            Masker::IdNumber => mask_id_number(text),
            Masker::BankCard => mask_bank_card(text),
            Masker::Name => {
                let mut chars = text.chars();
                match (chars.next(), chars.next()) {
                    (Some(first), Some(_)) => std::iter::once(first)
                        .chain(text.chars().skip(1).map(|_| '*'))
                        .collect(),
                    (Some(_), None) => "*".into(),
                    (None, _) => String::new(),
                }
            }
            Masker::Hide => String::new(),
        }
    }

    /// Replaces `value` in place with its masked form.
    pub fn apply(self, value: &mut Value) {
        *value = match (self, &*value) {
            (_, Value::Null) => Value::Null,
            (Masker::Hide, _) => Value::Null,
            (_, Value::String(s)) => Value::String(self.mask(s)),
            (_, Value::Number(n)) => Value::String(self.mask(&n.to_string())),
            // A structure cannot be masked character by character: hide it (fail closed).
            _ => Value::Null,
        };
    }
}

/// The ASCII digit a character spells: `0`–`9` and their full-width forms `０`–`９`, so a number
/// typed on a CJK keyboard is recognised and masked like any other.
pub fn ascii_digit(c: char) -> Option<u8> {
    match c {
        '0'..='9' => Some(c as u8),
        '\u{FF10}'..='\u{FF19}' => u8::try_from(u32::from(c) - 0xFF10 + u32::from(b'0')).ok(),
        _ => None,
    }
}

/// How many leading and trailing characters a masker shows of a value `n` characters long: the
/// contract's `full` ends from `full_from` characters on; below that at most half (rounded
/// down), trailing first, each end capped by `full`; nothing (`None`) below `min` characters.
fn shown_ends(
    n: usize,
    full_from: usize,
    full: (usize, usize),
    min: usize,
) -> Option<(usize, usize)> {
    if n >= full_from {
        return Some(full);
    }
    if n < min {
        return None;
    }
    let budget = n / 2;
    let suffix = full.1.min(budget.div_ceil(2));
    let prefix = full.0.min(budget - suffix);
    Some((prefix, suffix))
}

/// First 3 and last 4 digits, e.g. `138****5678`; see [`Masker::Phone`] for shorter numbers.
pub fn mask_phone(text: &str) -> String {
    let digits: Vec<char> = text
        .chars()
        .filter_map(ascii_digit)
        .map(char::from)
        .collect();
    let n = digits.len();
    match shown_ends(n, 11, (3, 4), 7) {
        Some((prefix, suffix)) => digits[..prefix]
            .iter()
            .chain(&['*'; 4])
            .chain(&digits[n - suffix..])
            .collect(),
        None => "****".into(),
    }
}

/// First 6 and last 4 characters of an 18-character ID, fewer of a shorter value; the length
/// stays (one star per hidden character).
fn mask_id_number(text: &str) -> String {
    let chars: Vec<char> = text
        .chars()
        .map(|c| ascii_digit(c).map_or(c, char::from))
        .collect();
    let n = chars.len();
    match shown_ends(n, 18, (6, 4), 8) {
        Some((prefix, suffix)) => chars[..prefix]
            .iter()
            .chain(std::iter::repeat_n(&'*', n - prefix - suffix))
            .chain(&chars[n - suffix..])
            .collect(),
        None => "*".repeat(n.max(4)),
    }
}

/// Last 4 digits, one star per hidden digit; fewer than 8 digits are fully hidden.
fn mask_bank_card(text: &str) -> String {
    let digits: Vec<char> = text
        .chars()
        .filter_map(ascii_digit)
        .map(char::from)
        .collect();
    let n = digits.len();
    match shown_ends(n, 8, (0, 4), 8) {
        Some((_, suffix)) => std::iter::repeat_n('*', n - suffix)
            .chain(digits[n - suffix..].iter().copied())
            .collect(),
        None => "****".into(),
    }
}

/// First character of the local part (when it has at least 3), then `***@` and the domain.
pub fn mask_email(text: &str) -> String {
    match text.rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() => match local.chars().nth(2) {
            Some(_) => {
                let first = local.chars().next().unwrap_or('*');
                format!("{first}***@{domain}")
            }
            None => format!("***@{domain}"),
        },
        _ => "***".into(),
    }
}

#[cfg(test)]
mod tests;
