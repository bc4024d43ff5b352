//! Calendar dates as `YYYY-MM-DD` text, read and written digit by digit. A typed date parameter
//! is parsed, rebuilt into the upstream query and written into the audit record on every
//! request, and every record carries a timestamp: chrono's format-string machinery cost about
//! 9,000 instructions per request for two dates (docs/profile-2026-12-02.md).

use chrono::{Datelike, NaiveDate};

/// Appends `value`'s last `width` decimal digits, zero-padded.
pub fn push_digits(out: &mut String, value: u32, width: u32) {
    for place in (0..width).rev() {
        let digit = (value / 10u32.pow(place)) % 10;
        out.push(char::from(b'0' + digit as u8));
    }
}

/// Appends `date` as `YYYY-MM-DD`, the text chrono's `%Y-%m-%d` writes (which is used for years
/// outside 0–9999, where that text is not four digits).
pub fn push_date(out: &mut String, date: NaiveDate) {
    match u32::try_from(date.year()).ok().filter(|y| *y <= 9_999) {
        Some(year) => {
            push_digits(out, year, 4);
            out.push('-');
            push_digits(out, date.month(), 2);
            out.push('-');
            push_digits(out, date.day(), 2);
        }
        None => {
            use std::fmt::Write as _;
            let _ = write!(out, "{}", date.format("%Y-%m-%d"));
        }
    }
}

/// The date `text` names if it is exactly `YYYY-MM-DD` (ASCII digits) and a real calendar day.
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| {
        b[range].iter().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let year = i32::try_from(number(0..4)?).ok()?;
    NaiveDate::from_ymd_opt(year, number(5..7)?, number(8..10)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_and_write_as_chrono_does() {
        let mut day = NaiveDate::from_ymd_opt(1999, 12, 25).unwrap();
        for _ in 0..800 {
            let mut ours = String::new();
            push_date(&mut ours, day);
            assert_eq!(ours, day.format("%Y-%m-%d").to_string());
            assert_eq!(parse_date(&ours), Some(day));
            assert_eq!(NaiveDate::parse_from_str(&ours, "%Y-%m-%d").ok(), Some(day));
            day = day.succ_opt().unwrap();
        }
        for year in [0, 9, 999, 9_999] {
            let d = NaiveDate::from_ymd_opt(year, 1, 2).unwrap();
            let mut ours = String::new();
            push_date(&mut ours, d);
            assert_eq!(ours, d.format("%Y-%m-%d").to_string());
        }
        let far = NaiveDate::from_ymd_opt(12_345, 1, 2).unwrap();
        let mut ours = String::new();
        push_date(&mut ours, far);
        assert_eq!(ours, far.format("%Y-%m-%d").to_string());
    }

    #[test]
    fn only_real_days_in_the_exact_shape_parse() {
        assert_eq!(
            parse_date("2024-02-29"),
            NaiveDate::from_ymd_opt(2024, 2, 29)
        );
        for text in [
            "2023-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-01-00",
            "2024-01-32",
            "2024-1-01",
            "2024-01-011",
            "2024/01/01",
            "２０２４-01-01",
            "+024-01-01",
            "2024-0a-01",
            "",
            "2024-01-0",
        ] {
            assert_eq!(parse_date(text), None, "{text}");
        }
    }
}
