//! Typed parameter schemas, compiled once from `[routes.params.*]` / `[routes.query.*]`, and the
//! check of one value against one schema. Reasons are written for a partner developer and never
//! echo the value.

use std::fmt::Write as _;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate};
use regex::Regex;

/// `max_length` when the policy gives none.
pub const DEFAULT_MAX_LENGTH: usize = 256;

/// What a parameter must be.
#[derive(Debug, Clone)]
pub enum Kind {
    /// Text, optionally matching a whole-value pattern.
    String {
        /// A whole-value pattern, if any.
        pattern: Option<Regex>,
    },
    /// A whole number within bounds.
    Integer {
        /// Inclusive lower bound.
        min: Option<i64>,
        /// Inclusive upper bound.
        max: Option<i64>,
    },
    /// A finite decimal number within bounds.
    Number {
        /// Inclusive lower bound.
        min: Option<f64>,
        /// Inclusive upper bound.
        max: Option<f64>,
    },
    /// `true` or `false`.
    Boolean,
    /// `YYYY-MM-DD`, a real calendar date.
    Date,
    /// RFC 3339 date-time (`2024-05-01T10:00:00Z`, `...+08:00`).
    Datetime,
    /// One of the listed values.
    Enum {
        /// The allowed values, compared exactly.
        values: Vec<String>,
    },
}

/// A parameter's compiled schema.
#[derive(Debug, Clone)]
pub struct ParamSchema {
    /// The parameter's name.
    pub name: Arc<str>,
    /// What it must be.
    pub kind: Kind,
    /// Whether the request must carry it.
    pub required: bool,
    /// Used when the parameter is absent.
    pub default: Option<Value>,
    /// Shortest value accepted, in characters.
    pub min_length: usize,
    /// Longest value accepted, in characters.
    pub max_length: usize,
    /// For the OpenAPI document.
    pub description: Option<String>,
    /// The raw pattern as written, for the OpenAPI document.
    pub pattern_source: Option<String>,
}

/// A validated value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Text.
    String(String),
    /// A whole number.
    Integer(i64),
    /// A finite decimal number.
    Number(f64),
    /// A boolean.
    Boolean(bool),
    /// A calendar date.
    Date(NaiveDate),
    /// Kept as written: the strict shape check makes it canonical already.
    Datetime(String),
}

impl Value {
    /// The canonical text of the value, before percent-encoding.
    pub fn write_canonical(&self, out: &mut String) {
        // Writing into a String cannot fail.
        let _ = match self {
            Value::String(s) | Value::Datetime(s) => {
                out.push_str(s);
                Ok(())
            }
            Value::Integer(i) => write!(out, "{i}"),
            Value::Number(n) => write!(out, "{n}"),
            Value::Boolean(b) => write!(out, "{b}"),
            Value::Date(d) => {
                crate::vocab::date_text::push_date(out, *d);
                Ok(())
            }
        };
    }

    /// The value as JSON, for the audit record.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::String(s) | Value::Datetime(s) => serde_json::Value::String(s.clone()),
            Value::Integer(i) => serde_json::Value::from(*i),
            Value::Number(n) => serde_json::Value::from(*n),
            Value::Boolean(b) => serde_json::Value::Bool(*b),
            Value::Date(d) => {
                let mut text = String::with_capacity(10);
                crate::vocab::date_text::push_date(&mut text, *d);
                serde_json::Value::String(text)
            }
        }
    }

    /// The date, for constraints.
    pub fn as_date(&self) -> Option<NaiveDate> {
        match self {
            Value::Date(d) => Some(*d),
            Value::Datetime(s) => DateTime::parse_from_rfc3339(s).ok().map(|d| d.date_naive()),
            _ => None,
        }
    }
}

/// The shapes of typed values. Constant patterns, compiled on first use and covered by tests:
/// they cannot fail at run time.
#[allow(clippy::expect_used)]
mod shapes {
    use std::sync::LazyLock;

    use regex::Regex;

    pub static INTEGER: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^-?[0-9]{1,19}$").expect("static regex"));
    pub static NUMBER: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^-?[0-9]{1,30}(\.[0-9]{1,30})?([eE][+-]?[0-9]{1,3})?$").expect("static regex")
    });
    pub static DATE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$").expect("static regex"));
    pub static DATETIME: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$")
            .expect("static regex")
    });
}
use shapes::{DATE, DATETIME, INTEGER, NUMBER};

impl ParamSchema {
    /// Checks one raw (decoded) value; `Err` holds the reason.
    pub fn check(&self, raw: &str) -> Result<Value, String> {
        let chars = raw.chars().count();
        if chars > self.max_length {
            return Err(format!("must be at most {} characters", self.max_length));
        }
        if chars < self.min_length {
            return Err(format!("must be at least {} characters", self.min_length));
        }
        match &self.kind {
            Kind::String { pattern } => match pattern {
                Some(p) if !p.is_match(raw) => Err("does not match the required pattern".into()),
                _ => Ok(Value::String(raw.to_owned())),
            },
            Kind::Integer { min, max } => {
                let n: i64 = INTEGER
                    .is_match(raw)
                    .then(|| raw.parse().ok())
                    .flatten()
                    .ok_or("must be an integer")?;
                bounds(n, *min, *max)?;
                Ok(Value::Integer(n))
            }
            Kind::Number { min, max } => {
                let n: f64 = NUMBER
                    .is_match(raw)
                    .then(|| raw.parse().ok())
                    .flatten()
                    .filter(|n: &f64| n.is_finite())
                    .ok_or("must be a number")?;
                bounds(n, *min, *max)?;
                Ok(Value::Number(n))
            }
            Kind::Boolean => match raw {
                "true" => Ok(Value::Boolean(true)),
                "false" => Ok(Value::Boolean(false)),
                _ => Err("must be true or false".into()),
            },
            Kind::Date => {
                if !DATE.is_match(raw) {
                    return Err("must be a date (YYYY-MM-DD)".into());
                }
                crate::vocab::date_text::parse_date(raw)
                    .map(Value::Date)
                    .ok_or_else(|| "is not a real calendar date".into())
            }
            Kind::Datetime => {
                if !DATETIME.is_match(raw) {
                    return Err("must be an RFC 3339 date-time (e.g. 2024-05-01T10:00:00Z)".into());
                }
                DateTime::parse_from_rfc3339(raw)
                    .map(|_| Value::Datetime(raw.to_owned()))
                    .map_err(|_| "is not a real date-time".into())
            }
            Kind::Enum { values } => {
                if values.iter().any(|v| v == raw) {
                    Ok(Value::String(raw.to_owned()))
                } else {
                    Err(format!("must be one of: {}", values.join(", ")))
                }
            }
        }
    }
}

fn bounds<T: PartialOrd + std::fmt::Display>(
    n: T,
    min: Option<T>,
    max: Option<T>,
) -> Result<(), String> {
    if let Some(min) = min
        && n < min
    {
        return Err(format!("must be >= {min}"));
    }
    if let Some(max) = max
        && n > max
    {
        return Err(format!("must be <= {max}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::problems::{KeyPath, Problems};
    use crate::config::raw;
    use crate::policy::params::compile;

    fn schema(toml_text: &str) -> Result<ParamSchema, Vec<String>> {
        let raw: raw::Param = toml::from_str(toml_text).unwrap();
        let mut problems = Problems::default();
        let compiled = compile("p", &raw, &KeyPath::root().k("p"), &mut problems);
        compiled.ok_or_else(|| problems.messages())
    }

    #[test]
    fn strings_match_whole_patterns() {
        let s = schema("type = 'string'\npattern = '[0-9]+'").unwrap();
        assert!(s.check("123").is_ok());
        assert!(s.check("1; DROP TABLE orders").is_err());
        assert_eq!(
            s.check(&"1".repeat(257)).unwrap_err(),
            "must be at most 256 characters"
        );
        let s = schema("type = 'string'\nmin_length = 2\nmax_length = 3").unwrap();
        assert_eq!(s.check("a").unwrap_err(), "must be at least 2 characters");
        assert_eq!(s.check("abcd").unwrap_err(), "must be at most 3 characters");
    }

    #[test]
    fn numbers() {
        let s = schema("type = 'integer'\nmin = 1\nmax = 100").unwrap();
        assert_eq!(s.check("20"), Ok(Value::Integer(20)));
        assert_eq!(s.check("101").unwrap_err(), "must be <= 100");
        assert_eq!(s.check("0").unwrap_err(), "must be >= 1");
        for bad in [
            "1.5",
            "+5",
            " 5",
            "0x10",
            "1e3",
            "",
            "99999999999999999999",
            "5 OR 1=1",
        ] {
            assert_eq!(s.check(bad).unwrap_err(), "must be an integer", "{bad}");
        }
        let s = schema("type = 'number'\nmin = 0\nmax = 1.5").unwrap();
        assert_eq!(s.check("1.25"), Ok(Value::Number(1.25)));
        assert_eq!(s.check("2").unwrap_err(), "must be <= 1.5");
        for bad in ["NaN", "inf", "1e999", "1,5", "."] {
            assert!(s.check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates_and_datetimes() {
        let d = schema("type = 'date'").unwrap();
        assert!(d.check("2024-02-29").is_ok());
        assert_eq!(
            d.check("2023-02-29").unwrap_err(),
            "is not a real calendar date"
        );
        assert_eq!(
            d.check("2024-13-01").unwrap_err(),
            "is not a real calendar date"
        );
        assert_eq!(
            d.check("2024-1-1").unwrap_err(),
            "must be a date (YYYY-MM-DD)"
        );
        assert_eq!(
            d.check("2024-01-01' OR '1'='1").unwrap_err(),
            "must be a date (YYYY-MM-DD)"
        );
        let t = schema("type = 'datetime'").unwrap();
        assert!(t.check("2024-05-01T10:00:00Z").is_ok());
        assert!(t.check("2024-05-01T10:00:00.123+08:00").is_ok());
        assert!(t.check("2024-05-01 10:00:00Z").is_err());
        assert!(t.check("2024-05-01T25:00:00Z").is_err());
    }

    #[test]
    fn enums_and_booleans() {
        let e = schema("type = 'enum'\nvalues = ['paid', 'shipped']").unwrap();
        assert!(e.check("paid").is_ok());
        assert_eq!(
            e.check("PAID").unwrap_err(),
            "must be one of: paid, shipped"
        );
        let b = schema("type = 'boolean'").unwrap();
        assert_eq!(b.check("true"), Ok(Value::Boolean(true)));
        assert!(b.check("1").is_err());
    }

    #[test]
    fn policy_mistakes_are_reported() {
        let problems = schema("type = 'string'\npattern = '('").unwrap_err();
        assert!(
            problems[0].starts_with("invalid regular expression"),
            "{problems:?}"
        );
        let problems = schema("type = 'integer'\nmin = 5\nmax = 1").unwrap_err();
        assert!(problems[0].contains("greater than `max`"));
        let problems = schema("type = 'integer'\nmax = 10\ndefault = 20").unwrap_err();
        assert_eq!(
            problems[0],
            "`default` fails its own schema: it must be <= 10"
        );
        let problems = schema("type = 'enum'").unwrap_err();
        assert!(problems[0].contains("non-empty `values`"));
        let problems = schema("type = 'date'\npattern = 'x'").unwrap_err();
        assert!(problems[0].contains("applies only to string"));
        let ok = schema("type = 'integer'\nmin = 1\nmax = 100\ndefault = 20").unwrap();
        assert_eq!(ok.default, Some(Value::Integer(20)));
    }
}
