//! The strict query-string parser. It splits and decodes once, and records every problem instead
//! of guessing: empty pieces or names, a piece without `=`, malformed escapes, bytes that are not
//! UTF-8 (overlong forms such as `%C0%AF` included), control characters, repeated names.
//!
//! One rule for `+`: it means a space, as in HTML form encoding; `%2B` is a literal plus.
//!
//! At most [`MAX_PARAMS`] pieces are parsed: the parse runs before authentication, and a query
//! of thousands of one-letter parameters (all a 32 KiB head allows) must cost a count of its
//! `&`s, not a decode and a repeated-name scan per piece.

use crate::vocab::error::ParamError;
use crate::vocab::percent::{self, DecodeError};

/// A query string split into decoded pairs, with every problem found on the way.
#[derive(Debug, Default, Clone)]
pub struct RawQuery {
    /// Well-formed pairs, in the order sent (a repeated name appears once, first value).
    pub pairs: Vec<(String, String)>,
    /// Problems of the query's shape, reported by the validation stage.
    pub errors: Vec<ParamError>,
}

impl RawQuery {
    /// The value sent for `name`, if it arrived well-formed and exactly once.
    pub fn get(&self, name: &str) -> Option<&str> {
        if self.errors.iter().any(|e| e.param == name) {
            return None;
        }
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The most `&`-separated pieces a query may have. Routes declare a handful of parameters;
/// anything near this is not a client of this gateway.
pub const MAX_PARAMS: usize = 64;

/// The longest parameter name echoed back in an error.
const ECHO_NAME_CHARS: usize = 32;

/// A client-sent name made safe to echo: printable ASCII only, shortened.
pub fn echo_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .take(ECHO_NAME_CHARS)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect();
    if name.chars().count() > ECHO_NAME_CHARS {
        out.push('…');
    }
    out
}

/// Parses `raw` (the part after `?`, without it).
pub fn parse(raw: &str) -> RawQuery {
    let mut query = RawQuery::default();
    if raw.is_empty() {
        return query;
    }
    if raw.bytes().filter(|&b| b == b'&').count() >= MAX_PARAMS {
        let reason = format!("too many parameters (at most {MAX_PARAMS})");
        push(&mut query.errors, String::new(), &reason);
        return query;
    }
    let mut errors: Vec<ParamError> = Vec::new();
    let mut pairs: Vec<(String, String)> = Vec::new();
    for piece in raw.split('&') {
        if piece.is_empty() {
            push(&mut errors, String::new(), "empty parameter (stray `&`)");
            continue;
        }
        let Some((raw_name, raw_value)) = piece.split_once('=') else {
            let name = decode(piece).map(|n| echo_name(&n)).unwrap_or_default();
            push(&mut errors, name, "missing `=` and value");
            continue;
        };
        let name = match decode(raw_name) {
            Ok(name) if name.is_empty() => {
                push(&mut errors, String::new(), "empty parameter name");
                continue;
            }
            Ok(name) if name.chars().any(char::is_control) => {
                push(
                    &mut errors,
                    echo_name(&name),
                    "name contains a control character",
                );
                continue;
            }
            Ok(name) => name,
            Err(reason) => {
                push(&mut errors, String::new(), reason);
                continue;
            }
        };
        let value = match decode(raw_value) {
            Ok(value) if value.chars().any(char::is_control) => {
                push(
                    &mut errors,
                    echo_name(&name),
                    "contains a control character",
                );
                continue;
            }
            Ok(value) => value,
            Err(reason) => {
                push(&mut errors, echo_name(&name), reason);
                continue;
            }
        };
        if pairs.iter().any(|(n, _)| *n == name) {
            if !errors
                .iter()
                .any(|e| e.param == name && e.reason == REPEATED)
            {
                push(&mut errors, echo_name(&name), REPEATED);
            }
            continue;
        }
        pairs.push((name, value));
    }
    query.pairs = pairs;
    query.errors = errors;
    query
}

const REPEATED: &str = "repeated parameter (send each parameter once)";

fn push(errors: &mut Vec<ParamError>, param: String, reason: &str) {
    errors.push(ParamError {
        param,
        reason: reason.to_owned(),
    });
}

fn decode(raw: &str) -> Result<String, &'static str> {
    match percent::decode(raw, true) {
        Ok(v) => Ok(v.into_owned()),
        Err(DecodeError::BadEscape) => Err("malformed percent-encoding"),
        Err(DecodeError::InvalidUtf8) => Err("not valid UTF-8"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reasons(raw: &str) -> Vec<(String, String)> {
        parse(raw)
            .errors
            .into_iter()
            .map(|e| (e.param, e.reason))
            .collect()
    }

    #[test]
    fn parses_pairs() {
        let q = parse("a=1&b=x+y&c=%2B&d=");
        assert!(q.errors.is_empty());
        assert_eq!(q.get("a"), Some("1"));
        assert_eq!(q.get("b"), Some("x y"));
        assert_eq!(q.get("c"), Some("+"));
        assert_eq!(q.get("d"), Some(""));
        assert!(parse("").pairs.is_empty() && parse("").errors.is_empty());
    }

    #[test]
    fn a_query_of_more_than_max_params_pieces_is_one_error_and_no_pairs() {
        let at_most: String = (0..MAX_PARAMS).map(|n| format!("p{n}=1&")).collect();
        let at_most = at_most.trim_end_matches('&');
        let q = parse(at_most);
        assert!(q.errors.is_empty());
        assert_eq!(q.pairs.len(), MAX_PARAMS);
        // What a 32 KiB head allows: thousands of distinct names, then one repeated many times.
        let mut flood: String = (0..6000).map(|n| format!("{n:x}=&")).collect();
        flood.push_str(&"a=1&".repeat(1000));
        let q = parse(&flood);
        assert!(q.pairs.is_empty());
        assert_eq!(
            reasons(&flood),
            [(String::new(), "too many parameters (at most 64)".to_owned())]
        );
        assert_eq!(q.get("a"), None);
        assert_eq!(
            reasons(&"&".repeat(MAX_PARAMS)).len(),
            1,
            "stray `&`s count too"
        );
    }

    #[test]
    fn records_every_problem() {
        assert_eq!(reasons("a=1&&b=2")[0].1, "empty parameter (stray `&`)");
        assert_eq!(
            reasons("flag")[0],
            ("flag".into(), "missing `=` and value".into())
        );
        assert_eq!(reasons("=5")[0].1, "empty parameter name");
        assert_eq!(
            reasons("a=%zz")[0],
            ("a".into(), "malformed percent-encoding".into())
        );
        assert_eq!(
            reasons("a=%C0%AF")[0],
            ("a".into(), "not valid UTF-8".into())
        );
        assert_eq!(
            reasons("a=x%00")[0],
            ("a".into(), "contains a control character".into())
        );
        assert_eq!(
            reasons("a=x%0D%0Ay")[0],
            ("a".into(), "contains a control character".into())
        );
        assert_eq!(reasons("a=1&a=2&a=3"), vec![("a".into(), REPEATED.into())]);
        let q = parse("a=1&a=2");
        assert_eq!(
            q.get("a"),
            None,
            "a repeated parameter has no trusted value"
        );
        assert_eq!(reasons("a=1&&=2&b").len(), 3);
    }

    #[test]
    fn echoed_names_are_short_and_printable() {
        assert_eq!(echo_name("page_size"), "page_size");
        assert_eq!(echo_name("a\u{1}b"), "a?b");
        assert_eq!(
            echo_name(&"x".repeat(100)).chars().count(),
            ECHO_NAME_CHARS + 1
        );
    }
}
