//! Numbers in free text, found by what they mean rather than how they are spelled.
//!
//! A number is a run of digit groups — ASCII or full-width digits — joined by up to three common
//! separators (spaces, hyphens and dashes, dots, parentheses, `/`, `_`, and their full-width
//! forms), optionally after a `+`. Detection works on the normalised digits of a whole number of
//! consecutive groups: `138-1234-5678`, `+86 138 1234 5678`, `(+86)13812345678` and
//! `１３８１２３４５６７８` all mean `13812345678`. The leftmost, longest matching groups are
//! masked as one span; a digit run is never split, so `O2024010100001234` stays one 16-digit run.
//!
//! Bank card numbers (13–19 digits passing Luhn, which one random number in ten does) count
//! only when no letter is glued to them, so order ids stay readable; mobiles and resident IDs are
//! specific enough to be masked even glued to letters (`tel13812345678`).
//!
//! A mask shows a few digits, which could join the digits after it into a new number
//! (`110105********1381 2345678`), so passes repeat until nothing changes; a text still changing
//! after [`MAX_PASSES`] has every digit hidden (fail closed).

use std::borrow::Cow;
use std::ops::Range;

use super::{luhn, resident_id_check_char};
use crate::vocab::mask::{Masker, ascii_digit, mask_phone};

/// Passes before the fallback hides every digit: each pass that masks something removes digits,
/// and real text needs a second pass only when a mask's shown digits join the next group.
const MAX_PASSES: usize = 4;

/// No number the detectors look for has fewer digits (E.164 starts at 8).
const MIN_DIGITS: usize = 8;

/// No number the detectors look for has more characters (a bank card has at most 19 digits).
const MAX_DIGITS: usize = 19;

/// Separators allowed between the digit groups of one number, at most this many in a row.
const MAX_SEPARATOR_RUN: usize = 3;

/// Masks phone numbers, resident IDs and bank card numbers in `text`; borrowed when there is none.
pub(super) fn mask_numbers(text: &str) -> Cow<'_, str> {
    mask_numbers_within(text, MAX_PASSES)
}

/// [`mask_numbers`] with an explicit pass budget (tests reach the fallback with a small one).
pub(super) fn mask_numbers_within(text: &str, passes: usize) -> Cow<'_, str> {
    let mut current = Cow::Borrowed(text);
    for _ in 0..passes {
        match mask_pass(&current) {
            None => return current,
            Some(next) => current = Cow::Owned(next),
        }
    }
    match mask_pass(&current) {
        None => current,
        Some(next) => Cow::Owned(hide_all_digits(&next)),
    }
}

/// Fewer than [`MIN_DIGITS`] digits in the whole text cannot hold a number: the fast path for
/// almost every log line and record field.
fn too_few_digits(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut count = 0;
    for (i, &b) in bytes.iter().enumerate() {
        // Full-width digits are U+FF10..U+FF19: EF BC 90..99 in UTF-8.
        let full_width = b == 0xEF
            && bytes.get(i + 1) == Some(&0xBC)
            && bytes.get(i + 2).is_some_and(|b| (0x90..=0x99).contains(b));
        if b.is_ascii_digit() || full_width {
            count += 1;
            if count >= MIN_DIGITS {
                return false;
            }
        }
    }
    true
}

fn is_separator(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\u{A0}' | '\u{3000}' | '-' | '.' | '(' | ')' | '/' | '_' | '\u{2010}'
            ..='\u{2015}'
                | '\u{2212}'
                | '\u{FF08}'
                | '\u{FF09}'
                | '\u{FF0D}'
                | '\u{FF0E}'
                | '\u{FF0F}'
                | '\u{FF3F}'
    )
}

fn is_check_x(c: char) -> bool {
    matches!(c, 'X' | 'x' | '\u{FF38}' | '\u{FF58}')
}

fn char_at(text: &str, i: usize) -> Option<char> {
    text.get(i..).and_then(|s| s.chars().next())
}

fn char_before(text: &str, i: usize) -> Option<char> {
    text.get(..i).and_then(|s| s.chars().next_back())
}

/// One run of digits: where it is in the text, and its digits in the span's buffer.
struct Group {
    start: usize,
    end: usize,
    digits: Range<usize>,
}

/// Consecutive digit groups joined by separators.
struct Span {
    groups: Vec<Group>,
    digits: Vec<u8>,
    /// Where a `+` right before the first digit is.
    plus: Option<usize>,
    /// An ASCII letter or digit right before the span (or its `+`).
    glued_before: bool,
    /// Where an ID check character `X` right after the last group ends.
    check_x: Option<usize>,
    /// An ASCII letter or digit right after the span (after its `X`, when there is one).
    glued_after: bool,
}

impl Span {
    fn new() -> Self {
        Self {
            groups: Vec::new(),
            digits: Vec::new(),
            plus: None,
            glued_before: false,
            check_x: None,
            glued_after: false,
        }
    }

    /// Reads the span whose first digit is at `start`; returns where its last group ends.
    fn read(&mut self, text: &str, start: usize) -> usize {
        self.groups.clear();
        self.digits.clear();
        self.check_x = None;
        let before = char_before(text, start);
        self.plus = matches!(before, Some('+' | '\u{FF0B}'))
            .then(|| start - before.map_or(0, char::len_utf8));
        let outside = char_before(text, self.plus.unwrap_or(start));
        self.glued_before = outside.is_some_and(|c| c.is_ascii_alphanumeric());
        let mut i = start;
        loop {
            let group_start = i;
            let digits_start = self.digits.len();
            while let Some(d) = char_at(text, i).and_then(ascii_digit) {
                self.digits.push(d);
                i += char_at(text, i).map_or(1, char::len_utf8);
            }
            self.groups.push(Group {
                start: group_start,
                end: i,
                digits: digits_start..self.digits.len(),
            });
            let mut next = i;
            let mut separators = 0;
            while separators < MAX_SEPARATOR_RUN
                && let Some(c) = char_at(text, next).filter(|c| is_separator(*c))
            {
                next += c.len_utf8();
                separators += 1;
            }
            let continues = separators > 0 && char_at(text, next).and_then(ascii_digit).is_some();
            if !continues {
                break;
            }
            i = next;
        }
        let mut after = i;
        if let Some(x) = char_at(text, i).filter(|c| is_check_x(*c)) {
            after += x.len_utf8();
            self.check_x = Some(after);
        }
        self.glued_after = char_at(text, after).is_some_and(|c| c.is_ascii_alphanumeric());
        i
    }

    /// The leftmost, longest numbers in this span: (byte range in the text, masked form).
    fn matches(&self, found: &mut Vec<(Range<usize>, String)>) {
        let n = self.groups.len();
        let mut a = 0;
        while a < n {
            let mut last = a;
            let mut total = self.groups[a].digits.len();
            while last + 1 < n && total + self.groups[last + 1].digits.len() <= MAX_DIGITS {
                last += 1;
                total += self.groups[last].digits.len();
            }
            let hit = (a..=last).rev().find_map(|b| {
                let digits = &self.digits[self.groups[a].digits.start..self.groups[b].digits.end];
                if digits.len() < MIN_DIGITS {
                    return None;
                }
                let ends_span = b + 1 == n;
                let shape = Shape {
                    plus: a == 0 && self.plus.is_some(),
                    check_x: ends_span && self.check_x.is_some(),
                    glued_before: a == 0 && self.glued_before,
                    glued_after: ends_span && (self.glued_after || self.check_x.is_some()),
                };
                classify(digits, shape).map(|(masked, used_x)| (b, masked, used_x))
            });
            match hit {
                Some((b, masked, used_x)) => {
                    let start = match self.plus {
                        Some(plus) if a == 0 && masked.starts_with('+') => plus,
                        _ => self.groups[a].start,
                    };
                    let end = match self.check_x {
                        Some(x) if used_x => x,
                        _ => self.groups[b].end,
                    };
                    found.push((start..end, masked));
                    a = b + 1;
                }
                None => a += 1,
            }
        }
    }
}

/// What surrounds a candidate number.
#[derive(Clone, Copy)]
struct Shape {
    /// A `+` right before it.
    plus: bool,
    /// An `X` right after it (usable as an ID check character).
    check_x: bool,
    /// An ASCII letter or digit right before it.
    glued_before: bool,
    /// An ASCII letter or digit right after it, counting an `X` that is not used as a check
    /// character.
    glued_after: bool,
}

/// The masked form of `digits` (ASCII) if they are a number the redactor hides, and whether the
/// following `X` belongs to it.
fn classify(digits: &[u8], shape: Shape) -> Option<(String, bool)> {
    let n = digits.len();
    // Only ASCII digits were pushed; the conversion cannot fail.
    let text = std::str::from_utf8(digits).ok()?;
    if shape.plus && (8..=15).contains(&n) {
        return Some((format!("+{}", mask_phone(text)), false));
    }
    // A mainland mobile number, bare or after the country code written without its `+`
    // (`86…`, `0086…`); the longer forms only standing alone, as card numbers, so an id such
    // as `ORD8613812345678` stays readable.
    let glued = shape.glued_before || shape.glued_after;
    let mobile = |d: &[u8]| d.len() == 11 && d[0] == b'1' && (b'3'..=b'9').contains(&d[1]);
    let national = match digits {
        [b'0', b'0', b'8', b'6', rest @ ..] | [b'8', b'6', rest @ ..] => rest,
        _ => &[],
    };
    if mobile(digits) || (!glued && mobile(national)) {
        return Some((mask_phone(text), false));
    }
    if n == 17 && shape.check_x && resident_id_check_char(text) == Some('X') {
        return Some((Masker::IdNumber.mask(&format!("{text}X")), true));
    }
    if n == 18 && resident_id_check_char(&text[..17]) == Some(char::from(digits[17])) {
        return Some((Masker::IdNumber.mask(text), false));
    }
    if (13..=MAX_DIGITS).contains(&n) && !glued && luhn(text) {
        return Some((Masker::BankCard.mask(text), false));
    }
    None
}

/// One pass over `text`: the text with every number found masked, or `None` when there is none.
fn mask_pass(text: &str) -> Option<String> {
    if too_few_digits(text) {
        return None;
    }
    let mut found = Vec::new();
    let mut span = Span::new();
    let mut i = 0;
    while let Some(c) = char_at(text, i) {
        if ascii_digit(c).is_some() {
            i = span.read(text, i);
            span.matches(&mut found);
        } else {
            i += c.len_utf8();
        }
    }
    if found.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (range, masked) in found {
        out.push_str(&text[copied..range.start]);
        out.push_str(&masked);
        copied = range.end;
    }
    out.push_str(&text[copied..]);
    Some(out)
}

fn hide_all_digits(text: &str) -> String {
    text.chars()
        .map(|c| if ascii_digit(c).is_some() { '*' } else { c })
        .collect()
}
